"""The `ltsoups` command line: thin Typer commands over the library."""
