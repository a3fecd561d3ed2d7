"""The outcome of one PV in a set_values call: its status and what happened, below the errors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["SetResult", "Status"]


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
