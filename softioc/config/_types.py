"""The soft IOC's configuration as validated, frozen objects: what softioc.config builds.

A device's and an observable's parameters are the model's (softioc.model.SetpointConfig,
ObservableConfig); here are the settings, the scheduled faults and the whole IOC. The
readers that build them from TOML or dicts are `_load` (the file, the whole document) and
`_tables` (one table each).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..faults import Fault
from ..model import ObservableConfig, SetpointConfig

__all__ = ["MAX_PROCESSES", "FaultConfig", "IOCConfig", "IOCSettings"]


@dataclass(frozen=True)
class IOCSettings:
    """Process-wide settings: seed, readback update rate (Hz), simulated s per wall s.

    `control_from` / `write_from` are access rules (see softioc.server.AccessRule; None: the owner
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

