"""A simulated EPICS PVAccess machine: setpoints with lagging, noisy readbacks, and faults on demand."""

__project__ = "badger-epics-pva"  # checked by softioc._guard: proves this is our `softioc`

from .audit import FaultRecord, PutRecord  # noqa: E402
from .config import ConfigError, IOCConfig, load_config  # noqa: E402
from .faults import (  # noqa: E402
    Outage,
    PutReject,
    PutTimeout,
    ReadbackBias,
    SlowReadback,
    StuckReadback,
)
from .server import SoftIOC  # noqa: E402

__all__ = [
    "ConfigError",
    "FaultRecord",
    "IOCConfig",
    "Outage",
    "PutRecord",
    "PutReject",
    "PutTimeout",
    "ReadbackBias",
    "SlowReadback",
    "SoftIOC",
    "StuckReadback",
    "load_config",
]
