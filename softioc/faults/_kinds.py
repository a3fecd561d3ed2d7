"""The built-in fault kinds: put timeouts and rejects, stuck, biased and slow readbacks,
outages and alarms. Each is one frozen dataclass; defining it registers its `kind`. Their
times are wall-clock seconds, `drift` units per simulated second (see the package's docstring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..model import SEVERITIES, AlarmState, severity_number
from ._base import (
    OBSERVABLE,
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

__all__ = ["Alarm", "ForcedValue", "Outage", "PutReject", "PutTimeout", "ReadbackBias", "SlowReadback", "StuckReadback"]


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
    """The readback stops following the setpoint (frozen at its last value) until cleared; on an
    observable, the observable stops following its inputs."""

    kind: ClassVar[str] = "stuck_readback"
    targets: ClassVar[frozenset[str]] = frozenset({SETPOINT, OBSERVABLE})
    duration: float | None = seconds(None)

    def readback_effect(self) -> ReadbackEffect:
        return ReadbackEffect(stuck=True)


@dataclass(frozen=True)
class ReadbackBias(Fault):
    """The readback settles `bias` off target, and drifts further by `drift` per simulated second
    (an observable reads `bias` plus the drift off what its inputs compute)."""

    kind: ClassVar[str] = "readback_bias"
    targets: ClassVar[frozenset[str]] = frozenset({SETPOINT, OBSERVABLE})
    bias: float = 0.0
    drift: float = bounded(0.0, low=-1e15, high=1e15)  # units/s, as a setpoint's `rate` is bounded
    duration: float | None = seconds(None)

    def readback_effect(self) -> ReadbackEffect:
        return ReadbackEffect(bias=self.bias, drift=self.drift)


@dataclass(frozen=True)
class SlowReadback(Fault):
    """The readback (or observable) posts at `rate` Hz instead of the IOC's update rate (0: stops posting)."""

    kind: ClassVar[str] = "slow_readback"
    targets: ClassVar[frozenset[str]] = frozenset({SETPOINT, OBSERVABLE})
    rate: float = bounded(0.0, low=0.0, high=1000.0)  # Hz: no faster than an update loop may step
    duration: float | None = seconds(None)

    def readback_effect(self) -> ReadbackEffect:
        return ReadbackEffect(rate=self.rate)


@dataclass(frozen=True)
class Outage(Fault):
    """The PV (setpoint and readback; every PV when armed on '*') disappears for `duration` s."""

    kind: ClassVar[str] = "outage"
    targets: ClassVar[frozenset[str]] = frozenset({SETPOINT, READ_ONLY, OBSERVABLE, WHOLE_SERVER})
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
    targets: ClassVar[frozenset[str]] = frozenset({SETPOINT, READ_ONLY, OBSERVABLE})
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


@dataclass(frozen=True)
class ForcedValue(Fault):
    """A readback PV or an observable holds `value` with alarm `severity` (0-3, or a name:
    MINOR, MAJOR, INVALID) and `message` until cleared (or for `duration` s), whatever the
    machine does: a frozen ADC, a monitor reading a fixed number, a known-bad detector.

    Clearing it gives the PV back its computed value and alarm at the next update step.
    """

    kind: ClassVar[str] = "forced_value"
    targets: ClassVar[frozenset[str]] = frozenset({READ_ONLY, OBSERVABLE})
    value: float = 0.0
    severity: int | str = 0
    message: str = ""
    duration: float | None = seconds(None)

    def __post_init__(self) -> None:
        if isinstance(self.severity, str):
            if self.severity not in SEVERITIES:
                raise ValueError(f"fault 'forced_value': severity must be 0-3 or one of {sorted(SEVERITIES)}, "
                                 f"got {self.severity!r}")
        elif isinstance(self.severity, bool) or self.severity not in (0, 1, 2, 3):
            raise ValueError(f"fault 'forced_value': severity must be 0-3 or one of {sorted(SEVERITIES)}, "
                             f"got {self.severity!r}")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise ValueError(f"fault 'forced_value': value must be a finite number, got {self.value!r}")

    @property
    def severity_number(self) -> int:
        return SEVERITIES[self.severity] if isinstance(self.severity, str) else int(self.severity)

    def readback_effect(self) -> ReadbackEffect:
        return ReadbackEffect(forced=float(self.value))

    def alarm_effect(self) -> AlarmState:
        severity = self.severity_number
        return severity, 1 if severity else 0, self.message
