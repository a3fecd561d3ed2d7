"""Batches of concurrent reads and puts with an outcome per PV, on p4p's raw client handlers.

p4p 4.3.0's ``thread.Context.get(list)``/``put(list, values)`` queue each reply on a
``queue.Queue`` and wake the waiting thread once per reply, unwrap every Value, mark every PV
of a put as timed out when one is (a completed put's result is None, like a pending one's),
and read strings beginning with '{' as JSON. Here each operation is started with its own
handler (``p4p.client.raw.Context.get``/``put``), each reply is stored under one lock, the
waiter is woken once, when the last one is in (or the context is closed), and the
operations that completed are released by the releaser threads after the call (_p4p.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from p4p.client.raw import Cancelled, RemoteError
from p4p.client.raw import Context as RawContext

from ._closing import closed_error, is_closed, watch
from ._gate import dropped, end_operations
from ._p4p import READ_REQUEST, default_nt, raw_value, start_operations, start_put
from ._values import PvInfo

__all__ = ["READ_REQUEST", "Vet", "Wave", "get_many", "put_many", "put_wave"]


class _Refused(RuntimeError):
    """Raised by a put builder to stop the put; the real reason is kept in the batch.

    p4p rebuilds a builder's exception as ``type(exc)(exc)`` before handing it over, which
    fails for exceptions with other constructors; this one survives it."""


class Wave:
    """Operations started together on one context, each with its outcome as it arrives, all
    ended at one deadline: the unit of every batch read and put.

    `start(context, wire name, handler, i)` starts operation i. `wake()` (if given) is called
    on p4p's thread when the last outcome is in, when an index in `wake_on` gets its outcome,
    and when the context is closed. `take()` hands over the outcomes that arrived since the
    last take; `finish()` gives the ones still missing (TimeoutError, or ContextClosedError if
    the context was closed) and ends the operations: those still pending are cancelled before
    it returns, the completed ones are released by the releaser threads.
    """

    def __init__(self, context: Any, names: Sequence[str], doing: str,
                 start: Callable[[Any, str, _Reply, int], Any], timeout: float,
                 convert: Callable[[Any], Any] | None = None, wake: Callable[[], None] | None = None,
                 wake_on: Collection[int] = ()) -> None:
        self.context, self.names, self.doing = context, list(names), doing
        self._convert = convert
        self._wake = wake
        self._wake_on = frozenset(wake_on)
        self.refusals: dict[int, BaseException] = {}  # put builders' real exceptions
        self._outcomes: dict[int, Any] = {}  # arrived, not yet taken
        self._left = len(self.names)
        self._lock = threading.Lock()
        self._open = True
        self.done = threading.Event()
        self._taken: set[int] = set()
        self.deadline = time.monotonic() + timeout
        if not self._left:
            self.done.set()
        self._unwatch = watch(context, self._closed)
        self._ops: list[Any | None] = []
        self._starting = threading.Lock()  # held while the operations are started (see reply)
        self._starter = threading.get_ident()
        with self._starting:
            self._ops = start_operations(context, self.names,
                                         lambda ctx, wire, i: start(ctx, wire, _Reply(self, i), i),
                                         self.failed, lambda name: closed_error(f"{doing} {name}"))

    def _closed(self) -> None:
        self.done.set()
        if self._wake is not None:
            self._wake()

    HOLD = 0.05  # s a reply waits at most for the wave's operations all to be started

    def reply(self, i: int, value: Any) -> None:
        """p4p's completion handler: a Value (get), None (put done), or an exception.

        Called on pvxs's event-loop thread. A reply that comes while this wave is still
        starting its operations waits (HOLD s at most) until they are all started: pvxs 1.5.3
        queues each start to that thread, and wakes it (a lock of its event base, a write to
        an eventfd) for every start that finds its queue empty; while the thread waits here,
        the queue fills and the rest of the starts cost none of that. At 1,000 PVs the wave
        starts about twice as fast. The wait is bounded, so a start that itself waits for the
        thread (a release run by the garbage collector) delays, never deadlocks.
        """
        self.hold()
        if isinstance(value, Cancelled):
            return  # only by the end of a pending operation, after finish()
        if isinstance(value, _Refused):
            value = self.refusals.pop(i, value)
        elif value is not None and not isinstance(value, Exception):
            value = raw_value(value)
            if self._convert is not None:
                try:  # here, on p4p's thread, while the caller waits for the other replies
                    value = self._convert(value)
                except Exception as exc:  # noqa: BLE001 - that PV's outcome
                    value = exc
        self._store(i, value)

    def hold(self) -> None:
        """On pvxs's thread: wait (HOLD s at most) while this wave still starts operations."""
        if self._starting.locked() and threading.get_ident() != self._starter:
            if self._starting.acquire(timeout=self.HOLD):
                self._starting.release()

    def failed(self, i: int, error: BaseException) -> None:
        """Record that operation `i` could not even be started."""
        self._store(i, error)

    def _store(self, i: int, value: Any) -> None:
        with self._lock:
            if not self._open or i in self._outcomes or i in self._taken:
                return
            self._outcomes[i] = value
            self._left -= 1
            last = not self._left
            if last:
                self.done.set()
        if self._wake is not None and (last or i in self._wake_on):
            self._wake()

    def take(self) -> dict[int, Any]:
        """The outcomes that arrived since the last take, by index."""
        with self._lock:
            arrived, self._outcomes = self._outcomes, {}
            self._taken.update(arrived)
        return arrived

    def wait(self) -> None:
        """Wait until every outcome is in, the deadline passes or the context is closed."""
        self.done.wait(max(self.deadline - time.monotonic(), 0.0))

    def finish(self) -> dict[int, Any]:
        """Stop taking replies and end the operations; the outcomes not yet taken, by index."""
        pending: list[int] = []
        with self._lock:
            self._open = False
            outcomes, self._outcomes = self._outcomes, {}
            if self._left:
                closed = is_closed(self.context)
                for i, name in enumerate(self.names):
                    if i not in outcomes and i not in self._taken:
                        pending.append(i)
                        outcomes[i] = closed_error(f"{self.doing} {name}") if closed else TimeoutError(name)
        self._unwatch()
        ops, self._ops = self._ops, []
        if ops:
            # those still pending are cancelled before this returns; the others' release
            # (nothing left to cancel) is not waited for
            end_operations(self.context, [ops[i] for i in pending])
            if len(pending) < len(ops):
                cancelled = set(pending)
                end_operations(self.context, [op for i, op in enumerate(ops) if i not in cancelled], wait=False)
            dropped(self.context, ops)
        return outcomes


def _all(wave: Wave) -> list[Any]:
    """Every outcome of a wave run to its end, in order."""
    outcomes: dict[int, Any] = {}
    try:
        wave.wait()
        outcomes = wave.take()
    finally:
        outcomes.update(wave.finish())
    return [outcomes[i] for i in range(len(wave.names))]


class _Reply:
    """One operation's handler: its index in the wave (cheaper than a partial to call)."""

    __slots__ = ("_i", "wave")

    def __init__(self, wave: Wave, i: int) -> None:
        self.wave, self._i = wave, i

    def __call__(self, value: Any) -> None:
        self.wave.reply(self._i, value)


def get_many(context: Any, names: Sequence[str], timeout: float, request: Any = READ_REQUEST,
             convert: Callable[[Any], Any] | None = None) -> list[Any]:
    """Get names concurrently; per PV its raw p4p Value (not unwrapped), or convert(Value), or the exception.

    By default asks only for value, alarm and time stamp (the Value keeps the PV's full type;
    the other fields are left unset). A PV whose server refuses that request (a structure
    with none of those fields) is read again whole, within the same `timeout` s. Exceptions:
    TimeoutError (no reply within `timeout` s in all), RemoteError, ContextClosedError if the
    context is closed meanwhile; whatever `convert` raised. `convert` runs on p4p's thread as
    each reply arrives, so converting overlaps the wait for the others.
    """
    deadline = time.monotonic() + timeout

    def start(ctx: Any, wire: str, reply: _Reply, i: int) -> Any:
        return RawContext.get(ctx, wire, reply, request)

    results = _all(Wave(context, names, "reading", start, timeout, convert))
    again = [i for i, outcome in enumerate(results) if isinstance(outcome, RemoteError)]
    if again and request is not None:
        whole = get_many(context, [names[i] for i in again], deadline - time.monotonic(), None, convert)
        for i, outcome in zip(again, whole, strict=True):
            results[i] = outcome
    return results


# the kinds (values.PvInfo.kind) whose put needs nothing of the PV's current value
_PLAIN_KINDS = frozenset({"float", "int", "bool", "string", "array", "string_array"})


def _put_builder(value: Any, info: PvInfo | None) -> tuple[Callable[[Any], None], bool]:
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
    return default_nt.builder(value), True


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


class _Guarded:
    """A put builder whose exception is kept for the wave (p4p cannot carry every kind)."""

    __slots__ = ("_builder", "_i", "_wave")

    def __init__(self, wave: Wave, i: int, builder: Callable[[Any], None]) -> None:
        self._wave, self._i, self._builder = wave, i, builder

    def __call__(self, current: Any) -> None:
        self._wave.hold()  # on pvxs's thread, like a reply (see Wave.reply)
        try:
            self._builder(current)
        except Exception as exc:
            self._wave.refusals[self._i] = exc
            raise _Refused(str(exc)) from None


def put_many(context: Any, names: Sequence[str], values: Sequence[Any], timeout: float,
             infos: Sequence[PvInfo | None] | None = None,
             vet: Vet | None = None) -> list[BaseException | None]:
    """Put values[i] to names[i] concurrently; per PV: None (done) or the exception (TimeoutError...).

    Records which puts completed, so a timeout on one PV never hides the success of another.
    Waits at most `timeout` seconds in all; puts still pending then are cancelled. If the
    context is closed meanwhile (see _closing.py), the wait ends at once and the pending puts
    get ContextClosedError: their fate is unknown, not timed out.

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
    return _all(put_wave(context, names, values, timeout, infos, vet))


def put_wave(context: Any, names: Sequence[str], values: Sequence[Any], timeout: float,
             infos: Sequence[PvInfo | None] | None = None, vet: Vet | None = None,
             wake: Callable[[], None] | None = None, wake_on: Collection[int] = ()) -> Wave:
    """Start put_many's puts as a Wave, without waiting: see put_many and Wave."""
    kinds = list(infos) if infos is not None else [None] * len(names)
    if len(kinds) != len(names):
        raise ValueError(f"{len(names)} names but {len(kinds)} infos")
    pairs = list(zip(names, values, strict=True))

    def start(ctx: Any, wire: str, reply: _Reply, i: int) -> Any:
        builder, get = _put_builder(pairs[i][1], kinds[i])
        if vet is not None:
            builder, get = _Vetted(vet, *pairs[i], builder), True
        return start_put(ctx, wire, reply, _Guarded(reply.wave, i, builder), get)

    return Wave(context, names, "putting", start, timeout, wake=wake, wake_on=wake_on)
