"""What an operator's "Info" view shows of a PV, as rows of text: value, units, limits, alarm, time.

Badger's variable table shows `get_info([pv])["vars"][pv]` as `field: value` rows of str.
No network here: Interface.get_info reads the PVs, searches for their servers (search.py) and
hands the replies to these functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..results import show
from ..transport import describe, to_python
from ._readings import alarm_of, read_failure, severity_name, timestamp_of
from ._validation import WaitConfig

__all__ = ["interface_fields", "pv_fields", "readback_fields"]

# the client settings that say where PVs are looked for, shown as the interface's rows
_SEARCH_SETTINGS = ("EPICS_PVA_ADDR_LIST", "EPICS_PVA_AUTO_ADDR_LIST", "EPICS_PVA_NAME_SERVERS",
                    "EPICS_PVA_BROADCAST_PORT")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else show(value)


def _number(value: Any, unset: str, unit: str = "") -> str:
    """A config number as text (`unset` for None); a value that is no number is shown as given."""
    if value is None:
        return unset
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}{unit}"
    return f"{show(value)} (not a number)"


def iso_time(seconds: float) -> str:
    """A server time stamp (s since 1970-01-01 UTC) as ISO 8601 UTC; says so when there is none."""
    if math.isnan(seconds):
        return "none sent"
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="milliseconds")
    return f"{stamp} (zero: never processed)" if seconds == 0 else stamp


def pv_fields(reply: Any, timeout: float, server: str) -> dict[str, str]:
    """The rows for one PV from its get reply (a value, or the exception the get gave).

    `server` is the row saying which server claimed the PV in a name search, or why none did
    (p4p's client does not say which server answered the get).
    """
    if isinstance(reply, BaseException):
        return {"connected": f"no: {read_failure(reply, timeout)}", "server": server}
    raw = getattr(reply, "raw", reply)
    try:
        value = _text(to_python(reply))
    except ValueError as exc:
        value = f"unreadable: {exc}"
    info = describe(reply)
    units = raw.get("display.units", "") if "display" in raw else ""
    limits = f"{info.limits[0]:g} to {info.limits[1]:g}" if info.limits else "none published"
    alarm = alarm_of(reply)
    fields = {
        "value": value,
        "type": f"{info.kind} ({info.code})" if info.code else info.kind,
        "units": str(units) or "none published",
        "control limits": limits,
        "alarm severity": f"{severity_name(alarm.severity)} ({alarm.severity})",
        "alarm message": alarm.message or "none",
        "timestamp": iso_time(timestamp_of(reply)),
        "connected": "yes",
        "server": server,
    }
    if info.choices:
        fields["choices"] = ", ".join(info.choices)
    return fields


def readback_fields(set_reply: Any, config: WaitConfig, readback_reply: Any, timeout: float) -> dict[str, str]:
    """The rows of a setpoint validated by wait_for_readback: its readback, tolerance and offset.

    "within tolerance" says what wait_for_readback would judge now: a readback in INVALID alarm
    is never settled there, however close its value, so it is "no" here too, saying why.
    """
    fields = {"readback PV": config.readback_pv}
    if isinstance(readback_reply, BaseException):
        fields["readback"] = f"unreadable ({read_failure(readback_reply, timeout)})"
    else:
        try:
            fields["readback"] = _text(to_python(readback_reply))
        except ValueError as exc:
            fields["readback"] = f"unreadable: {exc}"
        alarm = alarm_of(readback_reply)
        fields["readback alarm"] = (f"{severity_name(alarm.severity)} ({alarm.message})"
                                    if alarm.message else severity_name(alarm.severity))
    fields["tolerance"] = _number(config.tolerance, "not set")
    fields["readback offset"] = _number(config.offset, "0")
    fields["settle time limit"] = _number(config.count_down, "not set", " s")
    tolerance = config.tolerance
    if (not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool)
            or isinstance(set_reply, BaseException) or isinstance(readback_reply, BaseException)):
        return fields
    alarm = alarm_of(readback_reply)
    if alarm.invalid:  # no measurement: wait_for_readback never takes it as settled
        fields["within tolerance"] = (f"no: readback {severity_name(alarm.severity)} "
                                      f"({alarm.message or 'no message'})")
        return fields
    try:
        miss = abs(float(readback_reply) - (float(set_reply) + float(config.offset or 0.0)))
    except (TypeError, ValueError):
        return fields  # not numbers (an array, a string PV): no single distance to show
    fields["within tolerance"] = f"{'yes' if miss <= tolerance else 'no'} (off by {miss:g})"
    return fields


def interface_fields(settings: Mapping[str, Any], client_conf: Mapping[str, str] | None,
                     version: str) -> dict[str, str]:
    """The interface's rows: its version, every setting, and where the client looks for PVs."""
    fields = {"version": version}
    fields.update({name: _text(value) for name, value in settings.items() if name != "conf"})
    for name in _SEARCH_SETTINGS:
        if client_conf is not None and name in client_conf:
            fields[name] = client_conf[name] or "(empty)"
    return fields
