"""A simulated EPICS PVAccess machine: setpoints with lagging, noisy readbacks, and faults on demand."""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

__project__ = "badger-epics-pva"  # checked by softioc._guard: proves this is our `softioc`

try:  # the one version string is pyproject.toml's, read from the installed distribution
    __version__ = _metadata.version(__project__)
except _metadata.PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from .audit import FaultRecord, PutRecord, read_audit_file
    from .config import IOCConfig, load_config
    from .epics_base import EpicsBaseIOC
    from .errors import (
        AuditFileError,
        ConfigError,
        NetworkRefused,
        PortInUseError,
        PutRefused,
        SoftIOCError,
    )
    from .faults import (
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
    from .machine import Machine, serve
    from .server import SoftIOC

# public name -> the module defining it; resolved on first use (PEP 562), so importing
# softioc (as pytest does for the plugin in every session) loads neither p4p nor numpy
_EXPORTS = {
    "FaultRecord": ".audit",
    "PutRecord": ".audit",
    "read_audit_file": ".audit",
    "IOCConfig": ".config",
    "load_config": ".config",
    "EpicsBaseIOC": ".epics_base",
    "AuditFileError": ".errors",
    "ConfigError": ".errors",
    "NetworkRefused": ".errors",
    "PortInUseError": ".errors",
    "PutRefused": ".errors",
    "SoftIOCError": ".errors",
    "Alarm": ".faults",
    "Fault": ".faults",
    "Outage": ".faults",
    "PutEffect": ".faults",
    "PutReject": ".faults",
    "PutTimeout": ".faults",
    "ReadbackBias": ".faults",
    "ReadbackEffect": ".faults",
    "SlowReadback": ".faults",
    "StuckReadback": ".faults",
    "Machine": ".machine",
    "serve": ".machine",
    "SoftIOC": ".server",
}

__all__ = [
    "Alarm",
    "AuditFileError",
    "ConfigError",
    "EpicsBaseIOC",
    "Fault",
    "FaultRecord",
    "IOCConfig",
    "Machine",
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
    "serve",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access and cache the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
