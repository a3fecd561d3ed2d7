"""What one set_values call writes to the interface journal, and how a put's outcome is named there.

The Interface's JournalFile opens the journal on the first set that needs it and makes one
CallJournal per call (a no-op one without a journal). A `put` line
must be written before its put is sent, so `put` raises JournalError and the caller then
does not send; an `outcome` or `validation` line that cannot be written is logged as an
error and the call goes on (its put was sent: the machine's state matters more than the line).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from p4p.client.thread import RemoteError

from .errors import JournalError, StrangerServerError
from .journal import Journal
from .results import SetResult, Status

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
    if isinstance(outcome, StrangerServerError):
        return ("failed" if outcome.sent else "not_attempted"), outcome.reason
    if isinstance(outcome, TimeoutError):
        return "timed_out", f"no reply within {timeout:g} s"
    if isinstance(outcome, RemoteError):
        return "rejected", str(outcome)
    return "failed", f"{type(outcome).__name__}: {outcome}"


class CallJournal:
    """The journal lines of one set_values call; every method is a no-op without a journal."""

    def __init__(self, journal: Journal | None) -> None:
        self.journal = journal
        self.call = journal.new_call() if journal is not None else ""

    def __bool__(self) -> bool:
        return self.journal is not None

    def before(self, values: Mapping[str, Any], errors: Mapping[str, str]) -> None:
        """Each PV's value read by the pre-check (raises JournalError: nothing is sent then)."""
        if self.journal is not None:
            self.journal.before(self.call, values, errors)

    def read_only(self, planned: Mapping[str, Any]) -> None:
        """What a read-only call would have set (raises JournalError)."""
        if self.journal is not None:
            self.journal.read_only(self.call, planned)

    def put(self, pv: str, value: Any, attempt: int) -> None:
        """The put about to be sent; raises JournalError, and then the put must not be sent."""
        if self.journal is not None:
            self.journal.put(self.call, pv, value, attempt)

    def outcome(self, pv: str, attempt: int, outcome: str, reason: str | None = None) -> None:
        """How a sent put ended; a line that cannot be written is logged, not raised."""
        if self.journal is not None:
            try:
                self.journal.outcome(self.call, pv, attempt, outcome, reason)
            except (JournalError, ValueError) as exc:
                _log.error("%s: outcome %s of attempt %d not journaled: %s", pv, outcome, attempt, exc)

    def validation(self, pv: str, result: Any = None, error: BaseException | None = None,
                   trace: Mapping[str, Any] | None = None) -> None:
        """What a PV's validation returned or raised (and the readback `trace` it saw, if any);
        a line that cannot be written is logged."""
        if self.journal is not None:
            try:
                self.journal.validation(self.call, pv, result=result, error=error, trace=trace)
            except (JournalError, ValueError) as exc:
                _log.error("%s: validation not journaled: %s", pv, exc)


class JournalFile:
    """An Interface's journal (none if `path` is None), opened on the first set: a bad path fails that set."""

    def __init__(self, path: str | None, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self._journal: Journal | None = None
        self._lock = threading.Lock()

    def open_call(self, inputs: Mapping[str, Any]) -> CallJournal:
        """This call's journal lines (none without a journal); JournalError if it cannot be written.

        Checked before anything is read or sent: the error's `results` say every PV was not
        attempted.
        """
        if self.path is None:
            return CallJournal(None)
        try:
            with self._lock:
                if self._journal is None:
                    self._journal = Journal(self.path, fsync=self.fsync)
                journal = self._journal
            journal.check()
            return CallJournal(journal)
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
