"""EPICS alarms without the network: severities, alarm limits and the alarm a value is in.

Pure Python (no p4p). The meaning follows an EPICS `ai`/`calc` record: at or past `high`
(`low`) the value is in MINOR alarm, at or past `hihi` (`lolo`) in MAJOR alarm, and an alarm
is left only once the value is `deadband` (the record's HYST) back inside its limit. Statuses
and messages are what QSRV publishes for such a record (status 1, message HIHI/HIGH/LOW/LOLO).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["EPICS_EPOCH", "INVALID", "LIMIT_KEYS", "LIMIT_STATUS", "MAJOR", "MINOR", "NO_ALARM", "OK", "SEVERITIES",
           "UDF", "AlarmCheck", "AlarmLimits", "AlarmState", "severity_number"]

NO_ALARM, MINOR, MAJOR, INVALID = 0, 1, 2, 3
"""Alarm severities as PVAccess carries them (alarm.severity)."""

SEVERITIES = {"NO_ALARM": NO_ALARM, "MINOR": MINOR, "MAJOR": MAJOR, "INVALID": INVALID}
"""Severity names (as EPICS writes them) to their numbers."""

LIMIT_STATUS = 1
"""alarm.status of a limit alarm (HIHI, HIGH, LOW, LOLO), as measured on QSRV."""

AlarmState = tuple[int, int, str]
"""(severity 0-3, status, message), the alarm fields of one PV."""

OK: AlarmState = (NO_ALARM, 0, "")
"""The alarm fields of a PV in no alarm."""

UDF: AlarmState = (INVALID, 2, "UDF")
"""The alarm of a record never processed since boot (an ao never written), as QSRV serves it."""

EPICS_EPOCH = 631152000
"""1990-01-01 UTC in POSIX seconds: the time stamp of a record never processed."""

LIMIT_KEYS = ("lolo", "low", "high", "hihi")
"""The keys of an `alarm_limits` table, in the order they must be (lolo <= low <= high <= hihi)."""


@dataclass(frozen=True)
class AlarmLimits:
    """Alarm limits of one PV (units of its value; None: not set) and its deadband (HYST)."""

    lolo: float | None = None
    low: float | None = None
    high: float | None = None
    hihi: float | None = None
    deadband: float = 0.0

    def ordered(self) -> str | None:
        """Why the given limits are not in order lolo <= low <= high <= hihi, or None when they are."""
        given = [(k, getattr(self, k)) for k in LIMIT_KEYS if getattr(self, k) is not None]
        for (k1, v1), (k2, v2) in zip(given, given[1:], strict=False):
            if not v1 <= v2:
                return f"{k1} = {v1!r} must be <= {k2} = {v2!r}"
        return None


class AlarmCheck:
    """The limit alarm of one PV across successive values (it remembers the last alarm limit)."""

    def __init__(self, limits: AlarmLimits | None) -> None:
        self.limits = limits
        self._last: float | None = None  # the limit last alarmed on (the record's LALM)

    def __call__(self, value: float) -> AlarmState:
        """The alarm fields for `value`, checked in EPICS's order: hihi, lolo, high, low."""
        lim = self.limits
        if lim is None or not isinstance(value, (int, float)) or math.isnan(value):
            return OK
        hyst, last = lim.deadband, self._last
        for limit, severity, above, message in (
            (lim.hihi, MAJOR, True, "HIHI"), (lim.lolo, MAJOR, False, "LOLO"),
            (lim.high, MINOR, True, "HIGH"), (lim.low, MINOR, False, "LOW"),
        ):
            if limit is None:
                continue
            held = last == limit  # in this alarm already: leave it only past the deadband
            if (value >= limit or held and value >= limit - hyst) if above else (
                    value <= limit or held and value <= limit + hyst):
                self._last = limit
                return severity, LIMIT_STATUS, message
        self._last = None
        return OK


def severity_number(name: str) -> int:
    """The severity called `name` (MINOR, MAJOR, INVALID); ValueError naming the choices otherwise."""
    if name not in SEVERITIES or name == "NO_ALARM":
        raise ValueError(f"severity must be one of MINOR, MAJOR, INVALID, got {name!r}")
    return SEVERITIES[name]
