"""EPICS base's own softIoc (with QSRV2) as a child process, bound to loopback on free ports.

The class and its helpers live in softioc.testing; this is the path the docs name.
"""

from .testing import (
    READY_LINE,
    EpicsBaseError,
    EpicsBaseIOC,
    NotLoopbackError,
    shipped_db_path,
    sockets_of,
)

__all__ = ["READY_LINE", "EpicsBaseError", "EpicsBaseIOC", "NotLoopbackError", "shipped_db_path", "sockets_of"]
