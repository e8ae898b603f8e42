"""The pipeline's stages as library functions; the CLI and DVC stages call these."""
