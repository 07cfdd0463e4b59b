"""``python -m gbfocal``: the ``gbfocal`` command (``bench``, ``datasets``) without the console script."""

import sys

from gbfocal.cli import main

if __name__ == "__main__":
    sys.exit(main())
