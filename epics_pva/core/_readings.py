"""What a read PV says about itself: its value with the server's alarm and time stamp.

EPICS alarm severities are 0 NO_ALARM, 1 MINOR, 2 MAJOR, 3 INVALID. An INVALID value is not a
measurement (a record never processed, a broken input link, a tripped supply): the interface
refuses to return it as one. MINOR and MAJOR values are real, and returned, but logged.
No network here: callers read the PV and hand the value to these functions.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from p4p import Value

from .._fork import at_fork
from ..transport import problem_of, to_python

__all__ = [
    "CLIENT_STATUS", "INVALID", "MAJOR", "MINOR", "NO_ALARM",
    "Alarm", "AlarmMemory", "Reading", "alarm_of", "describe_alarm", "read_failure", "reading_of",
    "severity_name",
    "timestamp_of",
]

NO_ALARM, MINOR, MAJOR, INVALID = 0, 1, 2, 3
_SEVERITY_NAMES = ("NO_ALARM", "MINOR", "MAJOR", "INVALID")
CLIENT_STATUS = 7  # the NT alarm status "CLIENT": the client, not the server, found the value bad


@dataclass(frozen=True)
class Alarm:
    """A PV's alarm as its server published it: severity 0-3, status code, message ("UDF", "HIHI")."""

    severity: int = NO_ALARM
    status: int = 0
    message: str = ""

    @property
    def invalid(self) -> bool:
        """True for INVALID (or any unknown severity above it): the value is no measurement."""
        return self.severity >= INVALID

    def __str__(self) -> str:
        return describe_alarm(self.severity, self.message)


@dataclass(frozen=True)
class Reading:
    """One PV as read: `value` (as get_values gives it), the server's alarm, and its time stamp.

    `timestamp` is the server's timeStamp in seconds since 1970-01-01 UTC (0.0 if the server
    sent zero, NaN if it sent none or the PV could not be read). `severity` is 0 NO_ALARM,
    1 MINOR, 2 MAJOR, 3 INVALID; `status` the alarm status code; `message` the alarm message
    (for an unreadable PV read with nan_on_read_error: severity 3, status 7 CLIENT, and why).
    """

    value: Any
    timestamp: float
    severity: int
    status: int
    message: str

    @property
    def ok(self) -> bool:
        """True when the value is a measurement: it was read and is not in INVALID alarm.

        A MINOR or MAJOR value is ok (real, if out of its normal range); check `severity` for those.
        """
        return self.severity < INVALID

    @property
    def alarm(self) -> Alarm:
        """The alarm part of this reading."""
        return Alarm(self.severity, self.status, self.message)


def severity_name(severity: int) -> str:
    """The EPICS name of an alarm severity ("MAJOR"), or "severity N" for one EPICS does not define."""
    if 0 <= severity < len(_SEVERITY_NAMES):
        return _SEVERITY_NAMES[severity]
    return f"severity {severity}"


def describe_alarm(severity: int, message: str) -> str:
    """An alarm in words for messages: "alarm INVALID (UDF)", "no alarm"."""
    if severity == NO_ALARM and not message:
        return "no alarm"
    return f"alarm {severity_name(severity)} ({message or 'no message'})"


def _raw(value: Any) -> Value | None:
    if isinstance(value, Value):
        return value
    return getattr(value, "raw", None)


_NONE = Alarm()


def alarm_of(value: Any) -> Alarm:
    """The alarm a read value carries; a value whose structure has no alarm field has none."""
    raw = _raw(value)
    if raw is None:
        return _NONE
    try:  # the usual structure first: one lookup per field (every read goes through here)
        severity, status, message = raw["alarm.severity"], raw["alarm.status"], raw["alarm.message"]
    except KeyError:
        if "alarm" not in raw:
            return _NONE
        severity, status = raw.get("alarm.severity", 0), raw.get("alarm.status", 0)
        message = raw.get("alarm.message", "")
    if not (severity or status or message):
        return _NONE
    return Alarm(int(severity), int(status), str(message))


def timestamp_of(value: Any) -> float:
    """The server's time stamp of a read value in seconds since the epoch; NaN if it has none."""
    raw = _raw(value)
    if raw is None:
        return math.nan
    try:
        seconds, nanoseconds = raw["timeStamp.secondsPastEpoch"], raw["timeStamp.nanoseconds"]
    except KeyError:
        if "timeStamp" not in raw:
            return math.nan
        seconds, nanoseconds = raw.get("timeStamp.secondsPastEpoch", 0), raw.get("timeStamp.nanoseconds", 0)
    return int(seconds) + int(nanoseconds) * 1e-9


def reading_of(value: Any) -> Reading:
    """The Reading of one read value: to_python's value, its alarm and time stamp.

    Raises ValueError (from to_python) when the value cannot be converted.
    """
    alarm = alarm_of(value)
    return Reading(to_python(value), timestamp_of(value), alarm.severity, alarm.status, alarm.message)


def read_failure(exc: BaseException, timeout: float) -> str:
    """Why a get failed, in words an operator can act on."""
    if isinstance(exc, TimeoutError):
        return f"no reply within {timeout:g} s (unknown PV, or its server is down)"
    return problem_of(exc)


_memories: weakref.WeakSet[AlarmMemory] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for memory in list(_memories):
        memory._lock = threading.Lock()  # a thread of the parent may have held it: start clean


at_fork(after_in_child=_after_fork_in_child)


class AlarmMemory:
    """The last alarm seen on each PV, so that a change is logged once, not on every read.

    Bounded: it keeps the `size` PVs read most recently (an evicted PV's alarm is logged
    again when next seen). Thread safe, and safe across os.fork().
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._last: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._lock = threading.Lock()
        _memories.add(self)

    def changed(self, pv: str, alarm: Alarm) -> bool:
        """Record `alarm` as the PV's latest; True if it differs from the one recorded before.

        A PV never seen before counts as changed unless it is in no alarm.
        """
        key = (alarm.severity, alarm.message)
        with self._lock:
            before = self._last.pop(pv, (NO_ALARM, ""))
            self._last[pv] = key
            if len(self._last) > self._size:
                self._last.popitem(last=False)
        return before != key

    def __len__(self) -> int:
        with self._lock:
            return len(self._last)
