"""Variable bounds from the machine: each setpoint's control (drive) limits, as its PV publishes them.

An environment calls :func:`bounds_from_limits` from its ``get_bounds``::

    def get_bounds(self, variable_names):
        return bounds_from_limits(self.interface, variable_names)

Badger asks ``get_bounds`` when it loads the environment (the variable table's ranges), when
an operator adds a variable, and before *every* ``set_variables`` (its setpoint check): the
bounds read here are the machine's hard limits, and Badger's "Automatic" range narrows them
around the current value. One concurrent get of every PV per call; no put.

A PV that publishes no limits (``control.limitLow == control.limitHigh``, EPICS's 0/0 default,
or no ``control`` structure at all) is refused, naming it: an optimiser must not guess how
far a magnet may go.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..core import Alarm, alarm_of, check_names, read_failure
from ..errors import BadgerEnvironmentError, ReadError
from ..results import show
from ..transport import to_python
from .summary import lead_with_summary

__all__ = ["LIMITS_REQUEST", "BoundsError", "bounds_from_limits", "limits_of"]

#: what a bounds read asks of each PV: its value, alarm and control limits
LIMITS_REQUEST = "field(value,alarm,control)"


class BoundsError(BadgerEnvironmentError):
    """No bounds can be taken from the machine for some variables: `problems` maps each PV to why."""

    def __init__(self, problems: Mapping[str, str], total: int) -> None:
        self.problems = dict(problems)
        lines = [f"No bounds from the machine for {len(self.problems)} of {total} variable(s):"]
        lines += [f"  {pv}: {why}" for pv, why in self.problems.items()]
        super().__init__("\n".join(lines))


def _delegate(interface: Any) -> Any:
    """The epics_pva.Interface doing the reads: the interface itself, or the Badger plugin's delegate."""
    from ..core import Interface as PvaInterface

    if isinstance(interface, PvaInterface):
        return interface
    inner = getattr(interface, "_interface", None)  # epics_pva.badger.Interface builds it on demand
    if callable(inner):
        found = inner()
        if isinstance(found, PvaInterface):
            return found
    if interface is None:
        raise BadgerEnvironmentError(
            "the environment has no interface to read its PVs' limits with (did Badger fail to build "
            "the epics_pva interface? its log says why)"
        )
    raise TypeError(
        f"bounds_from_limits reads through epics_pva's interface, not a {type(interface).__name__}; "
        "select the epics_pva interface in the environment's configs.yaml"
    )


def limits_of(interface: Any, names: Iterable[str]) -> dict[str, tuple[tuple[float, float] | None, Any, Alarm]]:
    """Read each PV once: {pv: (control limits or None, current value, alarm)}, in the order asked.

    The limits are (control.limitLow, control.limitHigh) as published, 0/0 included; None when
    the PV has no control structure.

    Raises ReadError naming every PV that could not be read, as get_values does.
    """
    pva = _delegate(interface)
    names = check_names(names)
    if not names:
        return {}
    timeout = float(pva.timeout)
    # the interface's own context: its client settings, prefix and at-fork handling
    context = pva._connection.context()
    replies = context.get(names, request=[LIMITS_REQUEST] * len(names), timeout=timeout, throw=False)
    found: dict[str, tuple[tuple[float, float] | None, Any, Alarm]] = {}
    failures: dict[str, str] = {}
    for name, reply in zip(names, replies, strict=True):
        if isinstance(reply, BaseException):
            failures[name] = read_failure(reply, timeout)
            continue
        raw = getattr(reply, "raw", reply)
        limits = None
        if "control" in raw:
            low, high = float(raw["control.limitLow"]), float(raw["control.limitHigh"])
            limits = (low, high)
        try:
            value = to_python(reply)
        except ValueError as exc:
            value = f"unreadable: {exc}"
        found[name] = (limits, value, alarm_of(reply))
    if failures:
        raise ReadError(failures)
    return found


def bounds_from_limits(
    interface: Any,
    names: Iterable[str],
    fraction: float | None = None,
    delta: float | None = None,
) -> dict[str, list[float]]:
    """Each variable's bounds ``{pv: [low, high]}`` from its PV's control (drive) limits.

    ``interface`` is the environment's interface (``epics_pva.badger.Interface``, or an
    ``epics_pva.Interface``); ``names`` the variables (any iterable of PV names, a dict's
    keys included). With neither option the bounds are the limits themselves: the machine's
    hard range, which Badger's "Automatic" range narrows around the current value.

    - ``fraction`` (0 < fraction <= 1): a window that wide a share of the limits' span,
      centred on the current value (Badger's "ratio with full range" done here);
    - ``delta`` (> 0): the current value plus or minus ``delta``.

    Either window is clipped to the limits. Badger calls ``get_bounds`` before every set,
    so a window around the *current* value moves with the machine: an environment using
    one should compute it once and keep it (see docs/badger.md).

    Raises BoundsError naming each PV that publishes no limits (low == high, 0/0 by default,
    or no control structure), or whose window is empty; ReadError when a PV cannot be read.
    """
    try:
        return _bounds(interface, names, fraction, delta)
    except (BoundsError, ReadError) as exc:  # Badger's dialogs show the PV and why first
        lead_with_summary(exc)
        raise


def _bounds(interface: Any, names: Iterable[str], fraction: float | None, delta: float | None) -> dict[str, list[float]]:
    if fraction is not None and delta is not None:
        raise ValueError("give fraction or delta, not both")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction must be within (0, 1], not {fraction!r}")
    if delta is not None and not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a finite number > 0, not {delta!r}")
    read = limits_of(interface, names)
    bounds: dict[str, list[float]] = {}
    problems: dict[str, str] = {}
    for pv, (limits, value, alarm) in read.items():
        if limits is None:
            problems[pv] = "publishes no control limits (no control structure); give its bounds in the environment"
            continue
        low, high = limits
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            problems[pv] = (f"publishes no usable control limits (low {low:g}, high {high:g}; DRVL/DRVH "
                            "unset?); give its bounds in the environment")
            continue
        if fraction is None and delta is None:
            bounds[pv] = [low, high]
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            problems[pv] = f"current value {show(value)} is no number to centre a window on"
            continue
        if alarm.invalid:
            problems[pv] = f"current value {value:g} is in {alarm}: no window around it"
            continue
        half = 0.5 * fraction * (high - low) if fraction is not None else float(delta or 0.0)
        window = [max(low, value - half), min(high, value + half)]
        if window[0] >= window[1]:
            problems[pv] = (f"current value {value:g} lies outside its control limits [{low:g}, {high:g}]: "
                            "no window within them")
            continue
        bounds[pv] = window
    if problems:
        raise BoundsError(problems, len(read))
    return bounds
