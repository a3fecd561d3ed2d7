"""Monitors on p4p's raw client that lose no update and are safe to close at any moment.

p4p 4.3.0's thread-level subscription drops a first update that arrives before
``Context.monitor()`` returns ("Lost Subscription update"), and the subscription then stalls
(about 1 in 3,000 under load). And closing a p4p subscription while another thread is in its
``pop()`` deadlocks: pop() holds its own reference to the subscription, and if close()
released it meanwhile, the end of pop() releases it, with the GIL held, by a synchronous
call to pvxs's event loop, which is itself waiting for the GIL to deliver an update.

`Monitor` is built on ``p4p.client.raw.Context.monitor``: the event handler only queues a
drain, the drain pops under the monitor's lock, and close() takes the same lock.
"""

from __future__ import annotations

import logging
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

from p4p.client.raw import Cancelled, Disconnected, Finished
from p4p.client.raw import Context as RawContext

from .._fork import at_fork
from ._gate import gate_of
from ._p4p import default_nt, raw_value

__all__ = ["CallerQueue", "Monitor", "live_monitors"]

_log = logging.getLogger(__name__)


class CallerQueue:
    """A work queue drained by the thread that waits, so updates are handled where awaited.

    p4p 4.3.0's default queue hands callbacks to 4 process-wide worker threads, started on
    first use; in a child forked after the parent started them they are dead, and the
    child's monitor callbacks never run. Draining in the waiting thread works in any
    process and needs no thread.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def push(self, work: Callable[[], None]) -> None:
        """Queue one piece of work (p4p calls this from its own threads)."""
        self._queue.put(work)

    push_wait = push

    def run_next(self, timeout: float) -> None:
        """Run the next queued update, waiting at most `timeout` seconds for one."""
        try:
            work = self._queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return
        work()

    def run_pending(self) -> None:
        """Run every piece of work queued now, without waiting."""
        while True:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                return
            work()

    def wake(self) -> None:
        """Make a waiting run_next return at once (it runs a no-op)."""
        self._queue.put(_nothing)

    def drop_pending(self) -> None:
        """Forget every queued update (the subscription is closed)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


def _nothing() -> None:
    pass


class _Dispatcher:
    """One daemon thread running the updates of Monitors given no queue of their own; started
    on first use, and again in a forked child (where the parent's thread does not exist)."""

    def __init__(self) -> None:
        self._reset()
        at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._queue: CallerQueue | None = None

    def queue(self) -> CallerQueue:
        with self._lock:
            if self._queue is None:
                self._queue = CallerQueue()
                threading.Thread(target=self._run, args=(self._queue,), daemon=True,
                                 name="pva-monitor-updates").start()
            return self._queue

    @staticmethod
    def _run(work: CallerQueue) -> None:
        while True:
            try:
                work.run_next(3600.0)
            except Exception:  # noqa: BLE001 - one bad update must not stop every monitor
                _log.exception("a PV monitor update failed")


_dispatcher = _Dispatcher()
_monitors: weakref.WeakSet[Monitor] = weakref.WeakSet()


def live_monitors() -> list[Monitor]:
    """The Monitors not yet closed in this process (for leak checks)."""
    return [m for m in list(_monitors) if m.open]


class _Signal:
    """What p4p's event loop calls when a subscription has updates (see Monitor._signal).

    Holds the Monitor weakly, so a Monitor dropped without close() is freed (and closed)."""

    __slots__ = ("_monitor",)

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = weakref.ref(monitor)

    def __call__(self) -> None:
        monitor = self._monitor()
        if monitor is not None:
            monitor._signal()


class Monitor:
    """A subscription to one PV on p4p's raw client; each update is handed to `on_update` in
    the thread that runs `work_queue` (an object with push(callable), like CallerQueue).

    `on_update` gets each value, a raw p4p Value (or, with `unwrap`, what p4p's thread
    Context gives by default: ntfloat, ntenum...), and, with `notify_disconnect`, a
    Disconnected first (as p4p's own monitor gives it) and each disconnect or remote error
    as an exception. Updates after close() are not delivered. Starting it on a closed
    context raises what p4p raises (RuntimeError).

    With `on_signal`, updates are not handed over by themselves: pvxs keeps them (the last
    few, older ones merged), `pending` says some are there, on_signal(monitor) is called on
    pvxs's thread (it must be quick) when one arrives, and `drain()` hands them over in the
    calling thread. A monitor whose owner needs its updates only now and then so costs
    nothing while they arrive (the Interface's metadata monitors during a set).
    """

    DRAIN = 16  # updates handed over per turn of the queue, so one busy PV cannot hold it

    def __init__(self, context: Any, name: str, on_update: Callable[[Any], None], work_queue: Any = None,
                 request: Any = None, notify_disconnect: bool = True, unwrap: bool = False,
                 on_signal: Callable[[Monitor], None] | None = None) -> None:
        self.name = name
        self.context = context
        self.pending = False
        self._on_signal = on_signal
        self._on_update = on_update
        self._notify_disconnect = notify_disconnect
        self._unwrap = unwrap
        self._queue = work_queue if work_queue is not None else _dispatcher.queue()
        self._gate = gate_of(context)
        self._lock = threading.Lock()
        self._raw: Any = None
        self._closed = False
        self._done = False
        if notify_disconnect and on_signal is None:  # every subscription starts disconnected, as p4p's says
            self._queue.push(lambda: self._deliver([Disconnected()]))
        with self._lock:  # a drain queued before the raw subscription is stored waits for it
            if not self._gate.enter():
                self._closed = True
                raise RuntimeError("Context closed")
            try:
                self._raw = RawContext.monitor(context, getattr(context, "name_prefix", "") + name, _Signal(self),
                                               request)
            except BaseException:
                self._closed = True
                raise
            finally:
                self._gate.leave()
            self._gate.keep(self._raw)
        _monitors.add(self)

    @property
    def open(self) -> bool:
        return not self._closed

    def _signal(self) -> None:
        """pvxs has updates for us (called on its event loop thread, with the GIL)."""
        self.pending = True
        if self._on_signal is not None:
            self._on_signal(self)
        else:
            self._queue.push(self._drain_queued)

    def drain(self) -> None:
        """Hand every update pending now to on_update, in this thread."""
        while self._drain(again=False):
            pass

    def _drain(self, again: bool = True) -> bool:
        """Pop what is queued and hand it to on_update; True if more may be left. With `again`
        (on the work queue's thread), the rest is queued for the queue's next turn."""
        updates: list[Any] = []
        more = False
        with self._lock:
            raw = self._raw
            if raw is None:
                return False
            self.pending = False  # before popping: an update arriving after the last pop signals again
            for _ in range(self.DRAIN):
                item = raw.pop()
                if item is None:
                    break
                updates.append(item)
                if isinstance(item, Finished):
                    break
            else:
                more = True  # pvxs signals again only once a pop found the queue empty
        self._deliver(updates)
        if more and again:
            self._queue.push(self._drain_queued)
        return more

    def _drain_queued(self) -> None:
        self._drain()

    def _deliver(self, updates: list[Any]) -> None:
        for item in updates:
            if self._closed or self._done:
                return
            if isinstance(item, Exception):
                if isinstance(item, Finished):
                    self._done = True
                if isinstance(item, Cancelled) or not self._notify_disconnect:
                    continue
            else:
                item = raw_value(item)  # a context made elsewhere may have unwrapped it
                if self._unwrap:
                    item = default_nt.unwrap(item)
            self._on_update(item)

    def close(self) -> None:
        """End the subscription (safe to call again, from any thread, on a closed context)."""
        with self._lock:
            self._closed = True
            raw, self._raw = self._raw, None
            if raw is None:
                return
            self._gate.end(raw)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a finaliser must not raise
            pass
