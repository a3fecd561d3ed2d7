"""Settle warnings: an objective read before the machine responded, found before a routine starts.

A Badger step sets the variables, then reads the observables. The read is worth something only
if the machine had responded by then: each variable's validation (``wait_for_readback``) waits
for its readback, and each observable must update after that. These checks need no network;
`pva-preflight` (with ``--env``), its ``--measure`` and the dry run print them:

- a variable without validation an observable depends on (the dry run's mirror knows which) or
  may depend on (anything else): the read may come before the variable settled;
- a validation tolerance wider than the routine's typical step (``--typical-step``), or than a
  tenth of the variable's bounds when no step is given: a set may count as settled before the
  machine moved a step's worth;
- an observable that updates more slowly than its validations finish (``--measure``): read
  right after a validated set it still holds its pre-settle value, unless the interface reads
  fresh (``EPICS_PVA_INTERFACE_FRESH_READS``, or a read function such as ``first_after``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .environment import READBACK_KEY, TOLERANCE_KEY, validation_keywords

__all__ = ["dependencies_from_mirror", "rate_warnings", "settle_warnings"]

SLOWER = 0.7  # an observable below this share of its readbacks' update rate is slower, not noise
BOUNDS_SHARE = 0.1  # with no typical step known: a tolerance wider than this share of the bounds warns


def settle_warnings(
    variables: Mapping[str, Sequence[float] | None] | Iterable[str],
    configs: Mapping[str, Any],
    observables: Iterable[str],
    *,
    depends: Mapping[str, Iterable[str]] | None = None,
    typical_step: float | None = None,
) -> dict[str, list[str]]:
    """{variable: [warning, ...]} for the variables a routine may read the objective too early for.

    `configs` are the environment's validation configs ({variable: partial}); `depends`
    maps each observable to the variables it depends on, when known (the dry run's mirror).
    `typical_step` is the routine's typical step of a variable, in its units, if known.
    """
    bounds = dict(variables) if isinstance(variables, Mapping) else {name: None for name in variables}
    observables = list(observables)
    found: dict[str, list[str]] = {}
    for name, span in bounds.items():
        config = configs.get(name)
        if config is None:
            if depends is not None:
                readers = [o for o in observables if name in set(depends.get(o, ()))]
                if readers:
                    found.setdefault(name, []).append(
                        f"no validation, and {', '.join(readers)} depend(s) on it: the objective may be "
                        "read before it settles (give it a wait_for_readback config)")
            elif observables:
                found.setdefault(name, []).append(
                    "no validation: an observable may depend on it and be read before it settles "
                    "(give it a wait_for_readback config)")
            continue
        keywords = validation_keywords(config)
        tolerance = keywords.get(TOLERANCE_KEY)
        if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not math.isfinite(tolerance):
            continue
        if typical_step is not None and tolerance >= typical_step:
            found.setdefault(name, []).append(
                f"validation tolerance {tolerance:g} is not below the routine's typical step "
                f"{typical_step:g}: a set may pass before the machine moved")
        elif typical_step is None and span is not None and len(span) == 2:
            width = abs(float(span[1]) - float(span[0]))
            if width > 0 and tolerance > BOUNDS_SHARE * width:
                found.setdefault(name, []).append(
                    f"validation tolerance {tolerance:g} is wider than a tenth of its bounds' span "
                    f"{width:g}: a typical step may pass before the machine moved")
    return found


def dependencies_from_mirror(config: Mapping[str, Any], variables: Iterable[str],
                             configs: Mapping[str, Any]) -> dict[str, set[str]]:
    """{observable: variables it is computed from} in a soft IOC config (the dry run's mirror).

    An observable's inputs name readbacks or setpoints; a readback is its variable's through
    the variable's validation config.
    """
    owner = {name: name for name in variables}
    for name in list(owner):
        readback = validation_keywords(configs.get(name)).get(READBACK_KEY)
        if isinstance(readback, str):
            owner[readback] = name
    for table in config.get("setpoint", []):  # the mirror's own readback of each setpoint
        if isinstance(table, Mapping) and table.get("name") in owner and isinstance(table.get("readback"), str):
            owner.setdefault(table["readback"], owner[table["name"]])
    found: dict[str, set[str]] = {}
    for table in config.get("observable", []):
        if not isinstance(table, Mapping) or not isinstance(table.get("name"), str):
            continue
        inputs = table.get("inputs") or {}
        used = set(re.findall(r"[A-Za-z_]\w*", str(table.get("expression", ""))))
        found[table["name"]] = {owner[pv] for var, pv in inputs.items() if var in used and pv in owner}
    return found


def rate_warnings(observable_rates: Mapping[str, float | None],
                  readback_rates: Mapping[str, float | None]) -> list[str]:
    """Warnings for each observable that updates more slowly than the validated readbacks.

    A validation finishes at a readback update; an observable slower than its readbacks is
    then read, right after the set, before its own next update. Rates are updates per second.
    """
    fastest = max((r for r in readback_rates.values() if r), default=None)
    if fastest is None:
        return []
    warnings = []
    for name, rate in observable_rates.items():
        if rate and rate < SLOWER * fastest:
            warnings.append(
                f"{name} updates at {rate:.3g} Hz, more slowly than validations finish (readbacks at "
                f"{fastest:.3g} Hz): read right after a validated set it may hold its value from before "
                "the set; set EPICS_PVA_INTERFACE_FRESH_READS=1 or give it a read function (first_after)")
    return warnings
