"""What every fault kind is built on, for writing one: the path the API reference showed.

Everything here is softioc.faults'; see there.
"""

from .faults import (
    FAULT_KINDS,
    MAX_SECONDS,
    NO_EFFECT,
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

__all__ = ["FAULT_KINDS", "MAX_SECONDS", "NO_EFFECT", "READ_ONLY", "SERVER", "SETPOINT", "WHOLE_SERVER", "Fault",
           "PutEffect", "PutFault", "ReadbackEffect", "bounded", "check_target", "describe", "fault_from_dict",
           "fault_kind", "seconds"]
