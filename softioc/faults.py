"""Fault kinds and the per-IOC book of armed faults (pure Python, no p4p).

A fault kind is one frozen dataclass subclassing `Fault`: it names itself (`kind`), says which
PVs it may target (`targets`) and carries its hooks (`put_effect`, `readback_effect`,
`downtime`). Defining the class registers it; nothing else needs to change.

Durations (`duration`, `complete_after`) are wall-clock seconds, because they concern the
network and the clients' timeouts; `drift` is in units per *simulated* second, because it
concerns the simulated machine. Probabilistic faults draw from a generator seeded by the IOC
seed, the PV and the fault's arming order: the same seed and the same puts give the same faults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import threading
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .alarms import AlarmState, severity_number

SERVER = "*"
"""The PV name under which a whole-server fault (an outage of every PV) is armed."""

SETPOINT, READ_ONLY, WHOLE_SERVER = "setpoint", "read-only PV", "whole server"
"""What a fault may target: a setpoint, any other served PV, or the whole server ('*')."""

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
class ReadbackEffect:
    """What armed faults do to a setpoint's readback: frozen, offset (units), drifting (units per
    simulated s), posted at `rate` Hz (None: every update)."""

    stuck: bool = False
    bias: float = 0.0
    drift: float = 0.0
    rate: float | None = None

    def combine(self, other: ReadbackEffect) -> ReadbackEffect:
        """Both effects at once: stuck if either is, biases and drifts add, the slower rate wins."""
        rates = [r for r in (self.rate, other.rate) if r is not None]
        return ReadbackEffect(
            self.stuck or other.stuck, self.bias + other.bias, self.drift + other.drift,
            min(rates) if rates else None,
        )


NO_EFFECT = ReadbackEffect()


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


@dataclass(frozen=True)
class PutTimeout(PutFault):
    """The next `count` puts (None: every put) are never completed, so clients time out.

    `apply` decides whether the value still reaches the device while the put hangs (real IOCs
    do both); `complete_after` (seconds) completes the held put late instead of never.
    """

    kind: ClassVar[str] = "put_timeout"
    apply: bool = False
    complete_after: float | None = seconds(None)

    def put_effect(self, value: Any) -> PutEffect:
        return PutEffect(hold=True, apply=self.apply, complete_after=self.complete_after)


@dataclass(frozen=True)
class PutReject(PutFault):
    """The next `count` puts (None: every put) fail with a remote error carrying `message`."""

    kind: ClassVar[str] = "put_reject"
    message: str = "put rejected by fault injection"

    def put_effect(self, value: Any) -> PutEffect:
        return PutEffect(reject=self.message)


@dataclass(frozen=True)
class StuckReadback(Fault):
    """The readback stops following the setpoint (frozen at its last value) until cleared."""

    kind: ClassVar[str] = "stuck_readback"
    duration: float | None = seconds(None)

    def readback_effect(self) -> ReadbackEffect:
        return ReadbackEffect(stuck=True)


@dataclass(frozen=True)
class ReadbackBias(Fault):
    """The readback settles `bias` off target, and drifts further by `drift` per simulated second."""

    kind: ClassVar[str] = "readback_bias"
    bias: float = 0.0
    drift: float = 0.0
    duration: float | None = seconds(None)

    def readback_effect(self) -> ReadbackEffect:
        return ReadbackEffect(bias=self.bias, drift=self.drift)


@dataclass(frozen=True)
class SlowReadback(Fault):
    """The readback posts at `rate` Hz instead of the IOC's update rate (0: stops posting)."""

    kind: ClassVar[str] = "slow_readback"
    rate: float = bounded(0.0, low=0.0)
    duration: float | None = seconds(None)

    def readback_effect(self) -> ReadbackEffect:
        return ReadbackEffect(rate=self.rate)


@dataclass(frozen=True)
class Outage(Fault):
    """The PV (setpoint and readback; every PV when armed on '*') disappears for `duration` s."""

    kind: ClassVar[str] = "outage"
    targets: ClassVar[frozenset[str]] = frozenset({SETPOINT, READ_ONLY, WHOLE_SERVER})
    duration: float = seconds(1.0)

    def downtime(self) -> float:
        return self.duration


@dataclass(frozen=True)
class Alarm(Fault):
    """The PV (any served PV) publishes this alarm while armed, its value unchanged, as a
    tripped supply or a broken link shows on the wire; clearing restores its computed alarm.

    `severity` is MINOR, MAJOR or INVALID; `status` the alarm.status published (1: DEVICE).
    """

    kind: ClassVar[str] = "alarm"
    targets: ClassVar[frozenset[str]] = frozenset({SETPOINT, READ_ONLY})
    severity: str = "INVALID"
    message: str = "alarm by fault injection"
    status: int = bounded(1, 0, 7)
    duration: float | None = seconds(None)

    def __post_init__(self) -> None:
        try:
            severity_number(self.severity)
        except ValueError as exc:
            raise ValueError(f"fault 'alarm': {exc}") from None

    def alarm_effect(self) -> AlarmState:
        return severity_number(self.severity), int(self.status), self.message


def check_target(kind: str | type[Fault], pv: str, setpoints: Collection[str], served: Collection[str]) -> None:
    """Raise ValueError unless a fault of `kind` may be armed on `pv` (config and arming alike)."""
    cls = kind if isinstance(kind, type) else fault_kind(kind)
    if pv == SERVER:
        role, what = WHOLE_SERVER, f"'{SERVER}' (the whole server) does not take"
    elif pv in setpoints:
        role, what = SETPOINT, f"{pv!r} is a setpoint, which does not take"
    elif pv in served:
        role, what = READ_ONLY, f"{pv!r} is not a setpoint, so does not take"
    else:
        raise ValueError(f"{pv!r} is not served by this soft IOC (use '{SERVER}' for the whole server)")
    if role not in cls.targets:
        allowed = ", ".join(_TARGET_NAMES[t] for t in sorted(cls.targets))
        raise ValueError(f"{what} fault {cls.kind!r} (it targets: {allowed})")


_TARGET_NAMES = {SETPOINT: "a setpoint", READ_ONLY: "a read-only PV", WHOLE_SERVER: f"the whole server ('{SERVER}')"}


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


@dataclass
class ArmedFault:
    """A fault armed on one PV, with how often it has fired and when it expires (monotonic s)."""

    pv: str
    fault: Fault
    rng: random.Random
    armed_at: float
    expires_at: float | None = None
    fired: int = 0
    remaining: int | None = field(default=None)

    def spent(self, now: float) -> bool:
        """True once a count-based fault fired `count` times or a timed fault expired."""
        if self.remaining is not None and self.remaining <= 0:
            return True
        return self.expires_at is not None and now >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        return {"pv": self.pv, **describe(self.fault), "fired": self.fired, "remaining": self.remaining}


class FaultBook:
    """Thread-safe registry of the faults armed on an IOC's PVs."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._armed: list[ArmedFault] = []
        self._serial = 0

    def arm(self, pv: str, fault: Fault, now: float) -> ArmedFault:
        """Arm `fault` on `pv`; count-based put faults start with `count` shots."""
        with self._lock:
            self._serial += 1
            digest = hashlib.sha256(f"{self._seed}:{pv}:{fault.kind}:{self._serial}".encode()).digest()
            duration = fault.duration_s
            shots = fault.count if isinstance(fault, PutFault) and fault.probability is None else None
            armed = ArmedFault(
                pv=pv, fault=fault, rng=random.Random(int.from_bytes(digest[:8], "big")), armed_at=now,
                expires_at=None if duration is None else now + duration, remaining=shots,
            )
            self._armed.append(armed)
            return armed

    def clear(self, pv: str | None = None) -> list[ArmedFault]:
        """Disarm every fault on `pv` (every fault when None); returns what was removed."""
        with self._lock:
            removed = [a for a in self._armed if pv is None or a.pv == pv]
            self._armed = [a for a in self._armed if not (pv is None or a.pv == pv)]
            return removed

    def expire(self, now: float) -> list[ArmedFault]:
        """Remove and return the faults that are spent at monotonic time `now`."""
        with self._lock:
            gone = [a for a in self._armed if a.spent(now)]
            if gone:
                self._armed = [a for a in self._armed if not a.spent(now)]
            return gone

    def active(self, pv: str | None = None) -> list[ArmedFault]:
        """The armed faults, in arming order."""
        with self._lock:
            return [a for a in self._armed if pv is None or a.pv == pv]

    def take_put_fault(self, pv: str, now: float) -> ArmedFault | None:
        """Decide whether a put to `pv` arriving now is faulted; consumes one shot if so."""
        with self._lock:
            for armed in self._armed:
                fault = armed.fault
                if armed.pv != pv or not isinstance(fault, PutFault) or armed.spent(now):
                    continue
                if fault.probability is not None:
                    if armed.rng.random() >= fault.probability:
                        continue
                elif armed.remaining is not None:
                    armed.remaining -= 1
                armed.fired += 1
                return armed
            return None

    def alarms(self, now: float) -> dict[str, AlarmState]:
        """The alarm each PV with an alarm fault armed publishes (the latest armed wins)."""
        found: dict[str, AlarmState] = {}
        with self._lock:
            for armed in self._armed:
                alarm = armed.fault.alarm_effect()
                if alarm is not None and not armed.spent(now):
                    found[armed.pv] = alarm
        return found

    def readback_effects(self, now: float) -> dict[str, ReadbackEffect]:
        """The combined readback effect per PV with a readback fault armed, in one pass."""
        effects: dict[str, ReadbackEffect] = {}
        with self._lock:
            for armed in self._armed:
                effect = armed.fault.readback_effect()
                if effect is None or armed.spent(now):
                    continue
                effects[armed.pv] = effects.get(armed.pv, NO_EFFECT).combine(effect)
        return effects
