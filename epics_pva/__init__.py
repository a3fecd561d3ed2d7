"""EPICS PVAccess interface for the Badger optimiser, built on p4p.

>>> from epics_pva import Interface, wait_for_readback
>>> with Interface() as interface:                      # doctest: +SKIP
...     interface.get_values(["DEMO:Q1:RBV"])
"""

from .errors import (
    BadgerEnvironmentError,
    ContextClosedError,
    EpicsPvaError,
    InvalidInputError,
    JournalError,
    PutError,
    PutTimeoutError,
    ReadError,
    RehearsalError,
    SetValuesError,
    ValidationError,
)
from .interface import Interface
from .results import SetResult, Status
from .settings import Settings
from .validation import wait_for_readback

__all__ = [
    "Interface",
    "Settings",
    "SetResult",
    "Status",
    "wait_for_readback",
    "EpicsPvaError",
    "InvalidInputError",
    "ReadError",
    "PutError",
    "PutTimeoutError",
    "ValidationError",
    "RehearsalError",
    "SetValuesError",
    "ContextClosedError",
    "BadgerEnvironmentError",
    "JournalError",
]
