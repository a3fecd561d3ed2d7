"""The IOC's record of every put it received and every fault that fired.

In memory always; with a `path`, also appended to a JSON Lines file as it happens, one
``os.write`` per line on a descriptor opened with O_APPEND (no Python buffering), so the file
survives a SIGKILL of the IOC's process with at most the line being written lost. Lines::

    {"type": "put", "time": epoch s, "sim_time": s, "pv", "value" (requested), "applied",
     "outcome" (accepted | rejected | timed_out), "message", "fault" (kind or null), "peer"}
    {"type": "fault", "time", "sim_time", "pv", "kind", "event" (fired, armed, ...), "detail"}
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AuditFileError

__all__ = ["ACCEPTED", "REJECTED", "TIMED_OUT", "Audit", "FaultRecord", "PutRecord", "fault_line", "put_line",
           "read_audit_file"]

_log = logging.getLogger(__name__)

ACCEPTED = "accepted"
REJECTED = "rejected"
TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class PutRecord:
    """One put as the server saw it: `outcome` is accepted, rejected or timed_out.

    `value` is what the client asked for, `applied` what the device took (a put beyond a
    setpoint's limits is clamped to them); None when nothing was applied.
    """

    pv: str
    value: Any
    wall_time: float
    sim_time: float
    outcome: str
    message: str = ""
    fault: str | None = None
    peer: str = ""
    applied: Any = None

    @property
    def accepted(self) -> bool:
        return self.outcome == ACCEPTED


@dataclass(frozen=True)
class FaultRecord:
    """A fault that fired (or was armed, cleared, expired): what happened to which PV, when."""

    pv: str
    kind: str
    event: str
    wall_time: float
    sim_time: float
    detail: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """A JSON-ready form of a put value: numbers, strings, lists; non-finite floats as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    try:
        return _plain(float(value))
    except (TypeError, ValueError):
        return repr(value)


def put_line(record: PutRecord) -> dict[str, Any]:
    """The audit file's line for a put: the value requested and the value applied (None if none)."""
    applied = record.applied  # what the device took (clamped to its limits), None if nothing
    return {"type": "put", "time": record.wall_time, "sim_time": record.sim_time, "pv": record.pv,
            "value": _plain(record.value), "applied": _plain(applied), "outcome": record.outcome,
            "message": record.message, "fault": record.fault, "peer": record.peer}


def fault_line(record: FaultRecord) -> dict[str, Any]:
    """The audit file's line for a fault event."""
    return {"type": "fault", "time": record.wall_time, "sim_time": record.sim_time, "pv": record.pv,
            "kind": record.kind, "event": record.event, "detail": _plain(dict(record.detail))}


def read_audit_file(path: str | os.PathLike[str], *more: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every line of an audit file, oldest first; a cut-off last line (a SIGKILL's) is skipped.

    With `more` files (one per host of a machine spread over hosts) every file's lines merged
    by their `time`, each file's own order kept among equal times. Raises AuditFileError if a
    file cannot be read, ValueError naming the line if one before the last is not a JSON object.
    """
    if more:
        files = [_read_one(p) for p in (path, *more)]
        return sorted((line for lines in files for line in lines), key=_line_time)
    return _read_one(path)


def _line_time(line: dict[str, Any]) -> float:
    when = line.get("time")
    return float(when) if isinstance(when, (int, float)) else 0.0


def _read_one(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuditFileError(f"audit file {str(path)!r}: cannot read: {exc.strerror}") from None
    pieces = data.split(b"\n")
    last_cut = not data.endswith(b"\n")
    lines = []
    for number, raw in enumerate(pieces, start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            if not isinstance(line, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            if number == len(pieces) and last_cut:
                _log.warning("audit file %s: last line %d is incomplete; skipped", path, number)
                break
            raise ValueError(f"audit file {str(path)!r} line {number}: {exc}") from None
        lines.append(line)
    return lines


class Audit:
    """Thread-safe, append-only log that tests query after the fact; also a file with `path`.

    Raises AuditFileError when `path` cannot be opened for appending. A line that cannot be
    written later is logged as an error (the put itself is not refused for it).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._puts: list[PutRecord] = []
        self._faults: list[FaultRecord] = []
        self.path = None if path is None else Path(path)
        self._fd: int | None = None
        if self.path is not None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            try:
                self._fd = os.open(self.path, flags, 0o644)
            except OSError as exc:
                raise AuditFileError(f"audit file {str(self.path)!r}: cannot open for appending: "
                                     f"{exc.strerror}") from None

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the audit file (the in-memory audit stays); later records are memory only."""
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)

    def _append(self, line: dict[str, Any]) -> None:
        # caller holds the lock: lines are whole and in the order recorded
        if self._fd is None:
            return
        data = (json.dumps(line, separators=(",", ":"), default=repr) + "\n").encode()
        try:
            done = os.write(self._fd, data)
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            _log.error("audit file %s: cannot write: %s", self.path, exc.strerror)

    def record_put(self, record: PutRecord) -> None:
        with self._lock:
            self._puts.append(record)
            self._append(put_line(record))

    def record_fault(self, record: FaultRecord) -> None:
        with self._lock:
            self._faults.append(record)
            self._append(fault_line(record))

    def puts(self, pv: str | None = None, outcome: str | None = None) -> list[PutRecord]:
        """Puts received, oldest first, optionally only those to `pv` or with `outcome`."""
        with self._lock:
            return [
                r for r in self._puts
                if (pv is None or r.pv == pv) and (outcome is None or r.outcome == outcome)
            ]

    def put_count(self) -> int:
        """How many puts were recorded (cheap: no copy, for publishing every update)."""
        with self._lock:
            return len(self._puts)

    def faults(self, pv: str | None = None, event: str | None = "fired") -> list[FaultRecord]:
        """Fault events, oldest first; by default only faults that fired."""
        with self._lock:
            return [
                r for r in self._faults
                if (pv is None or r.pv == pv) and (event is None or r.event == event)
            ]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._puts.clear()
            self._faults.clear()
