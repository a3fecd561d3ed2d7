"""The interface journal: an append-only JSON Lines record of every set, durable across a SIGKILL.

Each line is one JSON object with ``time`` (epoch s), ``pid``, ``event`` and ``call`` (an id
shared by every line of one set_values call, unique across processes), plus the event's own
fields::

    before      pv, value            read before the first put of the call ("error" instead
                                     of "value" when it could not be read); and the wire
                                     settings of the Interface that made the call:
                                     prefix (put before every PV name on the wire),
                                     rehearsal (true/false), rehearsal_id (the soft IOC's id)
    put         pv, value, attempt   written BEFORE the put is sent
    outcome     pv, attempt, outcome ("accepted", "timed_out", "rejected", "failed",
                "refused": never sent, though its put line was written), reason (null when none)
    validation  pv, result or error; optionally trace: the readback updates the validation
                saw and the wait's keywords, {"readback", "tolerance", "offset", "count_down",
                "samples": [[server time, value, client time], ...], ...}
    read_only   pv, value            what a read-only call would have set (with the wire
                                     settings, as on `before`)
    interrupted sent, not_sent, reason  the call was interrupted (KeyboardInterrupt, ...)
                                     during its puts: the PVs whose put had been sent (or was
                                     being sent) and those never sent, and what interrupted it
    end         (no fields)          the call is over: no line of it follows (a call broken
                                     off, or whose process was killed, has none)

A call id is "<pid>-<counter>-<random hex>-<ms>", <ms> the epoch milliseconds when the id was
made, before the call's first line: a lower bound on the call's start that lets a reader
asked for a time window tell, without reading the whole journal, whether a call seen at the
window's start began before it. Ids of journals written before it have three parts.

Journals written before the wire settings were recorded have none on their `before` lines;
the reader takes them as they are (`CallRecord.wire` is None).

A hook in the interface needs only these calls, in this order::

    journal.check()                            # before anything is sent: JournalError if unwritable
    call = journal.new_call()
    journal.read_only(call, planned, wire)     # read-only mode: done
    journal.before(call, values, errors, wire) # {pv: value read}, {pv: why it could not be read}
    journal.put(call, pv, value, attempt)      # then send the put
    journal.outcome(call, pv, attempt, "accepted" | "timed_out" | "rejected" | "failed" | "refused",
                    reason)
    journal.validation(call, pv, result=...)   # or error=...
    journal.interrupted(call, sent, not_sent, reason)  # only if something broke off the call
    journal.end(call)                          # the call is over (not after an interruption)

Every line is written with one ``os.write`` on a descriptor opened with O_APPEND (no Python
buffering), so a SIGKILL loses at most the line being written and several processes may
append to one file without interleaving; ``fsync=True`` also syncs each line to disk.
Writers hold an exclusive ``flock`` while they write; under it each first looks at the last
byte, and if a writer died mid-line it ends that line and adds a ``truncated`` line, so the
reader can skip the fragment instead of calling the journal corrupt. A forked child opens
the file again on first use (its own flock) and renews the thread lock. With `lock_timeout`
a writer waits at most that long for the thread lock and the flock together (polling the
flock without blocking), then raises JournalError naming the file: a journal held locked by
a hung process fails the set before any put instead of hanging it. A line is a line only
with its final newline: the reader skips a last line without one, and a line a later writer
marked as cut off, whether or not it parses.

Values are encoded losslessly: numpy scalars as Python numbers, numpy arrays as lists,
non-finite floats as ``{"$float": "NaN" | "Infinity" | "-Infinity"}``. A value that cannot be
encoded (a repr that raises, lists nested thousands deep, an int of thousands of digits) is
recorded as a repr of at most 200 characters or as "unencodable: <type>", and so is the text
of an error whose ``__str__`` raises: a line is never refused for what it records.
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
from collections.abc import Mapping, Sequence
from fcntl import LOCK_UN, flock
from pathlib import Path
from typing import Any

from .._fork import at_fork
from ..errors import JournalError, LineWriteError
from ._format import (
    BEFORE,
    END,
    INTERRUPTED,
    OUTCOME,
    PUT,
    READ_ONLY,
    TRUNCATED,
    VALIDATION,
    encode_value,
    safe_text,
    wire_fields,
)
from ._lock import hold, take_flock

__all__ = ["Journal", "LineWriteError"]

_log = logging.getLogger(__name__)


_live: weakref.WeakSet[Journal] = weakref.WeakSet()


def _renew_locks_in_child() -> None:
    # a lock held by a parent thread at fork time would stay held for ever in the child
    for journal in list(_live):
        journal._lock = threading.Lock()


at_fork(after_in_child=_renew_locks_in_child)


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
    (slower: one disk flush per line). `lock_timeout` (seconds; None waits for ever) bounds
    the wait for the journal's locks (this object's thread lock and the file's flock, held
    by other writers while they write a line): past it a write raises JournalError naming
    the file.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False,
                 lock_timeout: float | None = None) -> None:
        self.path = Path(path)
        self.fsync = bool(fsync)
        if lock_timeout is not None and not lock_timeout >= 0:
            raise ValueError(f"journal: lock_timeout must be >= 0 seconds or None, not {lock_timeout!r}")
        self.lock_timeout = None if lock_timeout is None else float(lock_timeout)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._fd_pid = 0  # the process that opened _fd: a forked child opens its own
        self._calls = itertools.count(1)
        _live.add(self)
        self.check()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, fsync={self.fsync}, lock_timeout={self.lock_timeout})"

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
        return {"path": str(self.path), "fsync": self.fsync, "lock_timeout": self.lock_timeout}

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
        with hold(self._lock, self._deadline(), self.path, self.lock_timeout):
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

    def _deadline(self) -> float | None:
        """When a wait for the locks that starts now must give up (monotonic s), or None."""
        return None if self.lock_timeout is None else time.monotonic() + self.lock_timeout

    def close(self) -> None:
        """Close the file; the next write opens it again."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    def new_call(self) -> str:
        """A fresh call id, unique across processes: "<pid>-<counter>-<random hex>-<ms>", <ms>
        the epoch milliseconds now (a lower bound on the time of the call's first line)."""
        return f"{os.getpid()}-{next(self._calls)}-{secrets.token_hex(4)}-{int(time.time() * 1000)}"

    def _write(self, call: str, event: str, fields: Mapping[str, Any]) -> None:
        if not isinstance(call, str) or not call:
            raise ValueError(f"journal: call must be an id from new_call(), not {call!r}")
        body = json.dumps(dict(fields), allow_nan=False, separators=(",", ":"))[1:]
        deadline = self._deadline()
        with hold(self._lock, deadline, self.path, self.lock_timeout):
            self._drop_inherited()
            if self._fd is None:
                self._fd = self._open()
            try:
                # the file lock makes "is the last line whole?" exact across processes; the
                # kernel drops it when its holder dies
                take_flock(self._fd, deadline, self.path, self.lock_timeout)
            except OSError as exc:
                if isinstance(exc, JournalError):
                    raise
                raise JournalError(self.path, f"cannot lock: {exc.strerror}", exc.errno) from None
            started = False
            try:
                # stamped under the file lock: the file's order is the order of `time`
                head = {"time": time.time(), "pid": os.getpid(), "event": event, "call": call}
                text = json.dumps(head, separators=(",", ":"))[:-1]
                line = (text + ("," + body if body != "}" else "}") + "\n").encode()
                if not self._ends_with_newline():
                    # a writer died mid-line: end that line and say so, then write ours
                    mark = json.dumps({**head, "event": TRUNCATED, "call": ""}, separators=(",", ":"))
                    line = b"\n" + mark.encode() + b"\n" + line
                started = True  # from here on, the line may be in the file, whole or in part
                done = os.write(self._fd, line)
                while done < len(line):  # a short write (disk full, signal): finish the line
                    done += os.write(self._fd, line[done:])
                if self.fsync:
                    os.fsync(self._fd)
            except OSError as exc:
                kind = LineWriteError if started else JournalError
                raise kind(self.path, f"cannot write: {exc.strerror}", exc.errno) from None
            finally:
                flock(self._fd, LOCK_UN)

    def _ends_with_newline(self) -> bool:
        assert self._fd is not None  # called with the file open
        size = os.fstat(self._fd).st_size
        return size == 0 or os.pread(self._fd, 1, size - 1) == b"\n"

    def before(
        self, call: str, values: Mapping[str, Any], errors: Mapping[str, str] | None = None,
        wire: Mapping[str, Any] | None = None,
    ) -> None:
        """Record each PV's value read before the call's first put; `errors`: PVs that could not be read.

        `wire` ({"prefix", "rehearsal", "rehearsal_id"}: the settings of the Interface making
        the call) goes on every line, so any of them says what the call's PV names meant.
        """
        extra = wire_fields(wire)
        for pv, value in values.items():
            self._write(call, BEFORE, {"pv": _check_pv(pv), "value": encode_value(value), **extra})
        for pv, why in (errors or {}).items():
            self._write(call, BEFORE, {"pv": _check_pv(pv), "error": safe_text(why), **extra})

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
                                    "reason": None if reason is None else safe_text(reason)})

    def validation(
        self, call: str, pv: str, result: Any = None, error: BaseException | str | None = None,
        trace: Mapping[str, Any] | None = None,
    ) -> None:
        """Record what a PV's validation function returned, or the error it raised, and
        optionally the readback `trace` it saw (a ReadbackTrace: what a lag fit needs)."""
        if error is not None:
            fields: dict[str, Any] = {"pv": _check_pv(pv), "error": safe_text(error)}
        else:
            fields = {"pv": _check_pv(pv), "result": encode_value(result)}
        if trace is not None:
            fields["trace"] = encode_value(trace)
        self._write(call, VALIDATION, fields)

    def read_only(self, call: str, planned: Mapping[str, Any], wire: Mapping[str, Any] | None = None) -> None:
        """Record what a read-only call would have set, one line per PV (with `wire`, as `before`)."""
        extra = wire_fields(wire)
        for pv, value in planned.items():
            self._write(call, READ_ONLY, {"pv": _check_pv(pv), "value": encode_value(value), **extra})

    def interrupted(self, call: str, sent: Sequence[str], not_sent: Sequence[str], reason: str) -> None:
        """Record that the call was broken off during its puts (KeyboardInterrupt, ...): the PVs
        whose put had been sent or was being sent, the PVs never sent, and what interrupted it."""
        self._write(call, INTERRUPTED, {"sent": [_check_pv(pv) for pv in sent],
                                        "not_sent": [_check_pv(pv) for pv in not_sent],
                                        "reason": safe_text(reason)})

    def end(self, call: str) -> None:
        """Record that the call is over: no line of it follows this one."""
        self._write(call, END, {})
