"""Reading the interface journal back: each line parsed and checked, cut-off lines skipped.

A line is an entry only when it is whole, its final newline included: a last line without
one (a writer killed, or its write failed, before the newline) and a line that a later writer
marked ``truncated`` are skipped with a warning, even when what is there parses; any other
unreadable line is an error naming the file and line.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import JournalError
from ._format import TRUNCATED, WIRE_FIELDS, decode_value

__all__ = ["Entry", "read_journal"]

_log = logging.getLogger("epics_pva.journal")  # the journal's one logger, as operators name it


@dataclass(frozen=True)
class Entry:
    """One journal line, decoded: `fields` holds every key beyond time, pid, event and call."""

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


def _parse(path: Path, number: int, raw: bytes) -> Entry:
    """One line as an Entry; ValueError saying what is wrong with it."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    missing = [k for k in ("time", "pid", "event", "call") if k not in data]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    when, pid, event, call = data.pop("time"), data.pop("pid"), data.pop("event"), data.pop("call")
    if not isinstance(when, (int, float)) or isinstance(when, bool):
        raise ValueError(f"'time' is {when!r}, not a number of seconds")
    if not isinstance(pid, int) or not isinstance(event, str) or not isinstance(call, str):
        raise ValueError("'pid' must be an int, 'event' and 'call' strings")
    fields = {k: decode_value(v) if k in ("value", "result", "trace") else v for k, v in data.items()}
    return Entry(float(when), pid, event, call, fields, number)


def read_journal(
    path: str | os.PathLike[str], since: float | None = None, until: float | None = None
) -> list[Entry]:
    """Every entry of the journal at `path`, in file order, of the calls that began in [since, until].

    A call is kept or dropped whole, by the time of its first line (epoch s). A last line
    without its final newline (what a SIGKILL or a failed write leaves) is skipped with a
    WARNING, even if it parses, as is a line a later writer marked as cut off; any other
    unreadable line raises JournalError naming the file and line number.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(path, f"cannot read: {exc.strerror}", exc.errno) from None
    lines = data.split(b"\n")
    complete = data.endswith(b"\n") or not data
    if complete:
        lines.pop()  # the empty piece after the final newline
    parsed: list[tuple[int, Entry | str]] = []  # (line number, entry or why it is unreadable)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if number == len(lines) and not complete:
            _log.warning("journal %s: last line %d is incomplete (no final newline: its writer was "
                         "killed, or its write failed); skipped", path, number)
            continue
        try:
            parsed.append((number, _parse(path, number, raw)))
        except ValueError as exc:
            parsed.append((number, str(exc)))
    entries: list[Entry] = []
    for k, (number, item) in enumerate(parsed):
        following = parsed[k + 1][1] if k + 1 < len(parsed) else None
        if isinstance(following, Entry) and following.event == TRUNCATED:
            # a later writer found this line without its newline: cut off, whatever it holds
            if not (isinstance(item, Entry) and item.event == TRUNCATED):
                _log.warning("journal %s line %d was cut off (its writer died or failed mid-line); "
                             "skipped", path, number)
                continue
        if isinstance(item, str):
            raise JournalError(path, f"line {number} is corrupt: {item}")
        if item.event != TRUNCATED:
            entries.append(item)
    if since is None and until is None:
        return entries
    starts: dict[str, float] = {}
    for entry in entries:
        starts[entry.call] = min(starts.get(entry.call, entry.time), entry.time)
    low = -math.inf if since is None else since
    high = math.inf if until is None else until
    return [e for e in entries if low <= starts[e.call] <= high]
