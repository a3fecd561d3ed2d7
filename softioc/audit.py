"""The IOC's record of every put it received and every fault that fired."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

ACCEPTED = "accepted"
REJECTED = "rejected"
TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class PutRecord:
    """One put as the server saw it: `outcome` is accepted, rejected or timed_out.

    `value` is what the client asked for, `applied` what the device took (a put beyond a
    setpoint's limits is clamped to them); None when nothing was applied.
    """

    pv: str
    value: Any
    wall_time: float
    sim_time: float
    outcome: str
    message: str = ""
    fault: str | None = None
    peer: str = ""
    applied: Any = None

    @property
    def accepted(self) -> bool:
        return self.outcome == ACCEPTED


@dataclass(frozen=True)
class FaultRecord:
    """A fault that fired (or was armed, cleared, expired): what happened to which PV, when."""

    pv: str
    kind: str
    event: str
    wall_time: float
    sim_time: float
    detail: dict[str, Any] = field(default_factory=dict)


class Audit:
    """Thread-safe, append-only log that tests query after the fact."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._puts: list[PutRecord] = []
        self._faults: list[FaultRecord] = []

    def record_put(self, record: PutRecord) -> None:
        with self._lock:
            self._puts.append(record)

    def record_fault(self, record: FaultRecord) -> None:
        with self._lock:
            self._faults.append(record)

    def puts(self, pv: str | None = None, outcome: str | None = None) -> list[PutRecord]:
        """Puts received, oldest first, optionally only those to `pv` or with `outcome`."""
        with self._lock:
            return [
                r for r in self._puts
                if (pv is None or r.pv == pv) and (outcome is None or r.outcome == outcome)
            ]

    def put_count(self) -> int:
        """How many puts were recorded (cheap: no copy, for publishing every update)."""
        with self._lock:
            return len(self._puts)

    def faults(self, pv: str | None = None, event: str | None = "fired") -> list[FaultRecord]:
        """Fault events, oldest first; by default only faults that fired."""
        with self._lock:
            return [
                r for r in self._faults
                if (pv is None or r.pv == pv) and (event is None or r.event == event)
            ]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._puts.clear()
            self._faults.clear()
