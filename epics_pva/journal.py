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

This module is the writer; it also gives every name of the journal's other modules, so
``from epics_pva.journal import X`` serves them all: the line vocabulary and value encoding
(journal_format.py), reading lines back (journal_read.py), and grouping them into calls and
a restore plan (journal_restore.py).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Mapping
from fcntl import LOCK_EX, LOCK_UN, flock
from pathlib import Path
from typing import Any

from .errors import JournalError
from .journal_format import (
    BEFORE,
    EVENTS,
    OUTCOME,
    OUTCOMES,
    PUT,
    READ_ONLY,
    TRUNCATED,
    VALIDATION,
    decode_value,
    encode_value,
)
from .journal_read import Entry, read_journal
from .journal_restore import CallRecord, PvRecord, RestoreStep, group_calls, restore_plan

__all__ = [
    "Journal", "Entry", "CallRecord", "PvRecord", "RestoreStep", "read_journal", "group_calls",
    "restore_plan", "encode_value", "decode_value", "EVENTS", "OUTCOMES",
]

_log = logging.getLogger(__name__)


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
        type(self).__init__(self, **state)

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
        assert self._fd is not None  # called with the file open
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
