"""Fresh reads: after a set, each PV read gives a value that arrived after that set completed.

With the `fresh_reads` setting on, an Interface keeps a monitor on every PV it reads (at most
`monitor_limit`, least recently read closed first; one unread for `monitor_idle` s is closed at
the next read), and notes the moment each `set_values` completed, its validations included. A
read that follows a set then waits, by monitor and at most `timeout` s, for each PV's first update received after
that moment, by this process's own clock on arrival: server time stamps are never compared
with the client's clock (an IOC's clock may drift). The update a new subscription (or a
reconnect) starts with is the server's current value, possibly computed before the set: it is
never counted as fresh. A PV that was itself among the set's inputs is read as usual.

A per-observable read function, given like a validation function in ``configs`` (a
``functools.partial`` of `average_fresh` or `first_after`), chooses which fresh updates make
the value read; the default is the latest update received since the set (waiting for the
first one if none arrived yet).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from p4p.client.thread import Context

from ..transport import (
    CallerQueue,
    Monitor,
    MonitorEntry,
    MonitorSet,
    closed_error,
    is_closed,
    problem_of,
)
from ._readings import Reading, read_failure, reading_of

__all__ = ["FreshMonitors", "ReadFunction", "Updates", "average_fresh", "first_after", "read_configs"]

HISTORY = 256  # updates kept per PV: an average of more than this cannot be asked


class Updates(Protocol):
    """What a read function is given to wait on: the updates of the PVs being read."""

    def after(self, pv: str, since: float, n: int, timeout: float) -> list[Reading]:
        """The first `n` updates of `pv` received after `since` (time.monotonic()), waiting for them
        at most `timeout` s; TimeoutError saying how many came when fewer do (the read's ReadError)."""
        ...

    def latest_after(self, pv: str, since: float, timeout: float) -> Reading:
        """The latest update of `pv` received after `since`, waiting for the first at most `timeout` s."""
        ...


class ReadFunction(Protocol):
    """A per-observable read: called with keywords only, returns the Reading to give."""

    def __call__(self, *, pv: str, updates: Updates, since: float, timeout: float) -> Reading: ...


def average_fresh(*, pv: str, updates: Updates, since: float, timeout: float, n: int = 4) -> Reading:
    """The mean of the next `n` updates received after the set (`partial(average_fresh, n=4)`).

    Costs the time of n updates after the set: n / (the PV's update rate), e.g. 2 s for n=4 on
    a 2 Hz scanned PV. The Reading carries the worst alarm of the n and the last time stamp;
    its value is the mean (numbers only). `timeout` bounds the wait for all n.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= HISTORY:
        raise ValueError(f"average_fresh n must be an int from 1 to {HISTORY}, not {n!r}")
    got = updates.after(pv, since, n, timeout)
    worst = max(got, key=lambda r: r.severity)
    mean = math.fsum(float(r.value) for r in got) / n
    return Reading(mean, got[-1].timestamp, worst.severity, worst.status, worst.message)


def first_after(*, pv: str, updates: Updates, since: float, timeout: float, seconds: float = 0.0) -> Reading:
    """The first update received at least `seconds` after the set (`partial(first_after, seconds=S)`).

    Costs `seconds` plus up to one update period. Waits at most `seconds` + `timeout` in all.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
        raise ValueError(f"first_after seconds must be a number from 0 to 3600, not {seconds!r}")
    return updates.after(pv, since + seconds, 1, timeout + seconds)[0]


def read_configs(configs: Mapping[str, Any] | None) -> dict[str, Callable[..., Reading]]:
    """The read functions of `configs` ({pv: callable or None}); TypeError naming a PV whose entry is not."""
    found: dict[str, Callable[..., Reading]] = {}
    for pv, fn in (configs or {}).items():
        if fn is None:
            continue
        if not callable(fn):
            raise TypeError(f"read config of {pv} must be callable (e.g. partial(average_fresh, n=4)), "
                            f"not {type(fn).__name__}")
        found[pv] = fn
    return found


class _Stream(MonitorEntry):
    """One PV's subscription and the updates it received (reading, arrival on time.monotonic())."""

    __slots__ = ("history", "snapshot")

    def __init__(self, used: float) -> None:
        super().__init__(used)
        self.history: deque[tuple[float, Reading | ValueError]] = deque(maxlen=HISTORY)
        self.snapshot = True  # the next update is the server's current value, not news


class FreshMonitors(MonitorSet[_Stream]):
    """A monitor per PV read, kept open across calls; the updates each received since a set.

    The mark of the last set survives close(): the next read, on a new context, still waits
    for news after it. A forked child starts without it.
    """

    THREAD_NAME = "pva-fresh-reads"

    def _reset(self) -> None:
        super()._reset()
        self.set_done: float | None = None  # time.monotonic() when the last set completed
        self.set_names: frozenset[str] = frozenset()

    def mark(self, names: Iterable[str]) -> None:
        """Note that a set of `names` completed now: reads from now on wait for newer updates."""
        with self._lock:
            self.set_done, self.set_names = time.monotonic(), frozenset(names)

    def _subscribe(self, context: Context, queue: CallerQueue, pv: str, stream: _Stream) -> None:
        def on_update(update: Any) -> None:
            now = time.monotonic()
            with self._lock:
                if self._entries.get(pv) is not stream:
                    return
                if isinstance(update, Exception):
                    stream.connected, stream.snapshot = False, True
                    stream.problem = problem_of(update)
                elif stream.snapshot:  # the current value on (re)connect: not news of a set
                    stream.connected, stream.snapshot, stream.problem = True, False, None
                else:
                    try:
                        reading: Reading | ValueError = reading_of(update)
                    except ValueError as exc:
                        reading = exc
                    stream.history.append((now, reading))
                self._changed.notify_all()

        stream.subscription = Monitor(context, pv, on_update, queue, unwrap=True)

    def watch(self, context: Context, names: Iterable[str]) -> None:
        """Subscribe the PVs not monitored yet (no wait); close the idle and the excess ones."""
        self._check_process()
        names = list(names)
        with self._lock:
            if is_closed(context):
                return
            queue = self._start(context)
            now = self._clock()
            for pv in names:
                stream = self._entries.get(pv)
                if stream is None:
                    stream = self._entries[pv] = _Stream(now)
                    try:
                        self._subscribe(context, queue, pv, stream)
                    except Exception:  # noqa: BLE001 - closed meanwhile: the read says why
                        del self._entries[pv]
                        continue
                stream.used = now
                self._entries.move_to_end(pv)
            self._evict(now, set(names))

    # ---- Updates, for read functions -----------------------------------------------------------

    def after(self, pv: str, since: float, n: int, timeout: float, *, budget: float | None = None) -> list[Reading]:
        """Updates.after; `budget`: the read's whole wait, of which `timeout` is what is left (for the error's words)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                stream = self._entries.get(pv)
                got = [] if stream is None else [r for t, r in stream.history if t > since][:n]
                if len(got) >= n or time.monotonic() >= deadline or stream is None:
                    break
                self._changed.wait(deadline - time.monotonic())  # woken by every update
            problem = None if stream is None or stream.connected else stream.problem
        for reading in got:
            if isinstance(reading, ValueError):
                raise reading
        if len(got) < n:
            what = "no update since the set" if not got else f"{len(got)} of {n} updates since the set"
            why = f"; {problem}" if problem else ""
            raise TimeoutError(f"{what} within {timeout if budget is None else budget:g} s{why}")
        return [r for r in got if isinstance(r, Reading)]

    def latest_after(self, pv: str, since: float, timeout: float, *, budget: float | None = None) -> Reading:
        """Updates.latest_after; `budget` as in after()."""
        with self._lock:
            stream = self._entries.get(pv)
            fresh = [] if stream is None else [r for t, r in stream.history if t > since]
        if fresh:
            last = fresh[-1]
            if isinstance(last, ValueError):
                raise last
            return last
        return self.after(pv, since, 1, timeout, budget=budget)[0]

    def _wait_any_after(self, names: list[str], since: float, timeout: float) -> None:
        """Wait at most `timeout` s until each of `names` has an update received after `since`
        (one wait for them all: no thread per PV)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                missing = [pv for pv in names if (s := self._entries.get(pv)) is not None
                           and not any(t > since for t, _ in s.history)]
                remaining = deadline - time.monotonic()
                if not missing or remaining <= 0:
                    return
                self._changed.wait(remaining)  # woken by every update

    def read(self, context: Context, names: list[str], configs: Mapping[str, Any] | None,
             timeout: float, every: bool = True) -> tuple[dict[str, Reading], dict[str, str]] | None:
        """After a set: each PV's fresh Reading and why each other has none; None before any set.

        `every`: every PV of `names` is read fresh (the fresh_reads setting); otherwise only those
        with a read function in `configs`. The PVs that were inputs of the last set are left out
        (read them as usual). Every PV is waited for at once: the call lasts as long as its
        slowest PV.
        """
        functions = read_configs(configs)
        names = [pv for pv in names if every or pv in functions]
        if not names:
            return None
        self.watch(context, names)
        since = self.set_done
        if since is None:
            return None
        readings: dict[str, Reading] = {}
        failures: dict[str, str] = {}
        results: dict[str, Reading | BaseException] = {}

        def one(pv: str, remaining: float) -> None:
            try:
                fn = functions.get(pv)
                if fn is None:
                    results[pv] = self.latest_after(pv, since, remaining, budget=timeout)
                else:
                    results[pv] = fn(pv=pv, updates=self, since=since, timeout=remaining)
            except BaseException as exc:  # noqa: BLE001 - that PV's failure, in words
                results[pv] = exc

        fresh = [pv for pv in names if pv not in self.set_names]
        custom = [pv for pv in fresh if pv in functions]  # a read function may block: a thread each
        threads = [threading.Thread(target=one, args=(pv, timeout), daemon=True) for pv in custom]
        for thread in threads:
            thread.start()
        plain = [pv for pv in fresh if pv not in functions]
        start = time.monotonic()
        self._wait_any_after(plain, since, timeout)  # the PVs read as their latest: one wait
        for pv in plain:
            one(pv, max(timeout - (time.monotonic() - start), 0.0))
        for thread in threads:
            thread.join()
        closed = is_closed(context) or self._context is not context  # close() ended the waits
        for pv in fresh:
            got = results[pv]
            if isinstance(got, Reading):
                readings[pv] = got
            elif closed:  # nothing can be concluded of the PV: it was not waited for in full
                failures[pv] = read_failure(closed_error(f"reading {pv}"), timeout)
            elif isinstance(got, TimeoutError):
                failures[pv] = str(got)
            elif isinstance(got, ValueError):
                failures[pv] = f"unreadable value: {got}"
            else:
                failures[pv] = f"{type(got).__name__}: {got}"
        return readings, failures
