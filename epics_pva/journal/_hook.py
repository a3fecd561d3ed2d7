"""What one set_values call writes to the interface journal, and how a put's outcome is named there.

The Interface's JournalFile opens the journal on the first set
that needs it and makes one CallJournal per call (a no-op one without a journal). Its
`before` and `read_only` lines carry the Interface's wire settings (prefix, rehearsal,
rehearsal_id), and every wait for the journal's locks lasts at most the Interface's
`timeout`. A `put` line must be written before its put is sent, so `put` raises
JournalError and the caller then does not send; if the line may be in the file all the same
(the write failed after it began), an outcome ``refused`` line follows it, so the journal
never shows that put as sent. An `outcome` or `validation` line that cannot be written is
logged as an error and the call goes on (its put was sent: the machine's state matters more
than the line).

`CallJournal.guard()` wraps a call's puts: it gives the threads working for the call one
cancel signal (epics_pva.cancel), and if anything escapes the puts (KeyboardInterrupt,
SystemExit, a bug) it cancels the call's waits, writes an ``interrupted`` line naming the
PVs whose put had been sent, and lets the exception go on. When the puts end normally it
writes the call's ``end`` line (as `read_only` does after its lines).

The journal never decides a PV's outcome: what it cannot encode it records as a stand-in
(see encode_value), and a line after the put (outcome, validation, end) that cannot be
written for any reason is logged as an error while the PV keeps what the machine did.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .._cancel import Cancel, cancel_scope
from ..errors import JournalError, StrangerServerError
from ..results import SetResult, Status
from ._format import safe_text
from ._writer import Journal, LineWriteError

if TYPE_CHECKING:
    pass

__all__ = ["CallJournal", "JournalFile", "classify", "refused_by_journal", "start_or_refuse"]

_log = logging.getLogger(__name__)
_interface_log = logging.getLogger("epics_pva.interface")  # a refused set, logged with the other sets


def classify(outcome: Any, timeout: float, closed: bool) -> tuple[str, str | None]:
    """(journal outcome, reason) of one put attempt: None is accepted, an exception says what failed.

    `closed` is true when the context was closed under the put (cut off, not the machine's verdict).
    """
    if outcome is None:
        return "accepted", None
    if closed:
        return "failed", f"the client context was closed under the put: {outcome}"
    if isinstance(outcome, StrangerServerError):  # rehearsal's check of the server, before sending
        return ("failed" if outcome.sent else "refused"), outcome.reason
    if isinstance(outcome, TimeoutError):
        return "timed_out", f"no reply within {timeout:g} s"
    from p4p.client.thread import RemoteError  # here: reading a journal needs no p4p

    if isinstance(outcome, RemoteError):
        return "rejected", str(outcome)
    if isinstance(outcome, (ValueError, TypeError)):  # p4p's put builder: raised before sending
        return "refused", f"not sent: the value does not fit the PV: {outcome}"
    return "failed", f"{type(outcome).__name__}: {outcome}"


class CallJournal:
    """The journal lines of one set_values call; every method is a no-op without a journal.

    `wire` (the call's prefix and rehearsal settings, a dict) goes on the call's before and read_only lines. It keeps, in
    this process, which PVs had a put line written and not refused (`sent`), for the
    `interrupted` line.
    """

    def __init__(self, journal: Journal | None, wire: Mapping[str, Any] | None = None) -> None:
        self.journal = journal
        self.call = journal.new_call() if journal is not None else ""
        self.wire = dict(wire) if wire is not None else None
        self._lock = threading.Lock()
        self._planned: dict[str, None] = {}  # the PVs of the call, in order
        self._sent: dict[str, set[int]] = {}  # {pv: attempts sent (or being sent)}, in order

    def __bool__(self) -> bool:
        return self.journal is not None

    def before(self, values: Mapping[str, Any], errors: Mapping[str, str]) -> None:
        """Each PV's value read by the pre-check (raises JournalError: nothing is sent then)."""
        with self._lock:
            self._planned.update(dict.fromkeys([*values, *errors]))
        if self.journal is not None:
            self.journal.before(self.call, values, errors, self.wire)

    def read_only(self, planned: Mapping[str, Any]) -> None:
        """What a read-only call would have set (raises JournalError), then the call's end."""
        if self.journal is not None:
            self.journal.read_only(self.call, planned, self.wire)
            self.end()

    def end(self) -> None:
        """The call's last line (logged, not raised, if it cannot be written)."""
        if self.journal is not None:
            try:
                self.journal.end(self.call)
            except Exception as exc:  # noqa: BLE001 - the call is done: its outcome stands
                _log.error("end of call %s not journaled: %s", self.call, exc)

    def put(self, pv: str, value: Any, attempt: int) -> None:
        """The put about to be sent; raises JournalError, and then the put must not be sent.

        A write that failed may still have left the line in the file (a failed fsync, say):
        an outcome "refused" line then says the put was not sent (if that can be written).
        """
        if self.journal is None:
            return
        try:
            self.journal.put(self.call, pv, value, attempt)
        except LineWriteError as exc:  # the line may be there: say the put was not sent
            self._refused(pv, attempt, f"not sent: its put line could not be written: {exc.reason}")
            raise
        with self._lock:
            self._sent.setdefault(pv, set()).add(attempt)

    def _refused(self, pv: str, attempt: int, reason: str) -> None:
        assert self.journal is not None
        try:
            self.journal.outcome(self.call, pv, attempt, "refused", reason)
        except (JournalError, ValueError) as exc:
            _log.error("%s: refusal of attempt %d not journaled: %s", pv, attempt, exc)

    def outcome(self, pv: str, attempt: int, outcome: str, reason: str | None = None) -> None:
        """How a sent put ended; a line that cannot be written is logged, not raised."""
        if outcome == "refused":  # that attempt never left: the PV is sent only if another did
            with self._lock:
                self._sent.get(pv, set()).discard(attempt)
        if self.journal is not None:
            try:
                self.journal.outcome(self.call, pv, attempt, outcome, reason)
            except Exception as exc:  # noqa: BLE001 - the put was sent: what it did stands
                _log.error("%s: outcome %s of attempt %d not journaled: %s", pv, outcome, attempt, exc)

    @contextmanager
    def guard(self) -> Iterator[Cancel]:
        """Run a call's puts: one cancel signal for every thread working for it, and if anything
        escapes (KeyboardInterrupt, SystemExit, any other exception) the call's waits are
        cancelled, an ``interrupted`` line names the PVs sent so far, and it goes on up."""
        with cancel_scope() as cancel:
            try:
                yield cancel
            except BaseException as exc:
                cancel.cancel()  # wake the workers' retry delays and readback waits now
                self.interrupted(exc)
                raise
        self.end()

    def interrupted(self, exc: BaseException) -> None:
        """Write the ``interrupted`` line (logged, not raised, if it cannot be written)."""
        text = safe_text(exc)
        reason = f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
        if self.journal is None:
            _interface_log.error("set interrupted (%s)", reason)
            return
        with self._lock:
            sent = [pv for pv, attempts in self._sent.items() if attempts]
            not_sent = [pv for pv in self._planned if pv not in sent]
        _interface_log.error("set interrupted (%s) after sending %d of %d PV(s)%s", reason, len(sent),
                             len(sent) + len(not_sent), f": {', '.join(sent)}" if sent else "")
        try:
            self.journal.interrupted(self.call, sent, not_sent, reason)
        except Exception as exc2:  # noqa: BLE001 - the interruption goes on up all the same
            _log.error("interruption of call %s not journaled: %s", self.call, exc2)

    def validation(self, pv: str, result: Any = None, error: BaseException | None = None,
                   trace: Mapping[str, Any] | None = None) -> None:
        """What a PV's validation returned or raised (and the readback `trace` it saw, if any);
        a line that cannot be written is logged."""
        if self.journal is not None:
            try:
                self.journal.validation(self.call, pv, result=result, error=error, trace=trace)
            except Exception as exc:  # noqa: BLE001 - the PV's outcome is what the machine did
                _log.error("%s: validation not journaled: %s", pv, exc)


class JournalFile:
    """An Interface's journal (none if `path` is None), opened on the first set: a bad path fails that set.

    `wire` goes on each call's before and read_only lines; `lock_timeout` bounds every wait
    for the journal's locks (see Journal).
    """

    def __init__(self, path: str | None, fsync: bool, wire: Mapping[str, Any] | None = None,
                 lock_timeout: float | None = None) -> None:
        self.path = path
        self.fsync = fsync
        self.wire = dict(wire) if wire is not None else None
        self.lock_timeout = lock_timeout
        self._journal: Journal | None = None
        self._lock = threading.Lock()

    def open_call(self, inputs: Mapping[str, Any], wire: Mapping[str, Any] | None = None) -> CallJournal:
        """This call's journal lines (none without a journal); JournalError if it cannot be written.

        `wire` replaces the Interface's wire settings for this call (the write guard's, when an
        operator's switch forced rehearsal). Checked before anything is read or sent: the
        error's `results` say every PV was not attempted.
        """
        wire = self.wire if wire is None else wire
        if self.path is None:
            return CallJournal(None, wire)
        try:
            with self._lock:
                if self._journal is None:
                    self._journal = Journal(self.path, fsync=self.fsync, lock_timeout=self.lock_timeout)
                journal = self._journal
            journal.check()
            return CallJournal(journal, wire)
        except JournalError as exc:
            raise refused_by_journal(exc, inputs) from None

    def close(self) -> None:
        """Close the file; the next set opens it again."""
        journal = self._journal
        if journal is not None:
            journal.close()


def start_or_refuse(write: Callable[[], None], planned: Mapping[str, Any]) -> None:
    """Write the call's first lines (before or read_only); JournalError, nothing sent, if it fails."""
    try:
        write()
    except JournalError as exc:
        raise refused_by_journal(exc, planned) from None


def refused_by_journal(exc: JournalError, inputs: Mapping[str, Any]) -> JournalError:
    """The error of a set refused because its journal cannot be written: every PV not attempted."""
    _interface_log.error("set refused, nothing sent: %s", exc)
    reason = f"journal cannot be written: {exc.reason}"
    results = {pv: SetResult(pv, value, Status.NOT_ATTEMPTED, reason=reason)
               for pv, value in inputs.items()}
    return JournalError(exc.path, f"{exc.reason}; nothing was sent", exc.errno, results=results)
