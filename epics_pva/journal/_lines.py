"""One line of the interface journal: an Entry, or why it cannot be read (a BadLine's reason).

Every check a line of a known event must pass (a time within [1970, 9999], a pid, a word for
its event, a call id, a PV name, an attempt >= 1, text where text belongs, values nested at
most 100 levels) lives here, with the few byte patterns the reader searches by.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._format import (
    BEFORE,
    INTERRUPTED,
    OUTCOME,
    PUT,
    READ_ONLY,
    TRUNCATED,
    VALIDATION,
    WIRE_FIELDS,
    decode_value,
)

__all__ = ["LAST_TIME", "BadLine", "Entry", "id_time", "needle_of", "parse_line", "time_of"]

LAST_TIME = 253402300799.0
"""The last second of the year 9999 (UTC): a line's time beyond it (or before 1970) is bad."""

HEAD = re.compile(rb'\{\s*"time"\s*:\s*(-?[0-9][0-9.eE+-]{0,40})\s*,')
"""The start of a line as the writer writes it: its time, readable without parsing the line."""
MARKER = re.compile(rb'"event"\s*:\s*"truncated"')
"""What a writer's mark that the line before it was cut off holds."""
CALL_FIELD = re.compile(rb'"call"\s*:\s*("(?:[^"\\\n]|\\.){0,200}")')
"""A line's call id, quotes included, as bytes."""
_intern = sys.intern


@dataclass(slots=True)
class Entry:
    """One journal line, decoded: `fields` holds every key beyond time, pid, event and call.

    (Not a frozen dataclass: its __init__ would cost a quarter of the reading of a line.)
    """

    time: float
    pid: int
    event: str
    call: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    line: int = 0

    @property
    def pv(self) -> str | None:
        return self.fields.get("pv")

    @property
    def has_value(self) -> bool:
        """True when the line carries a value (a `before` whose read failed has none)."""
        return "value" in self.fields

    @property
    def value(self) -> Any:
        return self.fields.get("value")

    @property
    def attempt(self) -> int | None:
        return self.fields.get("attempt")

    @property
    def outcome(self) -> str | None:
        return self.fields.get("outcome")

    @property
    def reason(self) -> str | None:
        return self.fields.get("reason")

    @property
    def result(self) -> Any:
        return self.fields.get("result")

    @property
    def error(self) -> str | None:
        return self.fields.get("error")

    @property
    def trace(self) -> dict[str, Any] | None:
        """The readback trace of a validation line, if it recorded one."""
        trace = self.fields.get("trace")
        return trace if isinstance(trace, dict) else None

    @property
    def wire(self) -> dict[str, Any] | None:
        """{"prefix", "rehearsal", "rehearsal_id"} of a before or read_only line that records
        them (the Interface's settings); None on lines of journals written before they were."""
        if not all(k in self.fields for k in WIRE_FIELDS):
            return None
        return {k: self.fields[k] for k in WIRE_FIELDS}


@dataclass(frozen=True)
class BadLine:
    """A line of the window that could not be read: its number (from 1) and why; skipped."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON (the journal writes non-finite numbers as {{\"$float\": ...}})")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_PLAIN = (float, int, str, bool, type(None))  # values that decode to themselves


def _name_problem(key: str, value: Any) -> str | None:
    # isprintable() is False for every control, separator and surrogate character but " "
    if type(value) is str and value and value.isprintable() and " " not in value:
        return None
    if not isinstance(value, str) or not value:
        return f"'{key}' is {_brief(value)}, not a PV name"
    return f"'{key}' {_brief(value)} is not a PV name (it holds a control or space character)"


def _brief(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - decoded JSON always has a repr; be sure anyway
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _attempt_problem(data: Mapping[str, Any]) -> str | None:
    attempt = data.get("attempt")
    if type(attempt) is int and attempt >= 1:
        return None
    return f"'attempt' is {_brief(attempt)}, not an int >= 1"


def _text_problem(data: Mapping[str, Any], key: str, none_ok: bool = False) -> str | None:
    """Why data[key], if there, is not text (or None, when `none_ok`)."""
    if key not in data:
        return None
    value = data[key]
    if type(value) is str or (none_ok and value is None):
        return None
    return f"'{key}' is {_brief(value)}, not text"


def _wire_problem(data: Mapping[str, Any]) -> str | None:
    if (type(data.get("prefix", "")) is str and type(data.get("rehearsal", False)) is bool
            and type(data.get("rehearsal_id", "")) is str):
        return None
    for key, kind, word in (("prefix", str, "text"), ("rehearsal", bool, "true or false"),
                            ("rehearsal_id", str, "text")):
        if key in data and type(data[key]) is not kind:
            return f"'{key}' is {_brief(data[key])}, not {word}"
    return None  # pragma: no cover - the first test found one


def _check_before(data: Mapping[str, Any]) -> str | None:
    if "value" not in data:
        if "error" not in data:
            return "a before line with neither 'value' nor 'error'"
        why = _text_problem(data, "error")
        if why is not None:
            return why
    return _wire_problem(data)


def _check_put(data: Mapping[str, Any]) -> str | None:
    return "a put line without 'value'" if "value" not in data else _attempt_problem(data)


def _check_outcome(data: Mapping[str, Any]) -> str | None:
    why = _attempt_problem(data)
    if why is not None:
        return why
    outcome = data.get("outcome")
    if type(outcome) is not str or not outcome:
        return f"'outcome' is {_brief(outcome)}, not a word"
    return _text_problem(data, "reason", none_ok=True)


def _check_validation(data: Mapping[str, Any]) -> str | None:
    if "error" in data:
        why = _text_problem(data, "error")
        if why is not None:
            return why
    if "trace" in data and type(data["trace"]) is not dict:
        return f"'trace' is {_brief(data['trace'])}, not an object"
    return None


def _check_read_only(data: Mapping[str, Any]) -> str | None:
    return "a read_only line without 'value'" if "value" not in data else _wire_problem(data)


def _check_interrupted(data: Mapping[str, Any]) -> str | None:
    for key in ("sent", "not_sent"):
        names = data.get(key, [])
        if type(names) is not list or any(_name_problem(key, n) for n in names):
            return f"'{key}' is {_brief(names)}, not a list of PV names"
    return _text_problem(data, "reason", none_ok=True)


# what each known event's own fields must be (an unknown event is taken as it is: a newer writer's)
_CHECKS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    BEFORE: _check_before, PUT: _check_put, OUTCOME: _check_outcome, VALIDATION: _check_validation,
    READ_ONLY: _check_read_only, INTERRUPTED: _check_interrupted,
}
_HAS_PV = (BEFORE, PUT, OUTCOME, VALIDATION, READ_ONLY)


def parse_line(raw: bytes, number: int = 0) -> Entry | str:
    """One line (its newline, if there, ignored) as an Entry numbered `number`, or a short text
    saying why it cannot be read."""
    try:
        text = raw.decode("utf-8").strip()
        data, end = _SCAN(text, 0)  # the C scanner raw_decode calls, without its Python frame
        if end != len(text):
            return f"not JSON (more after the object, at column {end + 1})"
    except StopIteration as exc:  # what the scanner raises where raw_decode says "Expecting value"
        return f"not JSON (Expecting value: column {exc.value + 1})"
    except UnicodeDecodeError as exc:
        return f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    except RecursionError:
        return "not JSON (nested too deeply)"
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc})"
    except ValueError as exc:  # an integer of more than 4,300 digits, a NaN literal
        return f"not JSON ({str(exc)[:120]})"
    if type(data) is not dict:
        return f"not a JSON object but {type(data).__name__}"
    if not ("time" in data and "pid" in data and "event" in data and "call" in data):
        missing = [k for k in ("time", "pid", "event", "call") if k not in data]
        return f"missing key(s) {', '.join(missing)}"
    when, pid, event, call = data.pop("time"), data.pop("pid"), data.pop("event"), data.pop("call")
    if type(when) is not float and (type(when) is not int):
        return f"'time' is {_brief(when)}, not a number of seconds"
    if not 0 <= when <= LAST_TIME:
        return f"'time' {_brief(when)} is not within [0, {LAST_TIME:.0f}] epoch s"
    if type(pid) is not int or not 0 <= pid < 2**63:
        return f"'pid' is {_brief(pid)}, not a process id"
    if type(event) is not str or not event:
        return f"'event' is {_brief(event)}, not a word"
    if type(call) is not str or (not call and event != TRUNCATED):
        return f"'call' is {_brief(call)}, not a call id"
    if event in _HAS_PV:
        pv = data.get("pv")
        if not (type(pv) is str and pv and pv.isprintable() and " " not in pv):
            return _name_problem("pv", pv) or "'pv' is not a PV name"
        data["pv"] = _intern(pv)  # a window of many lines holds one copy of each name
    check = _CHECKS.get(event)
    if check is not None:
        why = check(data)
        if why is not None:
            return why
    try:
        for key in _VALUES:
            value = data.get(key)
            if type(value) not in _PLAIN:
                data[key] = decode_value(value)
    except (ValueError, RecursionError) as exc:
        return f"a value that cannot be read ({exc})"
    return Entry(float(when), pid, _intern(event), _intern(call), data, number)


_VALUES = ("value", "result", "trace")


def time_of(raw: bytes) -> float | None:
    """The time of a line from its head (as the writer writes it), else from the whole line;
    None when it has no readable time."""
    match = HEAD.match(raw)
    if match is not None:
        try:
            when = float(match.group(1))
        except ValueError:
            when = math.nan
        return when if 0 <= when <= LAST_TIME else None
    entry = parse_line(raw.rstrip(b"\r\n"))
    return entry.time if isinstance(entry, Entry) else None


def id_time(call: str) -> float | None:
    """The epoch seconds a call id of the form <pid>-<counter>-<hex>-<ms> was made; None for
    ids without a time (journals written before ids carried one, or other writers')."""
    parts = call.split("-")
    if len(parts) != 4 or not parts[3].isdigit() or len(parts[3]) > 15:
        return None
    return int(parts[3]) / 1000.0


def needle_of(text: str) -> bytes:
    """The bytes a call id or PV name is written as, quotes included (as json.dumps writes it)."""
    return json.dumps(text).encode("ascii")


