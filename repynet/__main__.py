"""``python -m repynet COMMAND ...``: the same command line as the ``repynet`` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m repynet"))
