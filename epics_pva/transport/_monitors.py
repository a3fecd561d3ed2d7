"""What the interface knows of each PV it sets: a monitor per PV, kept fresh by the server.

A set checks its inputs against the type and control limits of each PV. Instead of a `get`
round trip before every set, each setpoint PV gets a monitor on first use; the server pushes
every change (value, limits, alarm) and every disconnect to it. The updates are taken when
they are needed: a set's check takes those of its PVs first (each PV's latest; pvxs merges
older ones); one thread per cache takes the others once updates have stopped for QUIET s
and no set runs, and at once while someone waits for one (a new PV's first value, a
disconnected one's return). So the update every put of a set causes costs nothing while the
set runs. The thread (not p4p's shared workers, dead in a forked child) and every
subscription end on close() and before a fork; subscriptions unused for `idle` seconds, or
beyond `size` PVs (least recently used first), are closed (the set of monitors they share
with the fresh reads: _monitor_set.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from p4p.client.thread import Context

from ._closing import closed_error, is_closed, watch
from ._entries import Entry, Lookup, problem_of, reshapes, state_of
from ._gate import wait_released
from ._monitor import CallerQueue, Monitor
from ._monitor_set import MonitorSet, live_sets
from ._p4p import default_nt
from ._values import PvInfo, describe, to_python

__all__ = ["Lookup", "MetadataCache", "settle"]




class MetadataCache(MonitorSet[Entry]):
    """A monitor per PV, opened on first lookup; type, limits, value and connection pushed to it.

    `size` is the most PVs monitored at once and `idle` the seconds after which an unused
    PV's monitor is closed; `clock` (seconds) is the time those are measured by.
    """

    THREAD_NAME = "pva-monitors"

    def _reset(self) -> None:
        super()._reset()
        self._waiting = 0  # threads waiting for an update: updates are taken as they arrive
        self._busy = 0  # sets running: pending updates are left for their checks
        self._dirty: set[Monitor] = set()  # monitors with updates pending
        self._last_signal = 0.0
        self._idle = threading.Condition(self._lock)

    # ---- life cycle -------------------------------------------------------------------------

    def _forget(self, entry: Entry) -> None:
        if entry.subscription is not None:
            self._dirty.discard(entry.subscription)  # its pending updates are no one's now

    def _forget_all(self) -> None:
        self._dirty.clear()
        self._idle.notify_all()

    def _step(self, queue: CallerQueue) -> None:
        """Run monitor updates as they arrive, and take the others once no update came for
        QUIET s and no set runs (see _signalled)."""
        if self._dirty and not self._busy:
            quiet = self._last_signal + self.QUIET - time.monotonic()
            if quiet <= 0:
                self._take_dirty()
                return
            queue.run_next(quiet)
        else:  # woken by the first pending update, and by the end of a set (busy())
            queue.run_next(60.0)

    def _drain(self, monitor: Monitor) -> None:
        """Take `monitor`'s pending updates under the cache's lock (on the callback thread).

        A drain pops the updates, then hands them to on_update, which takes the lock: popped
        outside it, a set holding the lock would find the monitor no longer pending yet its
        entry not updated, and check (and journal as the value before) a stale value.
        """
        with self._lock:
            monitor.drain()

    def _take_dirty(self) -> None:
        """Take the updates of the monitors signalled since (stopping if a set begins)."""
        while self._dirty and not self._busy:
            try:
                monitor = self._dirty.pop()
            except KeyError:
                return
            self._drain(monitor)
        with self._lock:
            if not self._dirty:
                self._idle.notify_all()

    # ---- monitors ---------------------------------------------------------------------------

    def _subscribe(self, context: Context, queue: CallerQueue, pv: str, entry: Entry) -> None:
        def on_update(update: Any) -> None:
            with self._lock:
                if self._entries.get(pv) is not entry:
                    return  # dropped or replaced meanwhile
                if isinstance(update, Exception):
                    entry.connected = False
                    entry.info = None  # whoever serves it next is described afresh (see _reshapes)
                    entry.problem = problem_of(update)
                else:
                    if entry.info is not None and reshapes(update, entry.info):
                        entry.info = None  # described again when next asked
                    entry.value = update
                    entry.connected, entry.problem = True, None
                if self._waiting:
                    self._changed.notify_all()

        entry.subscription = Monitor(context, pv, on_update, queue, on_signal=self._signalled)

    QUIET = 0.02  # s without an update before the callback thread takes the ones pending

    def _signalled(self, monitor: Monitor) -> None:
        """pvxs has an update for `monitor` (called on its thread: quick, no lock).

        Taken at once if someone waits for one; otherwise left for the next set's check of
        that PV, or for the callback thread once updates have stopped for QUIET s while no
        set runs: the updates a set's own puts cause cost it nothing while it runs.
        """
        queue = self._queue
        if queue is None:
            return
        if self._waiting:
            queue.push(lambda: self._drain(monitor))
            return
        self._last_signal = time.monotonic()
        if not self._dirty:
            self._dirty.add(monitor)
            queue.wake()
        else:
            self._dirty.add(monitor)

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Mark a set running: the callback thread takes no pending update meanwhile."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            queue = self._queue
            if not self._busy and self._dirty and queue is not None:
                queue.wake()

    def settle(self, timeout: float) -> bool:
        """Wait until every pending update was taken (a benchmark's quiet point)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._dirty and self._queue is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
        return True

    def _take(self, names: Iterable[str]) -> None:
        """Take the updates pending for `names` (under the lock)."""
        entries, dirty = self._entries, self._dirty
        for pv in names:
            entry = entries.get(pv)
            if entry is not None and entry.subscription is not None and entry.subscription.pending:
                dirty.discard(entry.subscription)
                entry.subscription.drain()

    def lookup(self, context: Context, names: Iterable[str], timeout: float) -> Lookup:
        """What each PV accepts, from its monitor; PVs not seen before are subscribed at once.

        Waits, at most `timeout` seconds in all, for the first value of new PVs and for
        disconnected ones to come back; a PV with neither is in `problems`, saying why.
        If `context` is closed meanwhile, every PV not yet ready says so at once.
        """
        names = list(names)
        deadline = time.monotonic() + timeout
        self._check_process()
        wake = watch(context, self._wake)
        try:
            with self._lock:
                if is_closed(context):  # closed before this check began: start nothing on it
                    return self._outcome(context, names, timeout)
                queue = self._start(context)
                now = self._clock()
                for pv in names:
                    entry = self._entries.get(pv)
                    if entry is None:
                        entry = self._entries[pv] = Entry(now)
                        try:
                            self._subscribe(context, queue, pv, entry)
                        except Exception as exc:  # noqa: BLE001 - e.g. closed: that PV's problem
                            del self._entries[pv]
                            entry.problem = f"cannot subscribe: {type(exc).__name__}: {exc}"
                            continue
                    entry.used = now
                    self._entries.move_to_end(pv)
                self._evict(now, set(names))  # a call's own PVs stay, even beyond `size`
                self._take(names)
                self._waiting += 1
                try:
                    while True:
                        waiting = [pv for pv in names if pv in self._entries
                                   and not self._entries[pv].connected]
                        remaining = deadline - time.monotonic()
                        if not waiting or remaining <= 0 or is_closed(context):
                            break
                        self._take(waiting)  # signalled before we counted ourselves in
                        if not any(not self._entries[pv].connected for pv in waiting if pv in self._entries):
                            continue
                        self._changed.wait(remaining)
                finally:
                    self._waiting -= 1
                return self._outcome(context, names, timeout)
        finally:
            wake()

    def _outcome(self, context: Context, names: list[str], timeout: float) -> Lookup:
        infos: dict[str, PvInfo] = {}
        problems: dict[str, str] = {}
        closed = is_closed(context) or self._context is not context  # or close() under the wait
        for pv in names:
            entry = self._entries.get(pv)
            if entry is not None and entry.connected:
                if entry.info is None:
                    entry.info = describe(entry.value)
                infos[pv] = entry.info
            elif closed:
                problems[pv] = str(closed_error(f"checking {pv}"))
            elif entry is None:
                problems[pv] = "cannot subscribe to the PV"
            elif entry.value is None:
                problems[pv] = (f"cannot read the PV: no reply within {timeout:g} s "
                                "(unknown PV, or its server is down)")
            else:
                problems[pv] = (f"cannot read the PV: {entry.problem or 'disconnected'}, "
                                f"not back within {timeout:g} s")
        return Lookup(infos, problems)

    def infos(self, names: Iterable[str]) -> list[PvInfo | None]:
        """What each PV accepts, as its monitor last pushed it (None: not monitored or not connected).

        No wait and no round trip: for a put right after lookup(), which subscribed them.
        """
        found: list[PvInfo | None] = []
        names = list(names)
        with self._lock:
            self._take(names)
            for pv in names:
                entry = self._entries.get(pv)
                if entry is None or not entry.connected:
                    found.append(None)
                    continue
                if entry.info is None:
                    entry.info = describe(entry.value)
                found.append(entry.info)
        return found

    def latest(self, names: Iterable[str]) -> dict[str, Any]:
        """{pv: its latest value as plain Python} for the given PVs that are monitored and connected."""
        names = list(names)
        with self._lock:
            self._take(names)
            found = {pv: e.value for pv in names
                     if (e := self._entries.get(pv)) is not None and e.connected}
        return {pv: to_python(value) for pv, value in found.items()}

    def state(self, pv: str) -> str:
        """'connected', 'disconnected', 'connecting' (no value yet) or 'unmonitored'."""
        with self._lock:
            self._take([pv])
            return state_of(self._entries.get(pv))

    def wait_for(self, pv: str, until: Callable[[str, Any], bool], timeout: float) -> bool:
        """Wait at most `timeout` s until until(state(pv), latest value or None); True if it did.

        The value as p4p's thread Context gives it (ntfloat, ntenum...).

        Lets a caller (a test, a tool) act once the server's push has arrived, not sooner.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._waiting += 1
            try:
                while True:
                    self._take([pv])
                    entry = self._entries.get(pv)
                    value = None if entry is None else entry.value
                    if until(state_of(entry), None if value is None else default_nt.unwrap(value)):
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(min(remaining, 0.1))  # an update signalled before we counted in
            finally:
                self._waiting -= 1

    def _wake(self) -> None:
        with self._lock:
            self._changed.notify_all()


def settle(timeout: float = 10.0) -> bool:
    """Wait at most `timeout` s until the housekeeping done after calls has ended: completed
    operations released (see _gate.py) and every cache's pending monitor updates taken.

    What a benchmark calls before each timed call, so that no call's timing holds the
    housekeeping of the one before."""
    deadline = time.monotonic() + timeout
    settled = wait_released(timeout)
    for cache in [s for s in live_sets() if isinstance(s, MetadataCache)]:
        settled = cache.settle(max(deadline - time.monotonic(), 0.0)) and settled
    return settled
