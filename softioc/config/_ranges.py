"""Many alike PVs from one table: `[[setpoint_range]]` and `[[observable_range]]`.

    [[setpoint_range]]
    name = "QUAD:{i:03d}:SET"
    readback = "QUAD:{i:03d}:RBV"
    count = 10000
    start = 1
    lag = "first_order"
    noise = 0.01

expands at load time into `count` ordinary `[[setpoint]]` tables, i = start .. start+count-1.
A pattern is a format string whose only field is `{i}`, with an optional format spec: no
attribute or index access, no conversions, because a config file is data, not code.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

__all__ = ["MAX_RANGE", "expand_ranges", "format_pattern"]

MAX_RANGE = 1_000_000
"""Most PVs one range may make: a typo'd count should fail, not eat the memory."""

_FORMATTER = string.Formatter()


def check_pattern(pattern: str, where: str, key: str) -> None:
    """Raise ConfigError unless `pattern` is text with only `{i}` or `{i:SPEC}` fields."""
    try:
        parts = list(_FORMATTER.parse(pattern))
    except ValueError as exc:
        raise ConfigError(f"{where}: key '{key}' pattern {pattern!r} is not a valid format string: {exc}") from None
    fields = 0
    for _text, field, spec, conversion in parts:
        if field is None:
            continue
        if field != "i" or conversion is not None or "{" in (spec or ""):
            raise ConfigError(
                f"{where}: key '{key}' pattern {pattern!r} may only use {{i}} or {{i:SPEC}} "
                f"(e.g. 'QUAD:{{i:03d}}:SET'), got field {{{field}{'!' + conversion if conversion else ''}}}"
            )
        fields += 1
        try:
            format(0, spec or "")
        except ValueError as exc:
            raise ConfigError(f"{where}: key '{key}' pattern {pattern!r} has a bad format spec {spec!r}: {exc}") from None
    if key in ("name", "readback") and fields == 0:
        raise ConfigError(f"{where}: key '{key}' pattern {pattern!r} has no {{i}}, so every PV would share one name")


def format_pattern(pattern: str, i: int) -> str:
    """The pattern with `i` substituted (already checked by check_pattern)."""
    return pattern.format(i=i)


def _int(table: Mapping[str, Any], key: str, where: str, default: int | None, minimum: int) -> int:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(f"{where}: required key '{key}' is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: key '{key}' must be int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ConfigError(f"{where}: key '{key}' must be >= {minimum}, got {value!r}")
    return value


def expand_ranges(tables: Any, source: str, section: str, patterned: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """Expand each range table into (location, ordinary table) pairs.

    `patterned` are the keys formatted with i (name, readback; for observables also every
    value of `inputs`); every other key is copied unchanged into each table and checked later
    by the ordinary reader, whose errors then name the range and the index.
    """
    if not isinstance(tables, list):
        raise ConfigError(f"{source}: key '{section}' must be a list of tables ([[{section}]]), got {type(tables).__name__}")
    out: list[tuple[str, dict[str, Any]]] = []
    for n, table in enumerate(tables):
        label = f" ('{table['name']}')" if isinstance(table, Mapping) and isinstance(table.get("name"), str) else ""
        where = f"{source}: [[{section}]] #{n + 1}{label}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
        count = _int(table, "count", where, None, 1)
        if count > MAX_RANGE:
            raise ConfigError(f"{where}: key 'count' must be <= {MAX_RANGE}, got {count}")
        start = _int(table, "start", where, 0, 0)
        if "name" not in table:
            raise ConfigError(f"{where}: required key 'name' is missing")
        for key in patterned:
            value = table.get(key)
            if value is None:
                continue
            if key == "inputs":
                if not isinstance(value, Mapping):
                    continue  # the ordinary reader reports the type
                for var, pattern in value.items():
                    if isinstance(pattern, str):
                        check_pattern(pattern, where, f"inputs.{var}")
            elif isinstance(value, str):
                check_pattern(value, where, key)
            else:
                raise ConfigError(f"{where}: key '{key}' must be a str pattern, got {value!r} ({type(value).__name__})")
        base = {k: v for k, v in table.items() if k not in ("count", "start")}
        for i in range(start, start + count):
            item = dict(base)
            for key in patterned:
                value = item.get(key)
                if key == "inputs" and isinstance(value, Mapping):
                    item[key] = {var: format_pattern(p, i) if isinstance(p, str) else p for var, p in value.items()}
                elif isinstance(value, str):
                    item[key] = format_pattern(value, i)
            out.append((f"{where} i={i}", item))
    return out
