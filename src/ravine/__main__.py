"""``python -m ravine``: the same as the ``ravine`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
