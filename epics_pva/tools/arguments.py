"""What the command-line entry points share: the program name their usage lines show, and the
argparse types that refuse option values no command can use (a clear `argument --x: ...` error,
exit status 2) instead of failing later, deeper down."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from ..transport import check_name

__all__ = ["MAX_SECONDS", "bounded", "count", "json_object", "program_name", "pv_name", "seconds"]

# the longest wait an option may ask for (s): an hour; a network timeout beyond it is a typo
MAX_SECONDS = 3600.0
# the longest JSON text an option takes (characters)
MAX_JSON = 100_000


def program_name(module: str) -> str:
    """The command as the user typed it: the console script's name, or ``python -m MODULE``.

    A console script (``pva-preflight``) is argv[0]'s basename; under ``python -m`` argv[0]
    is the module's file, whose name (``__main__.py``) would mean nothing to the user.
    """
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not name or name.endswith(".py") or name in ("-c", "-m"):
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)  # the module `python -m` ran
        ran = getattr(spec, "name", "") or ""
        ran = ran.removesuffix(".__main__")
        return f"python -m {ran if ran.startswith(module.split('.')[0] + '.') else module}"
    return name


def bounded(low: float | None = None, high: float | None = None, *, above: float | None = None
            ) -> Callable[[str], float]:
    """An argparse type: a finite number >= low (or > above) and <= high, else a clear error."""
    parts = [f"> {above:g}" if above is not None else f">= {low:g}" if low is not None else "",
             f"<= {high:g}" if high is not None else ""]
    wanted = "a finite number " + " and ".join(p for p in parts if p)

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (above is None or value > above)
                and (low is None or value >= low) and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"{text!r:.60} is not {wanted.rstrip()}")
        return value

    number.__name__ = wanted
    return number


def seconds(*, zero: bool = False, high: float = MAX_SECONDS) -> Callable[[str], float]:
    """An argparse type: a number of seconds > 0 (>= 0 if `zero`), at most `high`."""
    return bounded(0.0, high) if zero else bounded(high=high, above=0.0)


def count(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer within [low, high], else a clear error."""

    def integer(text: str) -> int:
        try:
            value = int(text.strip()) if len(text) <= 30 else None
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r:.60} is not an integer within [{low}, {high}]")
        return value

    integer.__name__ = f"integer within [{low}, {high}]"
    return integer


def pv_name(text: str) -> str:
    """An argparse type: a name PVAccess can carry (no spaces, control characters or surrogates)."""
    why = check_name(text)
    if why:
        raise argparse.ArgumentTypeError(f"{text!r:.80}: {why}")
    return text


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object of finite numbers, at most MAX_JSON characters."""
    if len(text) > MAX_JSON:
        raise argparse.ArgumentTypeError(f"{len(text):,} characters of JSON; the limit is {MAX_JSON:,}")

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a finite number")

    def finite(number: str) -> float:
        value = float(number)
        return value if math.isfinite(value) else refuse(number)  # 1e999 would read as inf

    try:
        value = json.loads(text, parse_constant=refuse, parse_float=finite)
    except (ValueError, RecursionError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r:.80} is not JSON: {str(exc) or type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r:.80} is not a JSON object ({{...}})")
    return value
