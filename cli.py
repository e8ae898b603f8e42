"""Run the ltsoups command line from a source checkout: `python cli.py --help`.

Installed copies use the `ltsoups` console script; this file is not installed (only `ltsoups` is).
"""

from ltsoups.cli.app import main

if __name__ == "__main__":
    main()
