"""What the command-line entry points share: the program name their usage lines show."""

from __future__ import annotations

import os
import sys

__all__ = ["program_name"]


def program_name(module: str) -> str:
    """The command as the user typed it: the console script's name, or ``python -m MODULE``.

    A console script (``pva-preflight``) is argv[0]'s basename; under ``python -m`` argv[0]
    is the module's file, whose name (``__main__.py``) would mean nothing to the user.
    """
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not name or name.endswith(".py") or name in ("-c", "-m"):
        return f"python -m {module}"
    return name
