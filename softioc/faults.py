"""Fault descriptions and the per-IOC book of armed faults (pure Python, no p4p).

Durations (`duration`, `complete_after`) are wall-clock seconds, because they concern the
network and the clients' timeouts; `drift` is in units per *simulated* second, because it
concerns the simulated machine. Probabilistic faults draw from a generator seeded by the IOC
seed, the PV and the fault's arming order: the same seed and the same puts give the same faults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

SERVER = "*"
"""The PV name under which a whole-server fault (an outage of every PV) is armed."""


@dataclass(frozen=True)
class PutTimeout:
    """The next `count` puts (None: every put) are never completed, so clients time out.

    `apply` decides whether the value still reaches the device while the put hangs (real IOCs
    do both); `complete_after` (seconds) completes the held put late instead of never.
    """

    kind: ClassVar[str] = "put_timeout"
    count: int | None = 1
    probability: float | None = None
    apply: bool = False
    complete_after: float | None = None


@dataclass(frozen=True)
class PutReject:
    """The next `count` puts (None: every put) fail with a remote error carrying `message`."""

    kind: ClassVar[str] = "put_reject"
    count: int | None = 1
    probability: float | None = None
    message: str = "put rejected by fault injection"


@dataclass(frozen=True)
class StuckReadback:
    """The readback stops following the setpoint (frozen at its last value) until cleared."""

    kind: ClassVar[str] = "stuck_readback"
    duration: float | None = None


@dataclass(frozen=True)
class ReadbackBias:
    """The readback settles `bias` off target, and drifts further by `drift` per simulated second."""

    kind: ClassVar[str] = "readback_bias"
    bias: float = 0.0
    drift: float = 0.0
    duration: float | None = None


@dataclass(frozen=True)
class SlowReadback:
    """The readback posts at `rate` Hz instead of the IOC's update rate (0: stops posting)."""

    kind: ClassVar[str] = "slow_readback"
    rate: float = 0.0
    duration: float | None = None


@dataclass(frozen=True)
class Outage:
    """The PV (setpoint and readback; every PV when armed on '*') disappears for `duration` s."""

    kind: ClassVar[str] = "outage"
    duration: float = 1.0


Fault = PutTimeout | PutReject | StuckReadback | ReadbackBias | SlowReadback | Outage
FAULT_TYPES: dict[str, type] = {
    cls.kind: cls
    for cls in (PutTimeout, PutReject, StuckReadback, ReadbackBias, SlowReadback, Outage)
}
PUT_FAULTS = (PutTimeout, PutReject)
NO_READBACK_FAULT: tuple[bool, float, float, float | None] = (False, 0.0, 0.0, None)


def fault_from_dict(kind: str, params: Mapping[str, Any]) -> Fault:
    """Build a fault from its kind name and parameters, with errors naming the bad key or value."""
    cls = FAULT_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown fault kind {kind!r} (known: {sorted(FAULT_TYPES)})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in params.items():
        if key not in fields:
            raise ValueError(f"fault {kind!r} has no parameter {key!r} (parameters: {sorted(fields)})")
        _check_param(kind, key, value, fields[key].type)
    fault = cls(**params)
    _check_fault(fault)
    return fault


def _check_param(kind: str, key: str, value: Any, annotation: Any) -> None:
    text = str(annotation)
    if value is None and "None" in text:
        return
    if "bool" in text:
        ok = isinstance(value, bool)
    elif "int" in text:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif "float" in text:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError(f"fault {kind!r} parameter {key!r} has the wrong type: {value!r} ({text} expected)")


def _check_fault(fault: Fault) -> None:
    count = getattr(fault, "count", None)
    if count is not None and count < 1:
        raise ValueError(f"fault {fault.kind!r}: count must be >= 1 or None (always), got {count}")
    probability = getattr(fault, "probability", None)
    if probability is not None and not 0.0 <= probability <= 1.0:
        raise ValueError(f"fault {fault.kind!r}: probability must be within [0, 1], got {probability}")
    for name in ("duration", "complete_after", "rate"):
        value = getattr(fault, name, None)
        if value is not None and value < 0:
            raise ValueError(f"fault {fault.kind!r}: {name} must be >= 0, got {value}")


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
            duration = getattr(fault, "duration", None)
            armed = ArmedFault(
                pv=pv,
                fault=fault,
                rng=random.Random(int.from_bytes(digest[:8], "big")),
                armed_at=now,
                expires_at=None if duration is None else now + duration,
                remaining=fault.count if isinstance(fault, PUT_FAULTS) and fault.probability is None else None,
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
                if armed.pv != pv or not isinstance(armed.fault, PUT_FAULTS) or armed.spent(now):
                    continue
                if armed.fault.probability is not None:
                    if armed.rng.random() >= armed.fault.probability:
                        continue
                elif armed.remaining is not None:
                    armed.remaining -= 1
                armed.fired += 1
                return armed
            return None

    def readback_state(self, pv: str, now: float) -> tuple[bool, float, float, float | None]:
        """(stuck, bias, drift per simulated s, post rate Hz or None) for a setpoint's readback."""
        return self.readback_states(now).get(pv, NO_READBACK_FAULT)

    def readback_states(self, now: float) -> dict[str, tuple[bool, float, float, float | None]]:
        """readback_state of every PV with a readback fault armed, in one pass (the update loop's view)."""
        states: dict[str, tuple[bool, float, float, float | None]] = {}
        with self._lock:
            for armed in self._armed:
                fault = armed.fault
                if not isinstance(fault, (StuckReadback, ReadbackBias, SlowReadback)) or armed.spent(now):
                    continue
                stuck, bias, drift, rate = states.get(armed.pv, NO_READBACK_FAULT)
                if isinstance(fault, StuckReadback):
                    stuck = True
                elif isinstance(fault, ReadbackBias):
                    bias += fault.bias
                    drift += fault.drift
                else:
                    rate = fault.rate if rate is None else min(rate, fault.rate)
                states[armed.pv] = (stuck, bias, drift, rate)
        return states
