"""What can go wrong, and the book of what is armed: fault kinds and their effects (no p4p).

A fault kind is one frozen dataclass subclassing `Fault` (`_base`): it names itself (`kind`),
says which PVs it may target (`targets`) and carries its hooks (`put_effect`,
`readback_effect`, `downtime`, `alarm_effect`). Defining the class registers it; nothing else
needs to change. The built-in kinds are in `_kinds`; `FaultBook` holds the faults armed on
one IOC. What faults do at the wire (held puts, PVs that vanish) is softioc.server's.

Durations (`duration`, `complete_after`) are wall-clock seconds, because they concern the
network and the clients' timeouts; `drift` is in units per *simulated* second, because it
concerns the simulated machine.
"""

from ._base import (
    FAULT_KINDS,
    MAX_SECONDS,
    NO_EFFECT,
    OBSERVABLE,
    READ_ONLY,
    SERVER,
    SETPOINT,
    WHOLE_SERVER,
    Fault,
    PutEffect,
    PutFault,
    ReadbackEffect,
    bounded,
    check_target,
    describe,
    fault_from_dict,
    fault_kind,
    seconds,
)
from ._book import ArmedFault, FaultBook
from ._kinds import (
    Alarm,
    ForcedValue,
    Outage,
    PutReject,
    PutTimeout,
    ReadbackBias,
    SlowReadback,
    StuckReadback,
)

__all__ = [
    "FAULT_KINDS", "MAX_SECONDS", "NO_EFFECT", "OBSERVABLE", "READ_ONLY", "SERVER",
    "SETPOINT", "WHOLE_SERVER", "Alarm", "ArmedFault", "Fault", "FaultBook", "ForcedValue", "Outage", "PutEffect", "PutFault", "PutReject",
    "PutTimeout", "ReadbackBias", "ReadbackEffect", "SlowReadback", "StuckReadback", "bounded",
    "check_target", "describe", "fault_from_dict", "fault_kind", "seconds",
]
