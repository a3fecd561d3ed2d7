"""The per-IOC book of armed faults: arming, expiry, which put a fault takes, combined effects.

Probabilistic faults draw from a generator seeded by the IOC seed, the PV and the fault's
arming order: the same seed and the same puts give the same faults.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from ..model import AlarmState
from ._base import NO_EFFECT, Fault, PutFault, ReadbackEffect, describe

__all__ = ["ArmedFault", "FaultBook"]


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
