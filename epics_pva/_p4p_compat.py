"""Every workaround for p4p behaviour, in one place; each says where it was found and why.

All were found on p4p 4.3.0 (Python 3.11, loopback). When p4p fixes one, delete it here and
at its one caller.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from typing import Any

from p4p.client.raw import Context as _RawContext
from p4p.client.thread import Context

from .closing import closed_error, is_closed, watch

__all__ = ["CallerQueue", "pop_lost_first_update", "put_many"]

_CLOSED = -1  # put on put_many's queue when its context is closed


def pop_lost_first_update(subscription: Any, work_queue: Any = None) -> None:
    """Queue one extra pop of a fresh subscription, in case p4p dropped its first update.

    p4p 4.3.0: a first update that arrives before ``Context.monitor()`` returns is dropped
    ("Lost Subscription update") and nothing pops it again, so the subscription stalls
    (about 1 in 3,000 under load). A spare pop is harmless when nothing is pending.
    `work_queue` is the queue the subscription was created with (default: its own).
    """
    handle = getattr(subscription, "_handle", None)
    work_queue = getattr(subscription, "_Q", None) if work_queue is None else work_queue
    if handle is not None and work_queue is not None:
        work_queue.push(handle)


class CallerQueue:
    """A p4p work queue drained by the thread that waits, so updates are handled where awaited.

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

    def wake(self) -> None:
        """Make a waiting run_next return at once (it runs a no-op)."""
        self._queue.put(lambda: None)

    def drop_pending(self) -> None:
        """Forget every queued update (the subscription is closed)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


def put_many(context: Context, names: Sequence[str], values: Sequence[Any],
             timeout: float) -> list[BaseException | None]:
    """Put values[i] to names[i] concurrently; per PV: None (done) or the exception (TimeoutError...).

    p4p 4.3.0's ``Context.put(list, values, throw=False)`` marks *every* PV as timed out
    when any one does (a completed put's result is None, like a pending one's), and reads
    strings beginning with '{' as JSON. This issues the same concurrent puts through p4p's
    raw client and records which completed, so a timeout on one PV never hides the success
    of another. Waits at most `timeout` seconds in all; puts still pending then are cancelled.
    If the context is closed meanwhile (see closing.py), the wait ends at once and the
    pending puts get ContextClosedError: their fate is unknown, not timed out.
    """
    done: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
    unwatch = watch(context, lambda: done.put((_CLOSED, None)))
    results: list[BaseException | None] = [None] * len(names)
    pending = set(range(len(names)))
    ops: list[Any] = []
    try:
        for i, (name, value) in enumerate(zip(names, values, strict=True)):
            def completed(outcome: Any, i: int = i) -> None:
                done.put((i, outcome))

            try:
                # the raw put of this context's class: a PrefixedContext maps the name on the way
                ops.append(super(Context, context).put(name, completed, builder=value))
            except Exception as exc:  # noqa: BLE001 - e.g. the context is closed: that PV's outcome
                results[i] = exc
                pending.discard(i)
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            try:
                i, outcome = done.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                break
            if i == _CLOSED or is_closed(context):
                for j in pending:
                    results[j] = closed_error(f"putting {names[j]}")
                pending.clear()
                break
            if i in pending:
                pending.discard(i)
                results[i] = outcome if isinstance(outcome, BaseException) else None
        for i in pending:
            results[i] = TimeoutError(names[i])
    finally:
        unwatch()
        for op in ops:
            op.close()
    return results


def _prefixed(prefix: str, name: str | Sequence[str]) -> str | list[str]:
    """One PV name, or a list of them, with `prefix` put before each."""
    return prefix + name if isinstance(name, str) else [prefix + n for n in name]


class _Prefixing(_RawContext):
    """The raw client with every PV name prefixed on the wire (below thread.Context in the MRO)."""

    name_prefix = ""

    def get(self, name: str | Sequence[str], *args: Any, **kws: Any) -> Any:
        return super().get(_prefixed(self.name_prefix, name), *args, **kws)

    def put(self, name: str | Sequence[str], *args: Any, **kws: Any) -> Any:
        return super().put(_prefixed(self.name_prefix, name), *args, **kws)

    def rpc(self, name: str | Sequence[str], *args: Any, **kws: Any) -> Any:
        return super().rpc(_prefixed(self.name_prefix, name), *args, **kws)

    def monitor(self, name: str | Sequence[str], *args: Any, **kws: Any) -> Any:
        return super().monitor(_prefixed(self.name_prefix, name), *args, **kws)


class PrefixedContext(Context, _Prefixing):
    """A p4p thread Context whose callers use names without `prefix`; the wire carries prefix + name.

    Everything built on the context (gets, puts, monitors, validation functions) sees the
    names as given, so results and errors keep them, while the server sees prefixed ones.
    """

    def __init__(self, *args: Any, prefix: str, **kws: Any) -> None:
        self.name_prefix = prefix
        super().__init__(*args, **kws)
