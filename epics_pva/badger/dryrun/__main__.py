"""``python -m epics_pva.badger.dryrun``: the ``pva-dryrun`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
