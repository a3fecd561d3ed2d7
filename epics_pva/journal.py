"""The interface journal: an append-only JSON Lines record of every set, durable across a SIGKILL.

Each line is one JSON object with ``time`` (epoch s), ``pid``, ``event`` and ``call`` (an id
shared by every line of one set_values call, unique across processes), plus the event's own
fields::

    before      pv, value            read before the first put of the call ("error" instead
                                     of "value" when it could not be read)
    put         pv, value, attempt   written BEFORE the put is sent
    outcome     pv, attempt, outcome ("accepted", "timed_out", "rejected", "failed", ...),
                reason (null when none)
    validation  pv, result or error; optionally trace: the readback updates the validation
                saw, {"readback", "samples": [[server time, value, client time], ...], ...}
    read_only   pv, value            what a read-only call would have set

A hook in the interface needs only these calls, in this order::

    journal.check()                            # before anything is sent: JournalError if unwritable
    call = journal.new_call()
    journal.read_only(call, planned)           # read-only mode: done
    journal.before(call, values, errors)       # {pv: value read}, {pv: why it could not be read}
    journal.put(call, pv, value, attempt)      # then send the put
    journal.outcome(call, pv, attempt, "accepted" | "timed_out" | "rejected" | "failed", reason)
    journal.validation(call, pv, result=...)   # or error=...

Every line is written with one ``os.write`` on a descriptor opened with O_APPEND (no Python
buffering), so a SIGKILL loses at most the line being written and several processes may
append to one file without interleaving; ``fsync=True`` also syncs each line to disk.
Writers hold an exclusive ``flock`` while they write; under it each first looks at the last
byte, and if a writer died mid-line it ends that line and adds a ``truncated`` line, so the
reader can skip the fragment instead of calling the journal corrupt. A forked child opens
the file again on first use (its own flock) and renews the thread lock.

Values are encoded losslessly: numpy scalars as Python numbers, numpy arrays as lists,
non-finite floats as ``{"$float": "NaN" | "Infinity" | "-Infinity"}``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import numbers
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fcntl import LOCK_EX, LOCK_UN, flock
from pathlib import Path
from typing import Any

import numpy as np

from .errors import JournalError

__all__ = [
    "Journal", "Entry", "CallRecord", "PvRecord", "RestoreStep", "read_journal", "group_calls",
    "restore_plan", "encode_value", "decode_value", "EVENTS", "OUTCOMES",
]

_log = logging.getLogger(__name__)

BEFORE, PUT, OUTCOME, VALIDATION, READ_ONLY = "before", "put", "outcome", "validation", "read_only"
TRUNCATED = "truncated"  # written by a writer that found the previous line cut off
EVENTS = (BEFORE, PUT, OUTCOME, VALIDATION, READ_ONLY)
OUTCOMES = ("accepted", "timed_out", "rejected", "failed", "not_attempted")

_FLOAT_TAG = "$float"
_DICT_TAG = "$dict"
_REPR_TAG = "$repr"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# ---- values ---------------------------------------------------------------------------------

def encode_value(value: Any) -> Any:
    """A JSON-ready form of a PV value or validation result, decoded back by decode_value.

    Non-finite floats become tagged objects (JSON has no NaN); numpy scalars become Python
    numbers; arrays, tuples and lists become lists; anything else unknown its tagged repr.
    """
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    if isinstance(value, (numbers.Integral, np.integer)):
        return int(value)
    if isinstance(value, (numbers.Real, np.floating)):
        number = float(value)
        if math.isfinite(number):
            return number
        return {_FLOAT_TAG: "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")}
    if isinstance(value, str):
        return str(value)
    if isinstance(value, np.ndarray):
        return [encode_value(v) for v in value.tolist()] if value.ndim else encode_value(value.item())
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, Mapping):
        encoded = {str(k): encode_value(v) for k, v in value.items()}
        # a dict that looks like one of our tags is wrapped, so decoding gives it back unchanged
        return {_DICT_TAG: encoded} if any(k.startswith("$") for k in encoded) else encoded
    return {_REPR_TAG: repr(value)}


def decode_value(value: Any) -> Any:
    """The value encode_value was given (arrays come back as lists, unknown objects as repr str)."""
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == _FLOAT_TAG and inner in _NON_FINITE:
                return _NON_FINITE[inner]
            if key == _DICT_TAG and isinstance(inner, dict):
                return {k: decode_value(v) for k, v in inner.items()}
            if key == _REPR_TAG and isinstance(inner, str):
                return inner
        return {k: decode_value(v) for k, v in value.items()}
    return value


# ---- writing --------------------------------------------------------------------------------

_live: weakref.WeakSet[Journal] = weakref.WeakSet()


def _renew_locks_in_child() -> None:
    # a lock held by a parent thread at fork time would stay held for ever in the child
    for journal in list(_live):
        journal._lock = threading.Lock()


os.register_at_fork(after_in_child=_renew_locks_in_child)


def _check_pv(pv: Any) -> str:
    if not isinstance(pv, str) or not pv:
        raise ValueError(f"journal: a PV name must be a non-empty string, not {pv!r}")
    return pv


def _check_attempt(pv: str, attempt: Any) -> int:
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise ValueError(f"journal: {pv}: attempt must be an int >= 1, not {attempt!r}")
    return attempt


class Journal:
    """Appends JSON Lines records of set_values calls to `path`; thread, fork and SIGKILL safe.

    The file is opened (created if missing) at construction: a path that cannot be written
    raises JournalError naming it and the OS reason. `fsync` syncs every line to disk
    (slower: one disk flush per line).
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = bool(fsync)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._fd_pid = 0  # the process that opened _fd: a forked child opens its own
        self._calls = itertools.count(1)
        _live.add(self)
        self.check()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, fsync={self.fsync})"

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the path and options only: the unpickled journal opens the file itself."""
        return {"path": str(self.path), "fsync": self.fsync}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def _open(self) -> int:
        # read access too: before each line the writer looks at the last byte for a cut-off line
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise JournalError(self.path, f"cannot open for appending: {exc.strerror}", exc.errno) from None
        try:
            info = os.fstat(fd)
        except OSError as exc:  # pragma: no cover - fstat of a descriptor just opened
            os.close(fd)
            raise JournalError(self.path, f"cannot stat: {exc.strerror}", exc.errno) from None
        if not (info.st_mode & 0o170000) == 0o100000:
            os.close(fd)
            raise JournalError(self.path, "not a regular file")
        _log.debug("journal %s open for appending", self.path)
        self._fd_pid = os.getpid()
        return fd

    def check(self) -> None:
        """Make sure the journal can be written now: open it, or reopen it if it was removed.

        Call before sending anything; raises JournalError naming the path and the OS reason.
        """
        with self._lock:
            self._drop_inherited()
            if self._fd is not None:
                try:
                    same = os.path.samestat(os.fstat(self._fd), os.stat(self.path))
                except OSError:
                    same = False
                if same:
                    return
                _log.warning("journal %s was removed or replaced: reopening it", self.path)
                os.close(self._fd)
                self._fd = None
            self._fd = self._open()

    def _drop_inherited(self) -> None:
        """In a forked child, close the parent's descriptor (caller holds the lock).

        An own open file gives the child its own flock, so parent and child exclude each other.
        """
        if self._fd is not None and self._fd_pid != os.getpid():
            os.close(self._fd)  # the child's copy only: the parent's stays open
            self._fd = None

    def close(self) -> None:
        """Close the file; the next write opens it again."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    def new_call(self) -> str:
        """A fresh call id, unique across processes: "<pid>-<counter>-<random hex>"."""
        return f"{os.getpid()}-{next(self._calls)}-{secrets.token_hex(4)}"

    def _write(self, call: str, event: str, fields: Mapping[str, Any]) -> None:
        if not isinstance(call, str) or not call:
            raise ValueError(f"journal: call must be an id from new_call(), not {call!r}")
        body = json.dumps(dict(fields), allow_nan=False, separators=(",", ":"))[1:]
        with self._lock:
            self._drop_inherited()
            if self._fd is None:
                self._fd = self._open()
            try:
                # the file lock makes "is the last line whole?" exact across processes; the
                # kernel drops it when its holder dies
                flock(self._fd, LOCK_EX)
            except OSError as exc:
                raise JournalError(self.path, f"cannot lock: {exc.strerror}", exc.errno) from None
            try:
                # stamped under the file lock: the file's order is the order of `time`
                head = {"time": time.time(), "pid": os.getpid(), "event": event, "call": call}
                text = json.dumps(head, separators=(",", ":"))[:-1]
                line = (text + ("," + body if body != "}" else "}") + "\n").encode()
                if not self._ends_with_newline():
                    # a writer died mid-line: end that line and say so, then write ours
                    mark = json.dumps({**head, "event": TRUNCATED, "call": ""}, separators=(",", ":"))
                    line = b"\n" + mark.encode() + b"\n" + line
                done = os.write(self._fd, line)
                while done < len(line):  # a short write (disk full, signal): finish the line
                    done += os.write(self._fd, line[done:])
                if self.fsync:
                    os.fsync(self._fd)
            except OSError as exc:
                raise JournalError(self.path, f"cannot write: {exc.strerror}", exc.errno) from None
            finally:
                flock(self._fd, LOCK_UN)

    def _ends_with_newline(self) -> bool:
        size = os.fstat(self._fd).st_size
        return size == 0 or os.pread(self._fd, 1, size - 1) == b"\n"

    def before(
        self, call: str, values: Mapping[str, Any], errors: Mapping[str, str] | None = None
    ) -> None:
        """Record each PV's value read before the call's first put; `errors`: PVs that could not be read."""
        for pv, value in values.items():
            self._write(call, BEFORE, {"pv": _check_pv(pv), "value": encode_value(value)})
        for pv, why in (errors or {}).items():
            self._write(call, BEFORE, {"pv": _check_pv(pv), "error": str(why)})

    def put(self, call: str, pv: str, value: Any, attempt: int) -> None:
        """Record a put about to be sent (write it before sending, so a kill cannot hide it)."""
        self._write(call, PUT, {"pv": _check_pv(pv), "value": encode_value(value),
                                "attempt": _check_attempt(pv, attempt)})

    def outcome(
        self, call: str, pv: str, attempt: int, outcome: str, reason: str | None = None
    ) -> None:
        """Record how attempt `attempt` of a put ended: accepted, timed_out, rejected, failed, ..."""
        if not isinstance(outcome, str) or not outcome:
            raise ValueError(f"journal: {pv}: outcome must be a non-empty string, not {outcome!r}")
        self._write(call, OUTCOME, {"pv": _check_pv(pv), "attempt": _check_attempt(pv, attempt),
                                    "outcome": outcome,
                                    "reason": None if reason is None else str(reason)})

    def validation(
        self, call: str, pv: str, result: Any = None, error: BaseException | str | None = None,
        trace: Mapping[str, Any] | None = None,
    ) -> None:
        """Record what a PV's validation function returned, or the error it raised, and
        optionally the readback `trace` it saw (a ReadbackTrace: what a lag fit needs)."""
        if error is not None:
            text = str(error)
            if isinstance(error, BaseException) and not text:
                text = type(error).__name__
            fields: dict[str, Any] = {"pv": _check_pv(pv), "error": text}
        else:
            fields = {"pv": _check_pv(pv), "result": encode_value(result)}
        if trace is not None:
            fields["trace"] = encode_value(dict(trace))
        self._write(call, VALIDATION, fields)

    def read_only(self, call: str, planned: Mapping[str, Any]) -> None:
        """Record what a read-only call would have set, one line per PV."""
        for pv, value in planned.items():
            self._write(call, READ_ONLY, {"pv": _check_pv(pv), "value": encode_value(value)})


# ---- reading --------------------------------------------------------------------------------

_MISSING = object()


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

    A call is kept or dropped whole, by the time of its first line (epoch s). A cut-off last
    line (what a SIGKILL leaves) is skipped with a WARNING, as is a line a later writer marked
    as cut off; any other unreadable line raises JournalError naming the file and line number.
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
    entries: list[Entry] = []
    pending: tuple[int, str] | None = None  # a bad line, forgiven only if a truncation mark follows
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entry = _parse(path, number, raw)
        except ValueError as exc:
            if pending is not None:
                break
            pending = (number, str(exc))
            continue
        if pending is not None:
            if entry.event != TRUNCATED:
                break
            _log.warning("journal %s line %d was cut off (its writer died mid-line); skipped",
                         path, pending[0])
            pending = None
        if entry.event != TRUNCATED:
            entries.append(entry)
    if pending is not None:
        number, why = pending
        if number == len(lines) and not complete:
            _log.warning("journal %s: last line %d is incomplete (its writer was killed?); skipped",
                         path, number)
        else:
            raise JournalError(path, f"line {number} is corrupt: {why}")
    if since is None and until is None:
        return entries
    starts: dict[str, float] = {}
    for entry in entries:
        starts[entry.call] = min(starts.get(entry.call, entry.time), entry.time)
    low = -math.inf if since is None else since
    high = math.inf if until is None else until
    return [e for e in entries if low <= starts[e.call] <= high]


@dataclass
class PvRecord:
    """What one call did to one PV: before -> requested, each attempt's outcome, validation."""

    pv: str
    before: Any = _MISSING
    before_error: str | None = None
    requested: Any = _MISSING
    read_only: bool = False
    attempts: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    validation: Entry | None = None
    last_put: float | None = None

    @property
    def has_before(self) -> bool:
        return self.before is not _MISSING

    @property
    def was_put(self) -> bool:
        return self.last_put is not None


@dataclass
class CallRecord:
    """One set_values call as the journal saw it: when, which process, and each PV."""

    call: str
    time: float
    pid: int
    pvs: dict[str, PvRecord] = field(default_factory=dict)

    @property
    def read_only(self) -> bool:
        return bool(self.pvs) and all(r.read_only for r in self.pvs.values())


def group_calls(entries: Iterable[Entry]) -> list[CallRecord]:
    """Gather entries into one CallRecord per call, ordered by the call's first line time."""
    calls: dict[str, CallRecord] = {}
    for e in entries:
        record = calls.get(e.call)
        if record is None:
            record = calls[e.call] = CallRecord(e.call, e.time, e.pid)
        record.time = min(record.time, e.time)
        if e.pv is None:
            continue
        pv = record.pvs.setdefault(e.pv, PvRecord(e.pv))
        if e.event == BEFORE:
            if e.has_value:
                pv.before = e.value
            else:
                pv.before_error = e.error or "no value recorded"
        elif e.event == PUT:
            pv.requested = e.value
            pv.last_put = e.time
            pv.attempts.append((e.attempt or 0, None, None))
        elif e.event == OUTCOME:
            _set_outcome(pv.attempts, e.attempt or 0, e.outcome, e.reason)
        elif e.event == VALIDATION:
            pv.validation = e
        elif e.event == READ_ONLY:
            pv.requested, pv.read_only = e.value, True
    return sorted(calls.values(), key=lambda c: c.time)


def _set_outcome(attempts: list[tuple[int, str | None, str | None]], attempt: int,
                 outcome: str | None, reason: str | None) -> None:
    for i in range(len(attempts) - 1, -1, -1):
        if attempts[i][0] == attempt and attempts[i][1] is None:
            attempts[i] = (attempt, outcome, reason)
            return
    attempts.append((attempt, outcome, reason))  # an outcome whose put line was lost


@dataclass(frozen=True)
class RestoreStep:
    """One PV to put back: its `value` before the window's first change, and its last put time."""

    pv: str
    value: Any
    last_put: float
    call: str


def restore_plan(calls: Sequence[CallRecord]) -> tuple[list[RestoreStep], dict[str, str]]:
    """The PVs to put back, newest change first, and {pv: why not} for those that cannot be.

    Each PV put in `calls` goes back to its `before` value in the earliest call that put it.
    """
    first: dict[str, tuple[CallRecord, PvRecord]] = {}
    last_put: dict[str, float] = {}
    for call in sorted(calls, key=lambda c: c.time):
        for pv, rec in call.pvs.items():
            if not rec.was_put:
                continue
            first.setdefault(pv, (call, rec))
            last_put[pv] = max(last_put.get(pv, -math.inf), rec.last_put or -math.inf)
    steps: list[RestoreStep] = []
    unrestorable: dict[str, str] = {}
    for pv, (call, rec) in first.items():
        if rec.has_before:
            steps.append(RestoreStep(pv, rec.before, last_put[pv], call.call))
        else:
            why = rec.before_error or "no before value in the journal"
            unrestorable[pv] = f"call {call.call}: {why}"
    steps.sort(key=lambda s: s.last_put, reverse=True)
    return steps, unrestorable
