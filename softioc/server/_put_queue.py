"""Where a soft IOC runs its setpoints' put handlers: in place when the machine is free, else in order."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

from p4p.util import ThreadedWorkQueue

__all__ = ["PutQueue"]

_log = logging.getLogger(__name__)


class PutQueue:
    """Where the setpoints' put handlers run: at once on the server's own thread when the
    machine is free, else in arrival order on one of the handler workers.

    Handling a put where it arrives saves two thread hand-offs per put (to a worker, and back
    for the reply), most of a put's cost; a real IOC processes a put in place too. The
    machine's lock is only tried, never waited for here: a thread holding it may be waiting
    on the server's thread (closing a PV). While earlier puts wait, later ones queue behind
    them, and one worker at a time runs the queue, so puts are handled in the order they came.
    A thread holding the guard never waits for the server's thread, nor frees a server
    operation (p4p's ServerOperation waits for that thread when freed); the server's thread
    never waits for the guard while holding the machine's lock.
    """

    def __init__(self, lock: threading.RLock, workers: ThreadedWorkQueue) -> None:
        self._lock, self._workers = lock, workers
        self._guard = threading.Lock()
        self._pending: deque[Any] = deque()  # work waiting for the machine, oldest first
        self._draining = False  # a worker is running the pending work
        self._running = 0  # 1 while that worker runs one of it

    def push(self, work: Any) -> None:
        """Run `work` now if the machine's lock is free and nothing waits; queue it otherwise."""
        with self._guard:  # never taken while holding the machine's lock (see _drain)
            idle = not self._pending and not self._draining
        if idle and self._lock.acquire(blocking=False):
            try:
                work()
                return
            finally:
                self._lock.release()
        with self._guard:
            self._pending.append(work)
            if self._draining:
                return
            self._draining = True
        self._workers.push(self._drain)

    push_wait = push

    @property
    def waiting(self) -> int:
        """How many queued handlers have not finished yet (the one running included)."""
        with self._guard:
            return len(self._pending) + self._running

    def _drain(self) -> None:
        while True:
            with self._guard:
                if not self._pending:
                    self._draining = False
                    return
                work = self._pending.popleft()
                self._running = 1
            try:
                work()  # p4p's wrapper answers the put with the error of anything it raises
            except Exception:  # noqa: BLE001 - one bad handler must not strand the ones behind it
                _log.exception("soft IOC put handler failed")
            finally:
                # freeing the handler frees its server operation, which waits for the server's
                # thread: never under the guard, which that thread may be waiting for
                work = None
                with self._guard:
                    self._running = 0
