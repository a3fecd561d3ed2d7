"""The outcome of one PV in a set_values call, below the errors, and how a value is shown in messages."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

__all__ = ["SetResult", "Status", "show"]


class Status(str, Enum):
    """What happened to one PV of a set_values call (compares equal to its string value)."""

    SET = "set"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"  # nothing sent: an earlier failure, or inputs refused
    READ_ONLY = "read_only"  # read-only mode: nothing sent

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SetResult:
    """The outcome of one PV in a set_values call.

    `status` is a Status (set, failed, not_attempted or read_only); `attempts` counts the
    puts sent; `elapsed` is the time spent on this PV in seconds (puts, retries and
    validation); `error` is an epics_pva error when the PV failed; `reason` says why a PV
    was not attempted (empty otherwise).
    """

    pv: str
    value: Any
    status: Status
    attempts: int = 0
    validation_result: Any = None
    error: Exception | None = None
    elapsed: float = 0.0
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True unless this PV failed or was not attempted."""
        return self.status in (Status.SET, Status.READ_ONLY)

def show(value: Any) -> str:
    """Short repr of a value for messages: long arrays are cut, not dumped."""
    if isinstance(value, np.ndarray):
        text = np.array2string(value, threshold=6, precision=6)
    else:
        try:
            text = repr(value)
        except (RecursionError, ValueError):  # lists nested thousands deep; ints over 4300 digits
            text = f"<{type(value).__name__} too deep or too large to show>"
        except Exception:  # noqa: BLE001 - a repr that raises: the message still names the type
            text = f"<{type(value).__name__} whose repr raised>"
        if not isinstance(text, str):
            text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."
