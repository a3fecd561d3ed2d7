"""The simulated machine without a network: given time and puts, what is read back.

Pure Python and numpy (no p4p): a device's parameters and how its readback follows its
setpoint (lag models, dead time, noise, offset, the effect of armed faults), observables
computed from expressions, the EPICS alarm rules, the PV types, and the update step, alone
or over many alike devices at once in arrays. Time advances in fixed simulated steps, so
the same seed and the same puts at the same steps give the same readbacks.
"""

from ..errors import ExpressionError, PutRefused
from ._alarms import (
    EPICS_EPOCH,
    INVALID,
    LIMIT_KEYS,
    LIMIT_STATUS,
    MAJOR,
    MINOR,
    NO_ALARM,
    OK,
    SEVERITIES,
    UDF,
    AlarmCheck,
    AlarmLimits,
    AlarmState,
    severity_number,
)
from ._expression import CONSTANTS, FUNCTIONS, Evaluator, compile_expression
from ._functions import FunctionStats, ObservableFunction
from ._lags import LAGS, Lag
from ._pvtypes import OBSERVABLE_TYPE, PV_TYPES, PVType, pv_type
from ._simulation import Device, Observable, Simulation, check_functions, rng_for
from ._types import (
    LIMIT_ACTIONS,
    NO_EFFECT,
    ModelConfig,
    ModelSettings,
    ObservableConfig,
    ReadbackEffect,
    SetpointConfig,
)
from ._vector import VectorSimulation

__all__ = ["FunctionStats", "ObservableFunction", "check_functions",
    "CONSTANTS", "EPICS_EPOCH", "FUNCTIONS", "INVALID", "LAGS", "LIMIT_ACTIONS", "LIMIT_KEYS", "LIMIT_STATUS",
    "MAJOR", "MINOR", "NO_ALARM", "NO_EFFECT", "OBSERVABLE_TYPE", "OK", "PV_TYPES", "SEVERITIES", "UDF",
    "AlarmCheck", "AlarmLimits", "AlarmState", "Device", "Evaluator", "ExpressionError", "Lag", "ModelConfig",
    "ModelSettings", "Observable", "ObservableConfig", "PVType", "PutRefused", "ReadbackEffect",
    "SetpointConfig", "Simulation", "VectorSimulation", "compile_expression", "pv_type", "rng_for",
    "severity_number",
]
