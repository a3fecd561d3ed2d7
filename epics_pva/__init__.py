"""EPICS PVAccess interface for the Badger optimiser, built on p4p.

>>> from epics_pva import Interface, wait_for_readback
>>> with Interface() as interface:                      # doctest: +SKIP
...     interface.get_values(["DEMO:Q1:RBV"])
...     interface.get_readings(["DEMO:Q1:RBV"])["DEMO:Q1:RBV"].severity
"""

from ._version import __version__
from .core import Interface, Reading, Settings, average_fresh, first_after, wait_for_readback
from .errors import (
    BadgerEnvironmentError,
    ContextClosedError,
    EpicsPvaError,
    InvalidInputError,
    JournalError,
    NotConnectedError,
    PutError,
    PutTimeoutError,
    ReadError,
    RehearsalError,
    SetValuesError,
    StrangerServerError,
    ValidationError,
)
from .results import SetResult, Status

__all__ = [
    "__version__",
    "Interface",
    "Settings",
    "Reading",
    "SetResult",
    "Status",
    "wait_for_readback",
    "average_fresh",
    "first_after",
    "EpicsPvaError",
    "InvalidInputError",
    "NotConnectedError",
    "ReadError",
    "PutError",
    "PutTimeoutError",
    "ValidationError",
    "RehearsalError",
    "StrangerServerError",
    "SetValuesError",
    "ContextClosedError",
    "BadgerEnvironmentError",
    "JournalError",
]
