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

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ._reader import MAX_NAME

__all__ = ["MAX_NAME_BYTES", "MAX_PVS", "MAX_RANGE", "RangePlan", "check_size", "expand_plans", "expand_ranges",
           "format_pattern", "plan_ranges"]

MAX_RANGE = 200_000
"""Most entries one range may make: a typo'd count should fail, not eat the memory."""
MAX_PVS = 200_000
"""Most PVs a whole config may make (setpoints, readbacks, observables; entries and ranges
together): ten times the largest machine benchmarked (20,000 PVs); 200,000 noisy pairs' PVs load
in 2 s and model in 430 MB, before their p4p channels."""
MAX_NAME_BYTES = 50_000_000
"""Most bytes of PV names (and their places in messages) the ranges may generate: 200,000 PVs
of 250 bytes each; a long pattern times a large count fails before it is generated."""
MAX_START = 10**15
"""The largest first index of a range (a name then has at most 16 digits of it)."""

_FORMATTER = string.Formatter()


def check_pattern(pattern: str, where: str, key: str) -> None:
    """Raise ConfigError unless `pattern` is text with only `{i}` or `{i:SPEC}` fields."""
    try:
        parts = list(_FORMATTER.parse(pattern))
    except ValueError as exc:
        raise ConfigError(f"{where}: key '{key}' pattern {pattern!r:.200} is not a valid format string: {exc}") from None
    fields = 0
    for _text, field, spec, conversion in parts:
        if field is None:
            continue
        if field != "i" or conversion is not None or "{" in (spec or ""):
            raise ConfigError(
                f"{where}: key '{key}' pattern {pattern!r:.200} may only use {{i}} or {{i:SPEC}} "
                f"(e.g. 'QUAD:{{i:03d}}:SET'), got field {{{field}{'!' + conversion if conversion else ''}}}"
            )
        fields += 1
        digits = max(re.findall(r"\d+", spec or ""), key=lambda d: (len(d.lstrip("0")), d.lstrip("0")), default="0")
        digits = digits.lstrip("0") or "0"
        if len(digits) > 4 or int(digits) > MAX_NAME:  # a width of a billion would allocate before any check
            shown = f"{int(digits):,}" if len(digits) <= 30 else f"a number of {len(digits):,} digits"
            raise ConfigError(f"{where}: key '{key}' pattern {pattern!r:.80} asks for a field of {shown} "
                              f"characters; a name has at most {MAX_NAME}")
        try:
            format(0, spec or "")
        except ValueError as exc:
            raise ConfigError(f"{where}: key '{key}' pattern {pattern!r:.200} has a bad format spec {spec!r}: {exc}") from None
    if key in ("name", "readback") and fields == 0:
        raise ConfigError(f"{where}: key '{key}' pattern {pattern!r:.200} has no {{i}}, so every PV would share one name")


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


@dataclass(frozen=True)
class RangePlan:
    """One range table, checked, and what it would make: `pvs` PVs, `name_bytes` bytes of names."""

    where: str
    table: Mapping[str, Any]
    start: int
    count: int
    pvs: int
    name_bytes: int


def plan_ranges(tables: Any, source: str, section: str, patterned: tuple[str, ...]) -> list[RangePlan]:
    """Check each range table and size what it would make, generating no name yet."""
    if not isinstance(tables, list):
        raise ConfigError(f"{source}: key '{section}' must be a list of tables ([[{section}]]), got {type(tables).__name__}")
    plans = []
    for n, table in enumerate(tables):
        label = f" ('{table['name']:.80}')" if isinstance(table, Mapping) and isinstance(table.get("name"), str) else ""
        where = f"{source}: [[{section}]] #{n + 1}{label}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
        count = _int(table, "count", where, None, 1)
        if count > MAX_RANGE:
            raise ConfigError(f"{where}: key 'count' must be <= {MAX_RANGE:,}, got {_shown(count)}")
        start = _int(table, "start", where, 0, 0)
        if start > MAX_START:
            raise ConfigError(f"{where}: key 'start' must be <= {MAX_START:,}, got {_shown(start)}")
        if "name" not in table:
            raise ConfigError(f"{where}: required key 'name' is missing")
        names = 0
        per_entry = len(f"{where} i={start + count - 1}")  # each entry's location, kept for its messages
        for key, pattern in _patterns(table, patterned, where):
            check_pattern(pattern, where, key)
            longest = max(len(format_pattern(pattern, i).encode("utf-8", "surrogatepass"))
                          for i in (start, start + count - 1))
            if key in ("name", "readback") and longest > MAX_NAME:
                raise ConfigError(f"{where}: key '{key}' pattern {pattern!r:.80} makes names of up to {longest:,} "
                                  f"bytes; the limit is {MAX_NAME}")
            names += key in ("name", "readback")
            per_entry += longest
        plans.append(RangePlan(where, table, start, count, count * names, count * per_entry))
    return plans


def _patterns(table: Mapping[str, Any], patterned: tuple[str, ...], where: str) -> list[tuple[str, str]]:
    """(key, pattern) of each patterned key the table gives ('inputs.x' for an input)."""
    found = []
    for key in patterned:
        value = table.get(key)
        if value is None:
            continue
        if key == "inputs":
            if isinstance(value, Mapping):  # else the ordinary reader reports the type
                found += [(f"inputs.{var}", p) for var, p in value.items() if isinstance(p, str)]
        elif isinstance(value, str):
            found.append((key, value))
        else:
            raise ConfigError(f"{where}: key '{key}' must be a str pattern, got {value!r:.200} ({type(value).__name__})")
    return found


def check_size(source: str, entries: int, plans: list[RangePlan]) -> None:
    """ConfigError naming the ranges when `entries` PVs and the ranges' would pass MAX_PVS, or their
    names MAX_NAME_BYTES: checked before any name is generated."""
    total = entries + sum(p.pvs for p in plans)
    largest = sorted(plans, key=lambda p: p.pvs, reverse=True)[:3]
    if total > MAX_PVS:
        shown = "; ".join(f"{p.where.removeprefix(source + ': ')} {p.pvs:,}" for p in largest)
        what = f"the ranges ({shown}) would make {total:,} PVs with the other tables' {entries:,}" if plans else (
            f"the [[setpoint]] and [[observable]] tables make {total:,} PVs")
        raise ConfigError(f"{source}: {what}; the total limit is {MAX_PVS:,}")
    size = sum(p.name_bytes for p in plans)
    if size > MAX_NAME_BYTES:
        largest = sorted(plans, key=lambda p: p.name_bytes, reverse=True)[:3]
        shown = "; ".join(f"{p.where.removeprefix(source + ': ')} {p.name_bytes:,} bytes" for p in largest)
        raise ConfigError(f"{source}: the ranges ({shown}) would make {size:,} bytes of PV names; "
                          f"the total limit is {MAX_NAME_BYTES:,}")


def expand_plans(plans: list[RangePlan], patterned: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """Each checked range as (location, ordinary table) pairs, i = start .. start+count-1."""
    out: list[tuple[str, dict[str, Any]]] = []
    for plan in plans:
        base = {k: v for k, v in plan.table.items() if k not in ("count", "start")}
        for i in range(plan.start, plan.start + plan.count):
            item = dict(base)
            for key in patterned:
                value = item.get(key)
                if key == "inputs" and isinstance(value, Mapping):
                    item[key] = {var: format_pattern(p, i) if isinstance(p, str) else p for var, p in value.items()}
                elif isinstance(value, str):
                    item[key] = format_pattern(value, i)
            out.append((f"{plan.where} i={i}", item))
    return out


def expand_ranges(tables: Any, source: str, section: str, patterned: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """Expand each range table into (location, ordinary table) pairs.

    `patterned` are the keys formatted with i (name, readback; for observables also every
    value of `inputs`); every other key is copied unchanged into each table and checked later
    by the ordinary reader, whose errors then name the range and the index. The ranges
    together may make at most MAX_PVS PVs and MAX_NAME_BYTES bytes of names.
    """
    plans = plan_ranges(tables, source, section, patterned)
    check_size(source, 0, plans)
    return expand_plans(plans, patterned)


def _shown(value: int) -> str:
    """An integer as a message shows it: its digits, or how many digits when there are many."""
    return f"{value:,}" if value < 10**30 else f"an integer of {len(str(value))} digits"
