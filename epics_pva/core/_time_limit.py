"""Validation functions in threads: at most `limit` running at once, strays bounded too.

A validation function is user code: it runs in a thread of its own, a worker of this
TimeLimit (`TimeLimit.start`) when one of `limit` slots is free; the set path waits for its
outcome without a thread of its own. Workers are reused: an idle one waits IDLE s for the next
validation, then ends (close() ends them at once). A Python thread cannot be stopped: one that overruns its time
limit is abandoned (`abandon`): it becomes a stray, counted and logged, and gives its slot
back at once, so a hung validation never holds a slot. Strays are bounded as well: while
`limit` of them still run, a validation that needs a thread is refused at once.

A set_values called from inside a validation function on the same Interface runs its own
validation functions in that thread (`inside`): it needs no slot, so it cannot wait for the
slot its caller holds.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

from .._fork import at_fork
from ..errors import ValidationTimeout
from ._readback import recording_traces

__all__ = ["Ticket", "TimeLimit", "ValidationTimeout"]

_log = logging.getLogger(__name__)


_live: weakref.WeakSet[TimeLimit] = weakref.WeakSet()
_INSIDE: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar("epics_pva_validating",
                                                                         default=frozenset())


def _renew_in_child() -> None:
    # the parent's threads do not exist in a forked child: their slots are free again there
    for limiter in list(_live):
        limiter._reset()


at_fork(after_in_child=_renew_in_child)

Outcome = tuple[str, Any, Any]
"""("result", what it returned, its readback trace) or ("error", what it raised, its trace)."""


class Ticket:
    """One validation function started in a thread: its name, when it started, whether it ended."""

    __slots__ = ("ended", "name", "started", "stray")

    def __init__(self, name: str) -> None:
        self.name, self.started = name, time.monotonic()
        self.ended = self.stray = False


class _Retire(Exception):
    """Ends a worker whose validation overran its limit."""


class TimeLimit:
    """Runs validation functions each in a thread, at most `limit` at once (strays apart)."""

    IDLE = 30.0  # s an idle worker waits for another validation before it ends

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._running = 0  # validations in a slot
        self._idle = 0  # workers waiting for a validation
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._wakers: set[Callable[[], None]] = set()
        self.strays = 0  # validations that overran their limit, in this process's life
        self.running_strays = 0  # of those, still running now

    def inside(self) -> bool:
        """True in a thread running one of this TimeLimit's validation functions."""
        return id(self) in _INSIDE.get()

    def refusal(self, timeout: float) -> ValidationTimeout | None:
        """Why a validation needing a thread is refused at once (too many strays), or None."""
        with self._lock:
            strays = self.running_strays
        if strays < self.limit:
            return None
        return ValidationTimeout(
            f"no validation thread free within {timeout:g} s (validation_timeout): {strays} validation "
            f"function(s) that overran their limit still running, as many as max_workers allows")

    def full(self, timeout: float) -> ValidationTimeout:
        """The error of a validation that found no slot free within its own `timeout` s."""
        return ValidationTimeout(
            f"no validation thread free within {timeout:g} s (validation_timeout): "
            f"{self.limit} already running, {self.running_strays} of them overran their limit")

    def start(self, name: str, fn: Callable[..., Any], kwargs: dict[str, Any],
              done: Callable[[Outcome], None]) -> Ticket | None:
        """Start fn(**kwargs) in a worker thread if a slot is free (None if not: see notify_free).

        done(outcome) is called from that thread when it ends, with its readback trace; the
        caller's context variables go along (a cancelled set cancels its waits).
        """
        ticket = Ticket(name)
        context = contextvars.copy_context()
        job = partial(context.run, self._job, ticket, fn, kwargs, done)
        with self._lock:
            if self._running >= self.limit:
                return None
            self._running += 1
            if self._idle:
                self._idle -= 1
                self._jobs.put(job)
                return ticket
        try:
            threading.Thread(target=self._work, args=(job,), name=f"epics_pva-validate-{name}",
                             daemon=True).start()
        except BaseException:
            self._ended(ticket, None)
            raise
        return ticket

    def _job(self, ticket: Ticket, fn: Callable[..., Any], kwargs: dict[str, Any],
             done: Callable[[Outcome], None]) -> None:
        threading.current_thread().name = f"epics_pva-validate-{ticket.name}"
        _INSIDE.set(_INSIDE.get() | {id(self)})
        outcome: Outcome
        with recording_traces() as traces:
            try:
                outcome = ("result", fn(**kwargs), None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                outcome = ("error", exc, None)
        outcome = (outcome[0], outcome[1], traces.last)
        self._ended(ticket, outcome, worker_idle=True)
        done(outcome)
        if ticket.stray:
            raise _Retire  # its slot was given back when it overran: the worker ends

    def _work(self, job: Callable[[], None] | None) -> None:
        """A worker: runs validations until idle for IDLE s, close(), or one of them overran."""
        while job is not None:
            try:
                job()
            except _Retire:
                return
            except BaseException:  # noqa: BLE001 - a worker outlives a bad job
                _log.exception("a validation worker failed")
            threading.current_thread().name = "epics_pva-validator"
            job = self._next_job()  # counted idle when its validation ended (see _ended)

    def _next_job(self) -> Callable[[], None] | None:
        while True:
            try:
                return self._jobs.get(timeout=self.IDLE)
            except queue.Empty:
                with self._lock:
                    if self._idle and self._jobs.empty():  # nobody claimed this worker: it ends
                        self._idle -= 1
                        return None

    def close(self) -> None:
        """End the idle workers now (the running ones end after their validation)."""
        with self._lock:
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._jobs.put(None)

    def _ended(self, ticket: Ticket, outcome: Outcome | None, worker_idle: bool = False) -> None:
        """`ticket`'s validation ended; `worker_idle`: its worker waits for the next one.

        The worker is counted idle in the same step that frees the slot: a validation started
        the moment after takes this worker, not a new thread (the pool stays at `limit`).
        """
        with self._lock:
            ticket.ended = True
            if ticket.stray:
                self.running_strays -= 1
            else:
                self._running -= 1
                if worker_idle:
                    self._idle += 1
            wakers = list(self._wakers)
        for wake in wakers:
            wake()
        if ticket.stray and outcome is not None:
            _log.warning("validation of %s ended %.3f s after it was abandoned (%s)", ticket.name,
                         time.monotonic() - ticket.started,
                         f"raised {outcome[1]!r}" if outcome[0] == "error" else "returned")

    def abandon(self, ticket: Ticket, timeout: float) -> bool:
        """Leave a validation that overran its `timeout` to finish on its own; False if it had ended."""
        with self._lock:
            if ticket.ended or ticket.stray:
                return False
            ticket.stray = True
            self._running -= 1
            self.strays += 1
            self.running_strays += 1
            strays = self.running_strays
            wakers = list(self._wakers)
        for wake in wakers:
            wake()
        _log.warning("validation of %s still running after %g s (validation_timeout): left to finish on "
                     "its own (%d stray(s) running)", ticket.name, timeout, strays)
        return True

    def notify_free(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` whenever a slot may have come free; returns the function that stops it."""
        with self._lock:
            self._wakers.add(wake)

        def stop() -> None:
            with self._lock:
                self._wakers.discard(wake)

        return stop
