"""What the model is built from and given: a device's and an observable's parameters, the
settings a simulation reads, and the effect armed faults have on a readback.

softioc.config reads these from TOML (its IOCConfig is a ModelConfig); fault kinds
(softioc.faults) give ReadbackEffects, which the model applies each step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._alarms import AlarmLimits

__all__ = ["LIMIT_ACTIONS", "NO_EFFECT", "ModelConfig", "ModelSettings", "ObservableConfig", "ReadbackEffect",
           "SetpointConfig"]


@dataclass(frozen=True)
class SetpointConfig:
    """One simulated device: a setpoint PV and (optionally) the readback PV that follows it."""

    name: str
    readback: str | None = None
    type: str = "double"
    initial: Any = None
    limits: tuple[float, float] | None = None
    lag: str = "none"
    tau: float = 1.0
    rate: float = 1.0
    noise: float = 0.0
    offset: float = 0.0
    units: str = ""
    precision: int | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None
    description: str = ""
    limit_action: str = "clamp"  # a put beyond `limits`: "clamp" to the limit (as an ao), or "reject"
    alarm_limits: AlarmLimits | None = None  # applies to the readback
    udf: bool = False  # INVALID (UDF) until the first put, as an ao never written since boot
    update_rate: float | None = None  # Hz the readback posts at; None: every update step
    dead_time: float = 0.0  # simulated s after a put before the readback's lag starts toward it


LIMIT_ACTIONS = ("clamp", "reject")
"""What a setpoint does with a put beyond its limits."""


@dataclass(frozen=True)
class ObservableConfig:
    """A read-only PV computed from readbacks by a whitelisted arithmetic expression."""

    name: str
    expression: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    noise: float = 0.0
    units: str = ""
    precision: int | None = None
    alarm_limits: AlarmLimits | None = None
    description: str = ""
    update_rate: float | None = None  # Hz it posts at; None: every update step
    # seconds between recomputations, like a calc record's SCAN (None: every update step); the
    # value is held, and not posted again, between scans
    scan: float | None = None


@dataclass(frozen=True)
class ReadbackEffect:
    """What armed faults do to a readback or an observable: frozen, offset (units), drifting
    (units per simulated s), posted at `rate` Hz (None: every update), held at `forced` (None:
    not held)."""

    stuck: bool = False
    bias: float = 0.0
    drift: float = 0.0
    rate: float | None = None
    forced: float | None = None

    def combine(self, other: ReadbackEffect) -> ReadbackEffect:
        """Both effects at once: stuck if either is, biases and drifts add, the slower rate wins,
        the later forced value wins."""
        rates = [r for r in (self.rate, other.rate) if r is not None]
        return ReadbackEffect(
            self.stuck or other.stuck, self.bias + other.bias, self.drift + other.drift,
            min(rates) if rates else None, other.forced if other.forced is not None else self.forced,
        )


NO_EFFECT = ReadbackEffect()


class ModelSettings(Protocol):
    """What a simulation reads of the `[ioc]` settings (softioc.config.IOCSettings is one)."""

    @property
    def seed(self) -> int: ...

    @property
    def update_rate(self) -> float: ...  # update steps per wall second (Hz)

    @property
    def time_scale(self) -> float: ...  # simulated seconds per wall second


class ModelConfig(Protocol):
    """What a simulation is built from (softioc.config.IOCConfig is one)."""

    @property
    def ioc(self) -> ModelSettings: ...

    @property
    def setpoints(self) -> tuple[SetpointConfig, ...]: ...

    @property
    def observables(self) -> tuple[ObservableConfig, ...]: ...
