"""Reading one table of a soft IOC config: key names, types, numbers and text, checked.

Every error names the table (file or '<dict>', then the table) and the key that is wrong,
because the person reading it is editing that file.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, cast

from ..errors import ConfigError
from ._bounds import Bound

__all__ = ["MAX_LENGTH", "MAX_NAME", "MAX_PRECISION", "MAX_TEXT", "check_entries"]


class _Reader:
    """Reads one table, checking key names and types; errors carry the location."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
        self.data, self.where = data, where
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: key '{key}' {problem}")

    def get(self, key: str, kinds: tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.where}: required key '{key}' is missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(key, f"must be {names}, got {value!r} ({type(value).__name__})")
        return value

    def number(self, key: str, default: float, positive: bool = False, minimum: float | None = None) -> float:
        value = self.get(key, (int, float), default)
        if isinstance(value, int) and not _fits_float(value):
            raise self.fail(key, f"is beyond float range, got an integer of {len(str(abs(value)))} digits")
        if not math.isfinite(value):
            raise self.fail(key, f"must be finite, got {value!r}")
        if positive and value <= 0:
            raise self.fail(key, f"must be > 0, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value!r}")
        return float(value)

    def within(self, key: str, default: float, bound: Bound) -> float:
        """A finite number within `bound` (both ends allowed); the error names key, value and bounds."""
        value = self.number(key, default)
        if not bound.low <= value <= bound.high:
            raise self.fail(key, f"must be within {bound.shown()}, got {self.data.get(key, default)!r}")
        return value

    def finish(self, extra: tuple[str, ...] = ()) -> None:
        unknown = [k for k in self.data if k not in self.used and k not in extra]
        if unknown:
            known = sorted(self.used | set(extra))
            raise ConfigError(f"{self.where}: unknown key '{unknown[0]}' (known keys: {', '.join(known)})")


def _fits_float(value: int) -> bool:
    """Whether an int (TOML integers are unbounded) converts to a float without OverflowError."""
    try:
        float(value)
    except OverflowError:
        return False
    return True

# the longest PV name served (characters); 1000 measured to be found by a p4p client's search
MAX_NAME = 1000
# the longest units, description, enum choice or control prefix (characters)
MAX_TEXT = 1000
# the most elements of an array PV: 10 million doubles are 80 MB per copy the server keeps
MAX_LENGTH = 10_000_000
# the most decimal places a display precision may ask for (a double carries 17 digits)
MAX_PRECISION = 17


def _uncarried(text: str) -> str | None:
    """Why PVAccess cannot carry `text` unchanged (a control character such as NUL, which ends the
    string on the wire, or a lone surrogate, which has no UTF-8), or None if it can."""
    for c in text:
        if unicodedata.category(c) in ("Cc", "Cs"):
            return f"contains the character {c!r}, which PVAccess cannot carry"
    return None


def _text(r: _Reader, key: str, default: str) -> str:
    """A string PVAccess carries unchanged, of at most MAX_TEXT characters."""
    value: str = r.get(key, (str,), default)
    _check_text(r, key, value)
    return value


def _check_text(r: _Reader, key: str, value: str) -> None:
    if len(value) > MAX_TEXT:
        raise r.fail(key, f"is {len(value)} characters long; the limit is {MAX_TEXT}")
    why = _uncarried(value)
    if why:
        raise r.fail(key, f"{why}, got {value!r}")


def _precision(r: _Reader) -> int | None:
    value: int | None = r.get("precision", (int,), None)
    if value is not None and not 0 <= value <= MAX_PRECISION:
        raise r.fail("precision", f"must be within [0, {MAX_PRECISION}] decimal places, got {_integer(value)}")
    return value


def _integer(value: int) -> str:
    """An integer as a message shows it: its digits, or how many digits when there are many."""
    return str(value) if abs(value) < 10**30 else f"an integer of {len(str(abs(value)))} digits"


def _name(r: _Reader, key: str, required: bool = True) -> str | None:
    value = r.get(key, (str,), None, required=required)
    if value is not None and (not value.strip() or any(c.isspace() for c in value)):
        raise r.fail(key, f"must be a PV name without spaces, got {value!r}")
    if value is not None and len(value) > MAX_NAME:
        raise r.fail(key, f"is a PV name of {len(value)} characters; the limit is {MAX_NAME}")
    why = None if value is None else _uncarried(value)
    if why:
        raise r.fail(key, f"{why}, got {value!r}")
    return cast("str | None", value)


def _update_rate(r: _Reader, bound: Bound) -> float | None:
    """A PV's own posting rate (Hz, within `bound`), or None to post at every update step."""
    if "update_rate" not in r.data:
        r.used.add("update_rate")
        return None
    return r.within("update_rate", 0.0, bound)


def check_entries(entries: Any, where: str) -> tuple[str, ...]:
    """The entries of a rule as a tuple; ConfigError naming `where` if one is malformed."""
    if isinstance(entries, str) or not isinstance(entries, Iterable):
        raise ConfigError(f"{where} must be a list of \"account\", \"@host\" or \"account@host\" "
                          f"strings, got {entries!r}")
    checked = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip() or any(c.isspace() for c in entry.strip()):
            raise ConfigError(f"{where}: entry {entry!r} must be \"account\", \"@host\", "
                              "\"account@host\" or \"*\" (no spaces)")
        account, at, host = entry.strip().partition("@")
        if at and not host:
            raise ConfigError(f"{where}: entry {entry!r} names no host after '@'")
        if not at and not account:
            raise ConfigError(f"{where}: entry {entry!r} is empty")
        checked.append(entry.strip())
    return tuple(checked)
