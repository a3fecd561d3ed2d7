"""One set_values call's puts, retries and validations, driven from the calling thread.

Puts go out as waves of concurrent operations with one deadline each (the first attempts
together; the PVs whose retry falls due at one moment together), every outcome handled as it
arrives. A validation that is exactly a wait_for_readback partial is a readback wait judged
here, on monitor updates; any other validation function runs in a thread of the Interface's
TimeLimit. Nothing here waits for anything but the next outcome or deadline, so a call lasts
about as long as its slowest PV: put_attempts x (timeout + retry_delay) for PVs that never
answer, however many.

In order (parallel=False) the PVs are set one after the other, each as a run of its own, and
the first failure stops the rest.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from .. import _cancel
from ..errors import (
    ContextClosedError,
    EpicsPvaError,
    JournalError,
    PutError,
    PutTimeoutError,
    ValidationError,
)
from ..journal import CallJournal, classify
from ..results import SetResult, Status, show
from ..transport import CallerQueue, MetadataCache, Wave, closed_error, is_closed, put_wave, watch
from ._readback import ReadbackWait, TraceList, recording_traces
from ._set_outcomes import not_journaled, put_error, unexpected
from ._settings import Settings
from ._time_limit import Outcome, Ticket, TimeLimit, ValidationTimeout
from ._validation import ValidationFunction, readback_wait_of

__all__ = ["SetRun"]

_log = logging.getLogger("epics_pva.interface")  # the Interface's one logger, as operators name it

SET, FAILED = Status.SET, Status.FAILED


class _PV:
    """One PV of the call: what is put, how it is validated, where it stands."""

    __slots__ = ("attempts", "deadline", "name", "result", "start", "ticket", "traces", "validate", "value",
                 "wait")

    def __init__(self, name: str, value: Any, validate: ValidationFunction | None, start: float) -> None:
        self.name, self.value, self.validate, self.start = name, value, validate, start
        self.attempts = 0
        self.result: SetResult | None = None
        self.wait: ReadbackWait | None = None  # a readback wait in progress
        self.ticket: Ticket | None = None  # a validation function running in a thread
        self.deadline: float | None = None  # validation_timeout of the validation in progress
        self.traces: TraceList | None = None


class SetRun:
    """The puts and validations of one call; `run(planned, functions)` gives every PV's SetResult."""

    def __init__(self, settings: Settings, context: Any, monitors: MetadataCache, time_limit: TimeLimit,
                 journal: CallJournal, vet: Any = None) -> None:
        self.settings, self.context, self._monitors = settings, context, monitors
        self._time_limit, self._journal, self._vet = time_limit, journal, vet
        self._queue = CallerQueue()
        self._waves: list[tuple[Wave, list[_PV]]] = []
        self._retries: list[tuple[float, int, _PV]] = []  # (due, order, pv): a heap
        self._waits: dict[_PV, ReadbackWait] = {}
        self._changed: set[_PV] = set()
        self._threads: dict[_PV, Ticket] = {}
        self._queued: deque[_PV] = deque()  # validations waiting for a thread
        self._left = 0
        self._cancel = _cancel.current()
        self._inline = time_limit.inside()  # a set from inside one of our validation functions

    # ---- the call ------------------------------------------------------------------------------

    def run(self, planned: Mapping[str, Any], functions: Mapping[str, ValidationFunction | None]) -> dict[str, SetResult]:
        """Set every PV of `planned` (parallel or in order, as the settings say)."""
        start = time.monotonic()
        if self.settings.parallel and len(planned) > 1:
            pvs = [_PV(pv, value, functions.get(pv), start) for pv, value in planned.items()]
            self._drive(pvs, inline=self._inline)
            return {pv.name: _result(pv) for pv in pvs}
        results: dict[str, SetResult] = {}
        failed = False
        for name, value in planned.items():
            if failed:
                results[name] = SetResult(name, value, Status.NOT_ATTEMPTED,
                                          reason="sequential mode stops at the first failure")
                continue
            pv = _PV(name, value, functions.get(name), time.monotonic())
            # in order and without a time limit, a validation function runs in the calling thread
            self._drive([pv], inline=self._inline or self.settings.validation_timeout is None)
            results[name] = _result(pv)
            failed = results[name].status == FAILED
        return results

    def _drive(self, pvs: list[_PV], inline: bool) -> None:
        self._left = len(pvs)
        self._inline_now = inline
        unwatch = watch(self.context, self._queue.wake)
        uncancel = self._cancel.on_cancel(self._queue.wake) if self._cancel is not None else None
        unfree = self._time_limit.notify_free(self._queue.wake)
        try:
            self._send(pvs)
            while self._left:
                self._step(time.monotonic())
                if not self._left:
                    break
                self._queue.run_next(max(self._next_deadline() - time.monotonic(), 0.0))
                self._queue.run_pending()
        except BaseException:
            self._interrupted()
            raise
        finally:
            unfree()
            unwatch()
            if uncancel is not None:
                uncancel()
            self._end()

    def _interrupted(self) -> None:
        """The call is interrupted (KeyboardInterrupt, SystemExit, a bug): every PV still
        waiting says so (a put without its reply, a readback wait, in the journal; a retry not
        sent, in the log); validation functions running in threads are cancelled by the call's
        guard, just after."""
        waves, self._waves = self._waves, []
        for wave, pvs in waves:
            arrived = wave.take()
            cut = wave.finish()  # the pending puts are cancelled here
            for i, pv in enumerate(pvs):
                if i in arrived:
                    self._journal.outcome(pv.name, pv.attempts, *classify(arrived[i], self.settings.timeout, False))
                    if arrived[i] is None and pv.validate is None:
                        self._finish(pv, SetResult(pv.name, pv.value, SET, pv.attempts,
                                                   elapsed=time.monotonic() - pv.start))
                        continue
                    if arrived[i] is None:
                        self._journal.validation(pv.name, error=_cancel.SetCancelled(
                            "the set was interrupted before its validation began"))
                    why = ("its validation never began" if arrived[i] is None else
                           f"attempt {pv.attempts + 1} not sent")
                elif i in cut:
                    self._journal.outcome(pv.name, pv.attempts, "failed",
                                          "the set was interrupted before the put's reply")
                    why = f"attempt {pv.attempts + 1} not sent (attempt {pv.attempts} had no reply yet)"
                else:
                    continue
                self._fail(pv, PutError(pv.name, pv.value, f"interrupted: {why}", pv.attempts))
        for pv, wait in list(self._waits.items()):
            error = _cancel.SetCancelled(f"the set was interrupted while {wait.doing}")
            self._journal.validation(pv.name, error=error, trace=wait.trace)
            self._fail(pv, ValidationError(pv.name, pv.value, error))
        for _, _, pv in self._retries:
            self._fail(pv, PutError(pv.name, pv.value, f"interrupted: attempt {pv.attempts + 1} not sent",
                                    pv.attempts))
        self._retries.clear()

    def _end(self) -> None:
        """End whatever is still in flight (the call was interrupted, or a bug escaped)."""
        waves, self._waves = self._waves, []
        for wave, _ in waves:
            wave.finish()
        waits, self._waits = self._waits, {}
        for wait in waits.values():
            wait.close()
        self._queue.drop_pending()

    def _next_deadline(self) -> float:
        deadlines = [wave.deadline for wave, _ in self._waves]
        if self._retries:
            deadlines.append(self._retries[0][0])
        deadlines.extend(wait.limit for wait in self._waits.values())
        deadlines.extend(pv.deadline for pv in (*self._waits, *self._threads, *self._queued)
                         if pv.deadline is not None)
        return min(deadlines, default=time.monotonic() + 60.0)

    # ---- one turn of the loop ------------------------------------------------------------------

    def _step(self, now: float) -> None:
        closed = is_closed(self.context)
        cancelled = self._cancel is not None and self._cancel.cancelled
        for wave, pvs in list(self._waves):
            for i, outcome in wave.take().items():
                self._guarded(pvs[i], self._put_done, outcome)
            if wave.done.is_set() or now >= wave.deadline or closed:
                self._waves.remove((wave, pvs))
                for i, outcome in wave.finish().items():
                    self._guarded(pvs[i], self._put_done, outcome)
        due: list[_PV] = []
        while self._retries and (closed or cancelled or self._retries[0][0] <= now):
            due.append(heapq.heappop(self._retries)[2])
        for pv in due:
            if closed:
                self._fail(pv, PutError(pv.name, pv.value, str(closed_error(f"putting {pv.name}")), pv.attempts))
            elif cancelled:
                self._fail(pv, PutError(pv.name, pv.value, f"interrupted: attempt {pv.attempts + 1} not sent",
                                        pv.attempts))
        if due and not (closed or cancelled):
            self._send(due)
        for pv, wait in list(self._waits.items()):
            if closed or cancelled or pv in self._changed or now >= wait.limit or \
                    (pv.deadline is not None and now >= pv.deadline):
                self._guarded(pv, self._judge, wait, now)
        self._changed.clear()
        for pv, ticket in list(self._threads.items()):
            if pv.deadline is not None and now >= pv.deadline and self._time_limit.abandon(ticket, self._limit):
                del self._threads[pv]
                self._validated(pv, "error", ValidationTimeout(
                    f"validation function still running after {self._limit:g} s (validation_timeout); "
                    "left to finish on its own"), None)
        while self._queued:
            pv = self._queued[0]
            if pv.deadline is not None and now >= pv.deadline:
                self._queued.popleft()
                self._validated(pv, "error", self._time_limit.full(self._limit), None)
            elif self._start_thread(pv):
                self._queued.popleft()
            else:
                break

    def _guarded(self, pv: _PV, step: Callable[..., None], *args: Any) -> None:
        """Run one step of a PV; an exception nothing expected is that PV's failure."""
        try:
            step(pv, *args)
        except Exception as exc:  # noqa: BLE001 - a bug or p4p surprise: this PV's outcome
            if pv.result is None:
                pv.result = unexpected(pv.name, pv.value, exc)
                self._left -= 1

    # ---- puts ----------------------------------------------------------------------------------

    def _send(self, pvs: list[_PV]) -> None:
        """Send the next attempt of each PV, as one wave (each put line journaled first)."""
        sending: list[_PV] = []
        for pv in pvs:
            pv.attempts += 1
            try:
                self._journal.put(pv.name, pv.value, pv.attempts)  # before sending: a kill cannot hide it
            except JournalError as exc:
                self._finish(pv, not_journaled(pv.name, pv.value, exc, pv.attempts - 1, pv.start))
                continue
            sending.append(pv)
        if not sending:
            return
        if _log.isEnabledFor(logging.DEBUG):  # show() of every value only when it is logged
            for pv in sending:
                _log.debug("put %s = %s (attempt %d of %d)", pv.name, show(pv.value), pv.attempts,
                           self.settings.put_attempts)
        names = [pv.name for pv in sending]
        # a PV with a validation wakes the loop as soon as its put is done; the others with the last
        wake_on = [i for i, pv in enumerate(sending) if pv.validate is not None]
        try:
            wave = put_wave(self.context, names, [pv.value for pv in sending], self.settings.timeout,
                            self._monitors.infos(names), self._vet, self._queue.wake, wake_on)
        except Exception as exc:  # noqa: BLE001 - unexpected: every PV's put failed with it
            for pv in sending:
                self._guarded(pv, self._put_done, exc)
            return
        self._waves.append((wave, sending))

    def _put_done(self, pv: _PV, outcome: Any) -> None:
        """One attempt's outcome: done (validate), failed, or timed out (retry, if attempts are left)."""
        timeout = self.settings.timeout
        closed = outcome is not None and is_closed(self.context)
        self._journal.outcome(pv.name, pv.attempts, *classify(outcome, timeout, closed))
        if outcome is None:
            self._validate(pv)
        elif closed:  # cut off, not refused: not retried, not the machine
            cut = outcome if isinstance(outcome, ContextClosedError) else closed_error(f"putting {pv.name}")
            self._fail(pv, PutError(pv.name, pv.value, str(cut), pv.attempts))
        elif not isinstance(outcome, TimeoutError):
            self._fail(pv, put_error(pv.name, pv.value, outcome, pv.attempts))
        elif pv.attempts >= self.settings.put_attempts:
            self._fail(pv, PutTimeoutError(pv.name, pv.value, pv.attempts, timeout))
        else:
            _log.warning("put %s = %s timed out after %g s (attempt %d of %d); retrying in %g s",
                         pv.name, show(pv.value), timeout, pv.attempts, self.settings.put_attempts,
                         self.settings.retry_delay)
            heapq.heappush(self._retries, (time.monotonic() + self.settings.retry_delay, id(pv), pv))

    # ---- validations ---------------------------------------------------------------------------

    @property
    def _limit(self) -> float:
        return self.settings.validation_timeout or 0.0

    def _validate(self, pv: _PV) -> None:
        """The put is done: validate the PV, or it is set."""
        if pv.validate is None:
            self._finish(pv, SetResult(pv.name, pv.value, SET, pv.attempts, elapsed=time.monotonic() - pv.start))
            return
        limit = self.settings.validation_timeout
        pv.deadline = None if limit is None else time.monotonic() + limit
        kwargs = {"set_pv": pv.name, "set_value": pv.value, "context": self.context, "timeout": self.settings.timeout}
        wait = readback_wait_of(pv.validate)
        if wait is not None:
            pv.traces = TraceList()
            pv.wait = ReadbackWait(pv.name, pv.value, context=self.context, timeout=self.settings.timeout,
                                   traces=pv.traces, changed=lambda _w: self._changed.add(pv), **wait)
            try:
                pv.wait.subscribe(self._queue)
            except Exception as exc:  # noqa: BLE001 - closed, or the PV cannot be monitored
                self._validated(pv, "error", exc, pv.traces.last)
                return
            self._waits[pv] = pv.wait
            self._changed.add(pv)  # judged on the next turn, even if no update ever comes
        elif self._inline_now:
            self._validated(pv, *self._call(pv.validate, kwargs))
        else:
            refusal = self._time_limit.refusal(self._limit) if limit is not None else None
            if refusal is not None:
                self._validated(pv, "error", refusal, None)
            elif not self._start_thread(pv):
                self._queued.append(pv)

    def _call(self, fn: ValidationFunction, kwargs: dict[str, Any]) -> Outcome:
        with recording_traces() as traces:
            try:
                return "result", fn(**kwargs), traces.last
            except (Exception, SystemExit) as exc:  # a validation function may not end the program
                return "error", exc, traces.last

    def _start_thread(self, pv: _PV) -> bool:
        assert pv.validate is not None
        kwargs = {"set_pv": pv.name, "set_value": pv.value, "context": self.context, "timeout": self.settings.timeout}
        ticket = self._time_limit.start(pv.name, pv.validate, kwargs,
                                        lambda outcome: self._queue.push(partial(self._thread_done, pv, outcome)))
        if ticket is None:
            return False
        self._threads[pv] = ticket
        return True

    def _thread_done(self, pv: _PV, outcome: Outcome) -> None:
        if self._threads.pop(pv, None) is None:
            return  # abandoned at its limit: its PV has failed already
        kind, what, trace = outcome
        if kind == "error" and not isinstance(what, (Exception, SystemExit)):
            raise what  # KeyboardInterrupt and the like end the call, as in the calling thread
        self._guarded(pv, self._validated, kind, what, trace)

    def _judge(self, pv: _PV, wait: ReadbackWait, now: float) -> None:
        if pv.deadline is not None and now >= pv.deadline:
            del self._waits[pv]
            wait.close()
            self._validated(pv, "error", ValidationTimeout(
                f"validation function still running after {self._limit:g} s (validation_timeout)"), wait.trace)
            return
        try:
            settled, readback = wait.judge(now, self._cancel)
        except (Exception, SystemExit) as exc:
            del self._waits[pv]
            wait.close()
            self._validated(pv, "error", exc, wait.trace)
            return
        if settled:
            del self._waits[pv]
            wait.close()
            self._validated(pv, "result", readback, wait.trace)

    def _validated(self, pv: _PV, kind: str, what: Any, trace: Any) -> None:
        if kind == "error":
            self._journal.validation(pv.name, error=what, trace=trace)
            self._fail(pv, ValidationError(pv.name, pv.value, what))
        else:
            self._journal.validation(pv.name, result=what, trace=trace)
            self._finish(pv, SetResult(pv.name, pv.value, SET, pv.attempts, what,
                                       elapsed=time.monotonic() - pv.start))

    # ---- outcomes ------------------------------------------------------------------------------

    def _fail(self, pv: _PV, error: EpicsPvaError) -> None:
        _log.warning("%s", error)
        self._finish(pv, SetResult(pv.name, pv.value, FAILED, pv.attempts, error=error,
                                   elapsed=time.monotonic() - pv.start))

    def _finish(self, pv: _PV, result: SetResult) -> None:
        if pv.result is None:
            pv.result = result
            self._left -= 1


def _result(pv: _PV) -> SetResult:
    if pv.result is not None:
        return pv.result
    return unexpected(pv.name, pv.value, RuntimeError("the set ended before this PV's outcome"))
