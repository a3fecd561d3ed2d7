"""Who is inside pvxs on behalf of a client context, its close, and how operations end.

pvxs (1.5.3) runs each client context's network in one event-loop thread. Cancelling or
releasing an operation or a subscription from another thread queues a call to that loop and
waits for it, with no time limit; closing the context stops the loop, and a call queued just
before it stopped is never run: its caller waits for ever (src/evhelper.cpp, ``evbase::_call``
against ``join``). p4p 4.3.0 also swaps a context's handle without the GIL while another
thread may be reading it to start an operation. So each ClientContext has a `_Gate`: every
call into pvxs on its behalf enters it, close() lets no new one in, waits for those inside to
leave, then closes. Ending an operation after the close is safe (the loop has stopped: the
call returns at once), so operations are ended as usual afterwards.

Releasing an operation is two synchronous round trips to the loop thread (p4p's close()
cancels, then drops its reference): most of a batch's time. Completed operations are handed
to releaser threads (`end_operations(..., wait=False)`), so a call returns as soon as its
outcomes are in.
"""

from __future__ import annotations

import logging
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .._fork import at_fork

__all__ = ["CLOSE_WAIT", "dropped", "end_operations", "gate_of", "kept", "live_operations", "wait_released"]

_log = logging.getLogger(__name__)

CLOSE_WAIT = 10.0
"""Seconds close() waits for threads inside pvxs on the context's behalf (each call there is short)."""

# ---- the gate: who is inside pvxs for a context, and its close -----------------------------------

_OPEN, _CLOSING, _CLOSED = 0, 1, 2


class _Gate:
    """Counts the threads calling into pvxs for one context; closes it only when none is.

    Starting operations is allowed while the context is open; ending them (cancel, release)
    is allowed always, and waits while the context is being closed (a bounded time: close()
    waits at most CLOSE_WAIT s for the threads inside, then closes or gives up). `ledger`
    holds every subscription and operation (or list of them) until its owner ended it: none
    is freed by the garbage collector while the context closes, and close() ends each one
    left, so that none keeps pvxs's side of the context alive past it (a fork needs that:
    see _Releaser).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())  # RLock: a finaliser may run inside
        self._inside = 0
        self.state = _OPEN
        self._closer: int | None = None
        self.ledger: dict[int, Any] = {}
        _gates.add(self)

    def operations(self) -> int:
        """Operations started in batches and not yet ended or handed to the releasers."""
        with self._cond:
            return sum(sum(op is not None for op in item) for item in self.ledger.values()
                       if isinstance(item, list))

    @property
    def closed(self) -> bool:
        """True from the moment close() begins."""
        return self.state != _OPEN

    def enter(self) -> bool:
        """Enter to start operations: False (not entered) once the context is closing or closed."""
        with self._cond:
            if self.state != _OPEN:
                return False
            self._inside += 1
            return True

    def enter_to_end(self) -> bool:
        """Enter to end operations; True if entered (then call leave()). Waits while the context
        closes; False after that (ending an operation of a closed context is safe: its loop
        has stopped) and in the closing thread itself."""
        with self._cond:
            if self.state == _OPEN:
                self._inside += 1
                return True
            if self._closer == threading.get_ident():
                return False
            while self.state == _CLOSING:
                self._cond.wait()
            return False

    def leave(self) -> None:
        with self._cond:
            self._inside -= 1
            if not self._inside and self.state == _CLOSING:
                self._cond.notify_all()

    def keep(self, item: Any) -> None:
        with self._cond:
            self.ledger[id(item)] = item

    def drop(self, item: Any) -> None:
        with self._cond:
            self.ledger.pop(id(item), None)

    def end(self, raw: Any) -> None:
        """Close one operation or subscription inside the gate (waiting while the context
        closes: see enter_to_end), then take it out of the ledger."""
        entered = self.enter_to_end()
        try:
            raw.close()
        finally:
            if entered:
                self.leave()
        self.drop(raw)

    def close(self, close_context: Callable[[], None]) -> None:
        """Close the context once no thread is inside (waiting at most CLOSE_WAIT s)."""
        with self._cond:
            if self.state != _OPEN:  # closed, or another thread is closing it: wait for that
                if self._closer != threading.get_ident():
                    self._cond.wait_for(lambda: self.state == _CLOSED, CLOSE_WAIT * 2)
                return
            self.state, self._closer = _CLOSING, threading.get_ident()
            idle = self._cond.wait_for(lambda: not self._inside, CLOSE_WAIT)
        try:
            if idle:
                close_context()
            else:  # should never happen: each call inside is short; a leak beats a hang
                _log.error("a p4p client context was left open: %d thread(s) still inside pvxs "
                           "after %g s", self._inside, CLOSE_WAIT)
                _abandoned.append(close_context)
        finally:
            with self._cond:
                self.state, self._closer = _CLOSED, None
                ledger, self.ledger = self.ledger, {}
                self._cond.notify_all()
        if idle:  # the loop has stopped: each operation or subscription left ends at once
            for item in ledger.values():
                try:
                    _close_each(item if isinstance(item, list) else [item])
                except Exception:  # noqa: BLE001 - the others must still end
                    _log.exception("ending an operation of a closed p4p context failed")


_abandoned: list[Any] = []  # contexts that could not be closed safely: never freed
_gates: weakref.WeakSet[_Gate] = weakref.WeakSet()


def live_operations() -> int:
    """Operations started and not yet ended, in this process (batches in flight, and those
    waiting for the releaser threads): for leak checks."""
    return sum(gate.operations() for gate in list(_gates)) + _releaser.waiting


class _NoGate:
    """The gate of a context made elsewhere (a plain p4p Context): it counts nothing."""

    closed = False

    @staticmethod
    def enter() -> bool:
        return True

    @staticmethod
    def enter_to_end() -> bool:
        return False

    @staticmethod
    def leave() -> None:
        pass

    @staticmethod
    def keep(item: Any) -> None:
        pass

    @staticmethod
    def drop(item: Any) -> None:
        pass

    @staticmethod
    def end(raw: Any) -> None:
        raw.close()


def gate_of(context: Any) -> _Gate | _NoGate:
    gate = getattr(context, "gate", None)
    return gate if isinstance(gate, _Gate) else _NoGate()


def end_operations(context: Any, ops: Sequence[Any | None], wait: bool = True) -> None:
    """End (cancel if pending, and release) `ops` of `context` (None entries are skipped).

    wait=False hands them to the releaser threads and returns at once (ops that completed:
    nothing is left to cancel). A context made elsewhere has its ops ended here and now.
    """
    ops = [op for op in ops if op is not None]
    if not ops:
        return
    gate = gate_of(context)
    if not isinstance(gate, _Gate):
        _close_each(ops)
        return
    if not wait and _releaser.take(gate, ops):
        return
    _end_through(gate, ops)


def kept(context: Any, ops: list[Any]) -> None:
    """Put a list of started operations in the context's ledger, until `dropped`: close()
    ends them if their owner has not by then."""
    gate_of(context).keep(ops)


def dropped(context: Any, ops: list[Any]) -> None:
    """Take a list out of the ledger (its operations are ended, or handed to the releasers)."""
    gate_of(context).drop(ops)


def _end_through(gate: _Gate, ops: list[Any]) -> None:
    """Close `ops` inside the gate, stepping out whenever a close of the context begins."""
    k = 0
    while k < len(ops):
        entered = gate.enter_to_end()
        try:
            while k < len(ops):
                ops[k].close()
                k += 1
                if entered and gate.state == _CLOSING:
                    break  # let the close go first; the rest end after it, at once
        finally:
            if entered:
                gate.leave()


def _close_each(ops: list[Any]) -> None:
    for op in ops:
        if op is not None:  # a batch's list keeps None where an operation was not started
            op.close()


class _Releaser:
    """Up to RELEASERS daemon threads ending completed operations handed to them: started when
    work comes, ended once idle for LINGER s (so a forked child, where the parent's threads do
    not exist, starts its own). At most BACKLOG operations wait for them: beyond that a caller
    ends its own.

    Just before a fork every operation handed over is ended (the contexts are closed by then,
    so each ends at once): pvxs keeps one UDP manager per process while any of its contexts
    lives, and an operation not yet released keeps its context alive; a child forked then
    would reuse the parent's manager, whose thread it does not have, and hang.
    """

    RELEASERS = 2
    BACKLOG = 20_000
    LINGER = 0.1
    FORK_WAIT = 10.0

    def __init__(self) -> None:
        self._reset()
        at_fork(before=self._before_fork, after_in_parent=self._after_fork_in_parent,
                after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[tuple[_Gate, list[Any]]] = queue.SimpleQueue()
        self._waiting = 0
        self._threads = 0
        self._idle = threading.Condition(self._lock)
        self._forking = False

    def take(self, gate: _Gate, ops: list[Any]) -> bool:
        """Queue `ops` to be ended; False (not taken) when the backlog is full or a fork is near."""
        with self._lock:
            if self._forking or self._waiting + len(ops) > self.BACKLOG:
                return False
            self._waiting += len(ops)
            self._work.put((gate, ops))
            if self._threads >= self.RELEASERS:
                return True
            self._threads += 1
            name = f"pva-release-{self._threads}"
        try:
            threading.Thread(target=self._run, daemon=True, name=name).start()
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise
        return True

    def _run(self) -> None:
        while True:
            try:
                item = self._work.get(timeout=self.LINGER)
            except queue.Empty:
                with self._lock:
                    if self._work.empty():  # idle: this thread ends (take() starts another)
                        self._threads -= 1
                        self._idle.notify_all()
                        return
                continue
            self._release(*item)

    def _release(self, gate: _Gate, ops: list[Any]) -> None:
        share = len(ops)
        try:
            _end_through(gate, ops)
        except Exception:  # noqa: BLE001 - a releaser must outlive a bad release
            _log.exception("releasing p4p operations failed")
        finally:
            del ops, gate
            with self._lock:
                self._waiting -= share
                if not self._waiting:
                    self._idle.notify_all()

    def _before_fork(self) -> None:
        with self._lock:
            self._forking = True
        while True:  # what no releaser has taken yet: ended here
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            self._release(*item)
        if not self.wait_idle(self.FORK_WAIT):
            _log.error("p4p operations still being released at a fork: the child may hang")

    def _after_fork_in_parent(self) -> None:
        with self._lock:
            self._forking = False

    @property
    def waiting(self) -> int:
        """Operations handed over and not yet ended."""
        return self._waiting

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every operation handed over is ended (a benchmark's quiet point)."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._waiting, timeout)


_releaser = _Releaser()


def wait_released(timeout: float = 10.0) -> bool:
    """Wait at most `timeout` s until the releaser threads have ended every operation handed to them."""
    return _releaser.wait_idle(timeout)
