"""`python -m ltsoups` runs the command line."""

from ltsoups.cli.app import main

main()
