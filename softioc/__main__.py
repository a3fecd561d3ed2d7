"""`python -m softioc CONFIG.toml`: see softioc.cli."""

import sys

from .cli import main

sys.exit(main())
