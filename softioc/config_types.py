"""The soft IOC's configuration as validated, frozen objects: what softioc.config builds.

The readers that build them from TOML or dicts are softioc.config (the file, the whole
document) and softioc.config_tables (one table each).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .alarms import AlarmLimits
from .faults import Fault

__all__ = ["LIMIT_ACTIONS", "MAX_PROCESSES", "FaultConfig", "IOCConfig", "IOCSettings", "ObservableConfig",
           "SetpointConfig"]


@dataclass(frozen=True)
class IOCSettings:
    """Process-wide settings: seed, readback update rate (Hz), simulated s per wall s.

    `control_from` / `write_from` are access rules (see softioc.access; None: the owner
    only / everyone), `allow_network` permits serving beyond loopback, `prefix` is put
    before every served PV name.
    """

    seed: int = 0
    update_rate: float = 10.0
    time_scale: float = 1.0
    control_prefix: str = "SOFTIOC:"
    audit: str | None = None  # JSON Lines file every put and fault event is appended to
    control_from: tuple[str, ...] | None = None
    write_from: tuple[str, ...] | None = None
    allow_network: bool = False
    prefix: str = ""
    processes: int = 1  # server processes sharing the PVs (softioc.machine)


MAX_PROCESSES = 64


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


@dataclass(frozen=True)
class FaultConfig:
    """A fault armed at start-up (`at` None) or at simulated time `at` (s)."""

    pv: str
    fault: Fault
    at: float | None = None


@dataclass(frozen=True)
class IOCConfig:
    """A whole soft IOC: settings, devices, observables and scheduled faults."""

    ioc: IOCSettings = field(default_factory=IOCSettings)
    setpoints: tuple[SetpointConfig, ...] = ()
    observables: tuple[ObservableConfig, ...] = ()
    faults: tuple[FaultConfig, ...] = ()
    source: str = "<dict>"

    def pv_names(self) -> list[str]:
        """Every simulated PV name (setpoints, readbacks, observables), in config order."""
        names: list[str] = []
        for sp in self.setpoints:
            names.append(sp.name)
            if sp.readback:
                names.append(sp.readback)
        names.extend(ob.name for ob in self.observables)
        return names
