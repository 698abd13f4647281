"""``python -m spdf_lib.book``: the command line of :mod:`spdf_lib.book.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
