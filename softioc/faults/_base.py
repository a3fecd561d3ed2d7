"""What every fault kind is built on: the `Fault` base, the effects its hooks return, the
registry of kinds, and the checks that arm one from a name and parameters (pure Python, no p4p).
The readback effect is the model's (softioc.model.ReadbackEffect): what it applies each step.

A fault kind is one frozen dataclass subclassing `Fault` (`_kinds` holds the built-in
ones): it names itself (`kind`), says which PVs it may target (`targets`) and carries its hooks
(`put_effect`, `readback_effect`, `downtime`, `alarm_effect`). Defining the class registers it.
Its parameters are checked from the field types; `seconds(...)` and `bounded(...)` give ranges.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..model import NO_EFFECT, AlarmState, ReadbackEffect

__all__ = ["FAULT_KINDS", "MAX_SECONDS", "NO_EFFECT", "OBSERVABLE", "READ_ONLY", "SERVER", "SETPOINT", "WHOLE_SERVER",
           "Fault", "PutEffect", "PutFault", "ReadbackEffect", "bounded", "check_target", "describe",
           "fault_from_dict", "fault_kind", "seconds"]

SERVER = "*"
"""The PV name under which a whole-server fault (an outage of every PV) is armed."""

SETPOINT, READ_ONLY, OBSERVABLE, WHOLE_SERVER = "setpoint", "read-only PV", "observable", "whole server"
"""What a fault may target: a setpoint, a readback PV (any other served PV that is not an
observable), an observable, or the whole server ('*')."""

MAX_SECONDS = 3600.0
"""Longest duration, delay or late completion a fault accepts (s), as RESTART does."""


def seconds(default: float | None, **extra: Any) -> Any:
    """A dataclass field holding a time in seconds, checked within [0, MAX_SECONDS]."""
    return field(default=default, metadata={"min": 0.0, "max": MAX_SECONDS, **extra})


def bounded(default: Any, low: float | None = None, high: float | None = None) -> Any:
    """A dataclass field whose value (when not None) must lie within [low, high]."""
    return field(default=default, metadata={"min": low, "max": high})


FAULT_KINDS: dict[str, type[Fault]] = {}
"""Every fault kind by its `kind` name; filled by defining a subclass of `Fault`."""


@dataclass(frozen=True)
class PutEffect:
    """What a fault does to one put: refuse it with `reject`, or `hold` it open.

    A held put reaches the device at once when `apply`, else when it completes; it completes
    after `complete_after` s, or is abandoned with an error when that is None.
    """

    reject: str | None = None
    hold: bool = False
    apply: bool = True
    complete_after: float | None = None


@dataclass(frozen=True)
class Fault:
    """Base of every fault kind; a subclass with a `kind` registers itself in FAULT_KINDS."""

    kind: ClassVar[str]
    targets: ClassVar[frozenset[str]] = frozenset({SETPOINT})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is None:
            return  # an abstract base such as PutFault
        if kind in FAULT_KINDS and FAULT_KINDS[kind].__qualname__ != cls.__qualname__:
            raise ValueError(f"fault kind {kind!r} is already defined by {FAULT_KINDS[kind].__qualname__}")
        FAULT_KINDS[kind] = cls

    @property
    def duration_s(self) -> float | None:
        """Seconds until the armed fault expires by itself (None: until cleared or spent)."""
        return getattr(self, "duration", None)

    def put_effect(self, value: Any) -> PutEffect | None:
        """What this fault does to a put of `value` when it fires (None: nothing)."""
        return None

    def readback_effect(self) -> ReadbackEffect | None:
        """What this fault does to its setpoint's readback while armed (None: nothing)."""
        return None

    def downtime(self) -> float | None:
        """Seconds the target is taken off the network when the fault fires (None: it is not)."""
        return None

    def alarm_effect(self) -> AlarmState | None:
        """The (severity, status, message) its PV publishes while armed (None: its own alarm)."""
        return None


@dataclass(frozen=True)
class PutFault(Fault):
    """A fault that fires on the next `count` puts (None: every put), or on each with `probability`."""

    count: int | None = bounded(1, low=1)
    probability: float | None = bounded(None, 0.0, 1.0)


def check_target(kind: str | type[Fault], pv: str, setpoints: Collection[str], served: Collection[str],
                 observables: Collection[str] = ()) -> None:
    """Raise ValueError unless a fault of `kind` may be armed on `pv` (config and arming alike)."""
    cls = kind if isinstance(kind, type) else fault_kind(kind)
    if pv == SERVER:
        role, what = WHOLE_SERVER, f"'{SERVER}' (the whole server) does not take"
    elif pv in setpoints:
        role, what = SETPOINT, f"{pv!r} is a setpoint, which does not take"
    elif pv in observables:
        role, what = OBSERVABLE, f"{pv!r} is an observable, which does not take"
    elif pv in served:
        role, what = READ_ONLY, f"{pv!r} is not a setpoint, so does not take"
    else:
        raise ValueError(f"{pv!r} is not served by this soft IOC (use '{SERVER}' for the whole server)")
    if role not in cls.targets:
        allowed = ", ".join(_TARGET_NAMES[t] for t in sorted(cls.targets))
        raise ValueError(f"{what} fault {cls.kind!r} (it targets: {allowed})")


_TARGET_NAMES = {SETPOINT: "a setpoint", READ_ONLY: "a readback PV", OBSERVABLE: "an observable", WHOLE_SERVER: f"the whole server ('{SERVER}')"}


def fault_kind(kind: str) -> type[Fault]:
    """The registered fault class called `kind`; ValueError naming the known kinds otherwise."""
    cls = FAULT_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown fault kind {kind!r} (known: {sorted(FAULT_KINDS)})")
    return cls


def fault_from_dict(kind: str, params: Mapping[str, Any]) -> Fault:
    """Build a fault from its kind name and parameters, with errors naming the bad key or value."""
    cls = fault_kind(kind)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in params.items():
        if key not in fields:
            raise ValueError(f"fault {kind!r} has no parameter {key!r} (parameters: {sorted(fields)})")
        _check_param(kind, key, value, hints[key], fields[key].metadata)
    return cls(**params)


def _allowed(annotation: Any) -> tuple[Any, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def _check_param(kind: str, key: str, value: Any, annotation: Any, meta: Mapping[str, Any]) -> None:
    allowed = _allowed(annotation)
    if value is None and type(None) in allowed:
        return
    if isinstance(value, bool):
        ok = bool in allowed
    elif isinstance(value, int):
        ok = int in allowed or float in allowed
    else:
        ok = any(isinstance(value, t) for t in allowed if isinstance(t, type) and t is not type(None))
    if not ok:
        names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
        raise ValueError(f"fault {kind!r} parameter {key!r} has the wrong type: {value!r} ({names} expected)")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int beyond float range
            finite = False
        if not finite:
            raise ValueError(f"fault {kind!r}: {key} must be a finite number, got {value!r}")
        low, high = meta.get("min"), meta.get("max")
        if low is not None and value < low or high is not None and value > high:
            span = f"within [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
            extra = " or None" if type(None) in allowed else ""
            raise ValueError(f"fault {kind!r}: {key} must be {span}{extra}, got {value!r}")


def describe(fault: Fault) -> dict[str, Any]:
    """A JSON-able description: the kind plus every parameter."""
    return {"kind": fault.kind, **dataclasses.asdict(fault)}
