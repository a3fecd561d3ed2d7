"""``python -m epics_pva.preflight``, as the docs show it: runs `epics_pva.tools.preflight`."""

import sys

from .tools.preflight import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
