"""EPICS PVAccess interface for the Badger optimiser, built on p4p.

>>> from epics_pva import Interface, wait_for_readback
>>> with Interface() as interface:                      # doctest: +SKIP
...     interface.get_values(["DEMO:Q1:RBV"])
...     interface.get_readings(["DEMO:Q1:RBV"])["DEMO:Q1:RBV"].severity
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
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

if TYPE_CHECKING:
    from .core import Interface, Reading, Settings, average_fresh, first_after, wait_for_readback

_CORE = ("Interface", "Reading", "Settings", "wait_for_readback", "average_fresh", "first_after")


def __getattr__(name: str) -> Any:
    """The Interface and its companions, imported (with p4p) when first asked for: a tool that
    needs no network client, `pva-journal show` for one, starts without loading p4p."""
    if name in _CORE:
        from . import core
        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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
