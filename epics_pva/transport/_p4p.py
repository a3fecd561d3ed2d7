"""Every workaround for p4p behaviour, in one place; each says where it was found and why.

All were found on p4p 4.3.0 (Python 3.11, loopback). When p4p fixes one, delete it here and
at its one caller.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from p4p.client.raw import Context as _RawContext
from p4p.client.raw import RemoteError, _ClientOperation
from p4p.client.raw import defaultBuilder as _default_builder
from p4p.client.thread import Context

from .._fork import at_fork
from ._closing import closed_error, is_closed, watch
from ._values import PvInfo

_log = logging.getLogger(__name__)

__all__ = ["READ_REQUEST", "CallerQueue", "get_many", "pop_lost_first_update", "put_many"]


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


class _Batch:
    """The outcomes of concurrent operations issued together, and one wake-up when all are in.

    p4p 4.3.0's ``Context.get(list)``/``put(list)`` queue each reply on a ``queue.Queue``
    and wake the waiting thread once per reply, and unwrap every Value into an NT wrapper:
    per PV, GIL hand-offs and Python work that the interface does not need. Here each reply
    is stored under one lock and the waiter is woken once, when the last one is in (or the
    context is closed). Replies arriving after `finish()` (late, or the cancel of a pending
    operation) are ignored.
    """

    __slots__ = ("_convert", "_left", "_lock", "_open", "done", "results")

    def __init__(self, count: int, convert: Callable[[Any], Any] | None = None) -> None:
        self._convert = convert
        self.results: list[Any] = [_PENDING] * count
        self._left = count
        self._lock = threading.Lock()
        self._open = True
        self.done = threading.Event()
        if not count:
            self.done.set()

    def reply(self, i: int, code: int, message: str, value: Any) -> None:
        """p4p's raw completion callback (code 0 remote error, 1 cancelled, 2 builder error, 3 done)."""
        if code == 3:
            outcome = value
            if self._convert is not None and value is not None:
                try:  # here, on p4p's thread, while the caller waits for the other replies
                    outcome = self._convert(value)
                except Exception as exc:  # noqa: BLE001 - that PV's outcome
                    outcome = exc
        elif code == 0:
            outcome = RemoteError(message)
        elif code == 2:  # an exception in the put builder: (type, value, traceback)
            kind, error, trace = value
            outcome = (error if isinstance(error, BaseException) else kind(error)).with_traceback(trace)
        else:
            return  # cancelled: only by finish()'s close of a pending operation
        with self._lock:
            if not self._open or self.results[i] is not _PENDING:
                return
            self.results[i] = outcome
            self._left -= 1
            if not self._left:
                self.done.set()

    def failed(self, i: int, error: BaseException) -> None:
        """Record that operation `i` could not even be issued."""
        with self._lock:
            if self.results[i] is _PENDING:
                self.results[i] = error
                self._left -= 1
                if not self._left:
                    self.done.set()

    def finish(self, pending: Callable[[int], BaseException]) -> list[Any]:
        """Stop taking replies; those still missing get pending(i); the outcomes, in order."""
        with self._lock:
            self._open = False
            results = self.results
            for i, outcome in enumerate(results):
                if outcome is _PENDING:
                    results[i] = pending(i)
        return results


_PENDING = object()  # a _Batch slot whose reply has not arrived


def _wire_name(context: Context, name: str) -> str:
    """The name on the wire: a PrefixedContext's prefix first."""
    return getattr(context, "name_prefix", "") + name


def _run(context: Context, names: Sequence[str], issue: Callable[[Any, str, Callable[..., None], int], Any],
         timeout: float, doing: str, convert: Callable[[Any], Any] | None = None) -> list[Any]:
    """Issue one raw operation per name, wait at most `timeout` s for all, close them all.

    Per name: its outcome (passed through `convert` if given), TimeoutError(name) if none came
    in time, or ContextClosedError if the context was closed meanwhile (close() or a fork in
    another thread).
    """
    batch = _Batch(len(names), convert)
    unwatch = watch(context, batch.done.set)
    ops: list[Any] = []
    try:
        provider = context._ctxt  # p4p 4.3.0: the raw client provider; None once closed
        for i, name in enumerate(names):
            try:
                if provider is None:
                    raise closed_error(f"{doing} {name}")
                ops.append(issue(provider, _wire_name(context, name), partial(batch.reply, i), i))
            except Exception as exc:  # noqa: BLE001 - e.g. the context is closed: that PV's outcome
                batch.failed(i, exc)
        batch.done.wait(max(timeout, 0.0))
        closed = is_closed(context)
        return batch.finish(lambda i: closed_error(f"{doing} {names[i]}") if closed else TimeoutError(names[i]))
    finally:
        unwatch()
        _close_all(ops)


CLOSE_HELPERS = 2
"""Threads besides the caller's that close a large batch's operations (see _close_all)."""
CLOSE_SHARE = 32
"""Operations a batch needs per closing thread before another thread helps close them."""


class _Closers:
    """CLOSE_HELPERS daemon threads closing operations handed to them; started on first use,
    and again in a forked child (where the parent's threads do not exist)."""

    def __init__(self) -> None:
        self._reset()
        at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[tuple[list[Any], threading.Event]] | None = None

    def close(self, ops: list[Any]) -> threading.Event:
        """Hand `ops` to a helper; the event is set once every one of them is closed."""
        with self._lock:
            work = self._work
            if work is None:
                work = self._work = queue.SimpleQueue()
                for k in range(CLOSE_HELPERS):
                    threading.Thread(target=self._run, args=(work,), daemon=True, name=f"pva-close-{k}").start()
        done = threading.Event()
        work.put((ops, done))
        return done

    @staticmethod
    def _run(work: queue.SimpleQueue[tuple[list[Any], threading.Event]]) -> None:
        while True:
            ops, done = work.get()
            try:
                _close_each(ops)
            except Exception:  # noqa: BLE001 - a helper must outlive a bad close
                _log.exception("closing p4p operations failed")
            finally:
                del ops
                done.set()


_closers = _Closers()


def _close_all(ops: list[Any]) -> None:
    """Close every operation; a large batch's in a few threads at once.

    p4p 4.3.0 closes an operation by synchronous round trips to its client's event loop
    thread: a third of the time of a batch of 100 puts, one close after the other. Closed
    from several threads, the loop handles the closes of several at each wake-up.
    """
    helpers = min(CLOSE_HELPERS, len(ops) // CLOSE_SHARE)
    shares = [_closers.close(ops[k + 1::helpers + 1]) for k in range(helpers)]
    _close_each(ops[::helpers + 1])
    for done in shares:
        done.wait()


def _close_each(ops: list[Any]) -> None:
    for op in ops:
        op.close()


READ_REQUEST = _RawContext.makeRequest("field(value,alarm,timeStamp)")
"""What a read asks the server for: the value, its alarm and time stamp (no display, limits...)."""


def get_many(context: Context, names: Sequence[str], timeout: float, request: Any = READ_REQUEST,
             convert: Callable[[Any], Any] | None = None) -> list[Any]:
    """Get names concurrently; per PV its raw p4p Value (not unwrapped), or convert(Value), or the exception.

    What ``Context.get(list, throw=False)`` does, with less work per PV (see _Batch), and by
    default asking only for value, alarm and time stamp (the Value keeps the PV's full type;
    the other fields are left unset). A PV whose server refuses that request (a structure
    with none of those fields) is read again whole, within the same `timeout` s. Exceptions:
    TimeoutError (no reply within `timeout` s in all), RemoteError, ContextClosedError if the
    context is closed meanwhile; whatever `convert` raised. `convert` runs on p4p's thread as
    each reply arrives, so converting overlaps the wait for the others.
    """
    deadline = time.monotonic() + timeout

    def issue(provider: Any, name: str, reply: Callable[..., None], i: int) -> Any:
        return _ClientOperation(provider, name, handler=reply, pvRequest=request, get=True, put=False)

    results = _run(context, names, issue, timeout, "reading", convert)
    again = [i for i, outcome in enumerate(results) if isinstance(outcome, RemoteError)]
    if again and request is not None:
        whole = get_many(context, [names[i] for i in again], deadline - time.monotonic(), None, convert)
        for i, outcome in zip(again, whole, strict=True):
            results[i] = outcome
    return results


# the kinds (values.PvInfo.kind) whose put needs nothing of the PV's current value
_PLAIN_KINDS = frozenset({"float", "int", "bool", "string", "array", "string_array"})


def _put_builder(value: Any, info: PvInfo | None, nt: Any) -> tuple[Callable[[Any], None], bool]:
    """(builder, get first?) for putting `value`: a PV of known kind is filled in directly,
    with no Get first; any other goes through p4p's own builder after a Get, as p4p puts do."""
    if info is not None and info.kind in _PLAIN_KINDS:
        def plain(put: Any) -> None:
            put["value"] = value
        return plain, False
    if info is not None and info.kind == "enum" and (isinstance(value, int) or value in info.choices):
        index = value if isinstance(value, int) else info.choices.index(value)  # the monitor's choices

        def enum(put: Any) -> None:
            put["value.index"] = index
        return enum, False
    return _default_builder(value, nt), True


Vet = Callable[[str, Any, Any, bool], None]
"""put_many's `vet(name, value, fetched Value, again)`: raises to stop the put (see _Vetted)."""


class _Vetted:
    """A put builder that lets `vet` see the fetched Value first (raising stops the put).

    pvxs 1.5 (src/clientget.cpp, GPROp::disconnected) puts an operation whose connection drops
    after the put was sent, before its reply, back among its channel's pending ones: on the
    next connection, to whichever server answers the name, the put is fetched, built and sent
    again, and the caller is not told. The builder then runs a second time; `vet` hears it
    (again=True): this put already went out once, on the old connection.
    """

    __slots__ = ("_builder", "_built", "_name", "_value", "_vet")

    def __init__(self, vet: Vet, name: str, value: Any, builder: Callable[[Any], None]) -> None:
        self._vet, self._name, self._value, self._builder = vet, name, value, builder
        self._built = False  # on p4p's thread only: one operation's builds come one at a time

    def __call__(self, current: Any) -> None:
        self._vet(self._name, self._value, current, self._built)
        self._builder(current)
        self._built = True


def put_many(context: Context, names: Sequence[str], values: Sequence[Any], timeout: float,
             infos: Sequence[PvInfo | None] | None = None,
             vet: Vet | None = None) -> list[BaseException | None]:
    """Put values[i] to names[i] concurrently; per PV: None (done) or the exception (TimeoutError...).

    p4p 4.3.0's ``Context.put(list, values, throw=False)`` marks *every* PV as timed out
    when any one does (a completed put's result is None, like a pending one's), and reads
    strings beginning with '{' as JSON. This issues the same concurrent puts through p4p's
    raw client and records which completed, so a timeout on one PV never hides the success
    of another. Waits at most `timeout` seconds in all; puts still pending then are cancelled.
    If the context is closed meanwhile (see closing.py), the wait ends at once and the
    pending puts get ContextClosedError: their fate is unknown, not timed out.

    `infos[i]` (from the PV's monitor, values.describe) lets a put of a known kind skip the
    Get that p4p makes before every put to learn the PV's structure: the value is stored in
    `value` (an enum's choice as its index, from the monitor's choices). A PV of unknown
    structure, or with no info, is put as p4p does it, Get first.

    With `vet`, every put fetches the PV first and calls vet(name, value, fetched Value, again)
    on p4p's thread before anything is sent; an exception it raises is that PV's outcome and
    the put is not sent (rehearsal's proof of the server, on the put's own connection). pvxs
    sends a put again by itself on a new connection when the old one dropped before the reply;
    it is fetched and vetted again first, with again=True.
    """
    kinds = list(infos) if infos is not None else [None] * len(names)
    if len(kinds) != len(names):
        raise ValueError(f"{len(names)} names but {len(kinds)} infos")
    pairs = list(zip(names, values, strict=True))

    def issue(provider: Any, name: str, reply: Callable[..., None], i: int) -> Any:
        builder, get = _put_builder(pairs[i][1], kinds[i], context._nt)
        if vet is not None:
            builder, get = _Vetted(vet, *pairs[i], builder), True
        return _ClientOperation(provider, name, handler=reply, builder=builder, get=get, put=True)

    return _run(context, names, issue, timeout, "putting")


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
