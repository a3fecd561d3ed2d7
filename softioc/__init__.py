"""A simulated EPICS PVAccess machine: setpoints with lagging, noisy readbacks, and faults on demand."""

__project__ = "badger-epics-pva"  # checked by softioc._guard: proves this is our `softioc`

from .audit import FaultRecord, PutRecord, read_audit_file  # noqa: E402
from .config import IOCConfig, load_config  # noqa: E402
from .epics_base import EpicsBaseIOC  # noqa: E402
from .errors import (  # noqa: E402
    AuditFileError,
    ConfigError,
    NetworkRefused,
    PortInUseError,
    PutRefused,
    SoftIOCError,
)
from .faults import (  # noqa: E402
    Alarm,
    Fault,
    Outage,
    PutEffect,
    PutReject,
    PutTimeout,
    ReadbackBias,
    ReadbackEffect,
    SlowReadback,
    StuckReadback,
)
from .server import SoftIOC  # noqa: E402

__all__ = [
    "Alarm",
    "AuditFileError",
    "ConfigError",
    "EpicsBaseIOC",
    "Fault",
    "FaultRecord",
    "IOCConfig",
    "NetworkRefused",
    "Outage",
    "PortInUseError",
    "PutEffect",
    "PutRecord",
    "PutRefused",
    "PutReject",
    "PutTimeout",
    "ReadbackBias",
    "ReadbackEffect",
    "SlowReadback",
    "SoftIOC",
    "SoftIOCError",
    "StuckReadback",
    "load_config",
    "read_audit_file",
]
