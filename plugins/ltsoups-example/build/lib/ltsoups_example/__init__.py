"""Example plugins for ltsoups, shipped as a separate distribution."""
