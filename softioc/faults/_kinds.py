"""The built-in fault kinds: put timeouts and rejects, stuck, biased and slow readbacks,
outages and alarms. Each is one frozen dataclass; defining it registers its `kind`. Their
times are wall-clock seconds, `drift` units per simulated second (see the package's docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..model import AlarmState, severity_number
from ._base import (
    READ_ONLY,
    SETPOINT,
    WHOLE_SERVER,
    Fault,
    PutEffect,
    PutFault,
    ReadbackEffect,
    bounded,
    seconds,
)

__all__ = ["Alarm", "Outage", "PutReject", "PutTimeout", "ReadbackBias", "SlowReadback", "StuckReadback"]


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
