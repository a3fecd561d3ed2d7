"""A set of monitors kept open across calls on one client context: the skeleton the metadata
cache and the fresh reads share.

One entry per PV (least recently used first), one callback thread per set, started on first
use, that runs the monitors' updates. A new context closes the old one's monitors; `close()`
ends every monitor and the thread; at exit every set is closed, and in a forked child every
set starts empty (the parent's thread and subscriptions do not exist there).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from p4p.client.thread import Context

from .._fork import at_fork
from ._entries import MonitorEntry, close_entry, evictions
from ._monitor import CallerQueue

__all__ = ["MonitorSet", "live_sets"]

_log = logging.getLogger(__name__)

E = TypeVar("E", bound=MonitorEntry)

_sets: weakref.WeakSet[MonitorSet[Any]] = weakref.WeakSet()


class MonitorSet(Generic[E]):
    """Monitors of one context, an entry `E` per PV; at most `size` PVs, none unused for `idle` s.

    Subclasses subscribe their entries, and say what else they forget with a monitor
    (`_forget`, `_forget_all`) and how the callback thread waits (`_step`).
    """

    THREAD_NAME = "pva-monitors"

    def __init__(self, size: int, idle: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size, self.idle, self._clock = size, idle, clock
        self._reset()
        _sets.add(self)

    def _reset(self) -> None:
        """Start empty: no monitor, no thread (also in a forked child)."""
        self._lock = threading.RLock()  # an update run under it (a drain) takes it again
        self._changed = threading.Condition(self._lock)
        self._entries: OrderedDict[str, E] = OrderedDict()  # least recently used first
        self._context: Context | None = None
        self._queue: CallerQueue | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._entries)

    def _forget(self, entry: E) -> None:
        """What else goes with `entry`'s monitor (under the lock)."""

    def _forget_all(self) -> None:
        """What else goes with every monitor, on close or a new context (under the lock)."""

    def _step(self, queue: CallerQueue) -> None:
        """One turn of the callback thread: run the next update, if one comes."""
        queue.run_next(0.5)

    def close(self) -> None:
        """Close every subscription and end the callback thread (waits for it, at most 5 s)."""
        with self._lock:
            entries, self._entries = list(self._entries.values()), OrderedDict()
            thread, queue = self._thread, self._queue
            self._thread = self._queue = self._context = None
            self._forget_all()
            self._changed.notify_all()
        for entry in entries:
            close_entry(entry)
        if queue is not None:
            queue.wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
            if thread.is_alive():
                _log.warning("the %s thread did not end within 5 s", thread.name)
        if queue is not None:
            queue.drop_pending()
        if entries:
            _log.debug("closed %d PV monitor(s)", len(entries))

    def _run(self, queue: CallerQueue) -> None:
        while self._queue is queue:  # close(), or a new context's queue, ends it
            try:
                self._step(queue)
            except Exception:  # noqa: BLE001 - one bad update must not stop every PV's monitor
                _log.exception("a PV monitor update failed")

    def _start(self, context: Context) -> CallerQueue:
        """The queue of `context`'s subscriptions, with its thread running (under the lock)."""
        if self._context is not context:  # a new context: the old one's monitors are dead
            stale = list(self._entries.values())
            self._entries.clear()
            self._forget_all()
            for entry in stale:
                close_entry(entry)
            self._context = context
        if self._queue is None:
            queue = self._queue = CallerQueue()
            self._thread = threading.Thread(target=self._run, args=(queue,), daemon=True, name=self.THREAD_NAME)
            self._thread.start()
        return self._queue

    def _evict(self, now: float, keep: set[str]) -> None:
        """Close the monitors idle for `idle` s, then the least recently used beyond `size`;
        never those of `keep` (a call's own PVs stay, even beyond `size`). Under the lock."""
        dropped = evictions(self._entries, now, self.idle, self.size, keep)
        for pv in dropped:
            entry = self._entries.pop(pv)
            self._forget(entry)
            close_entry(entry)
        if dropped:
            _log.debug("closed the monitors of %d unused PV(s)", len(dropped))

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # forked without the at-fork hooks running
            self._reset()


def live_sets() -> list[MonitorSet[Any]]:
    """Every set of monitors of this process still alive."""
    return list(_sets)


def _close_all() -> None:
    # at exit: subscriptions left open while the interpreter finalizes can abort the process
    for monitor_set in list(_sets):
        monitor_set.close()


def _after_fork_in_child() -> None:
    for monitor_set in list(_sets):
        monitor_set._reset()


at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all)
