"""The client context of an Interface and the start of every operation epics_pva makes on it.

All through p4p's public API (found on p4p 4.3.0 with pvxs 1.5.3, Python 3.11, loopback):
``p4p.client.raw.Context.get/put/monitor`` with a handler each, ``p4p.client.thread.Context``,
the default NT types of ``p4p.nt.defaultNT()`` and ``Context.conf()``. The p4p behaviours
this package works around, each with where it was found, are told where they are handled:

- closing a context while another thread calls into it can hang that thread, or read a
  handle being freed: `ClientContext` counts every call into pvxs on its behalf and closes
  only when none is inside (_gate.py);
- releasing an operation costs two synchronous round trips to pvxs's event loop: a batch's
  completed operations are released by other threads after the call (_gate.py);
- p4p's thread-level monitor loses a first update that arrives before it returns, and
  closing one while it is popped deadlocks: epics_pva's `Monitor` (_monitor.py);
- p4p's thread get/put of a list wake the caller once per reply, mark every PV of a put
  timed out when one is, and read '{...}' strings as JSON: _batch.py;
- p4p unwraps values with per-context state that two threads can mix up; `ClientContext`
  asks p4p for raw Values and unwraps (for its callers) with `NT`, one helper per type.

Two facts relied on are not in p4p's documentation, so tests/test_p4p_api.py checks them,
and fails loudly if a p4p release changes them: ``conf()`` of a closed context is empty
(how `is_closed` tells a plain p4p Context is closed), and a put builder's exception reaches
the handler rebuilt as ``type(exc)(exc)`` (why _batch.py raises its own).
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from p4p import Value
from p4p.client.raw import Context as RawContext
from p4p.client.thread import Context
from p4p.nt import defaultNT

from ._closing import is_closed, mark_closed
from ._gate import _Gate, gate_of

__all__ = [
    "NT", "READ_REQUEST", "ClientContext", "close_every_context", "default_nt", "raw_value", "start_operations",
    "start_put",
]

READ_REQUEST = RawContext.makeRequest("field(value,alarm,timeStamp)")
"""What a read asks the server for: the value, its alarm and time stamp (no display, limits...)."""

# ---- operations: started and ended through the gate ----------------------------------------------

def _wire_name(context: Any, name: str) -> str:
    """The name on the wire: a ClientContext's prefix first."""
    return getattr(context, "name_prefix", "") + name


Start = Callable[[Any, str, int], Any]
"""start(context, name on the wire, index) -> one raw p4p operation (RawContext.get or .put)."""


def start_operations(context: Any, names: Sequence[str], start: Start,
                     failed: Callable[[int, BaseException], None],
                     closed: Callable[[str], BaseException]) -> list[Any | None]:
    """Start one raw operation per name, all inside the context's gate; ops[i] is names[i]'s.

    A name whose operation cannot be started (ops[i] None) gets failed(i, error): `closed(name)`
    when the context is closing or closed (nothing is started on it then), or what p4p raised.
    The list is in the context's ledger until the caller ends the operations and drops it
    (_gate.dropped).
    """
    gate = gate_of(context)
    ops: list[Any | None] = [None] * len(names)
    gate.keep(ops)  # until its owner drops it: close() ends whatever it still holds
    entered = gate.enter()
    try:
        prefix = getattr(context, "name_prefix", "")
        for i, name in enumerate(names):
            if not entered or gate.closed:  # a close began: start nothing more on it
                failed(i, closed(name))
                continue
            try:
                ops[i] = start(context, prefix + name, i)
            except Exception as exc:  # noqa: BLE001 - e.g. closed under us: that PV's outcome
                failed(i, closed(name) if is_closed(context) else exc)
    finally:
        if entered:
            gate.leave()
    return ops


def start_put(context: Any, wire: str, handler: Callable[[Any], None], builder: Callable[[Any], None],
              get: bool) -> Any:
    """Start one put (p4p's raw client): builder(Value) fills it in, after a Get if `get`."""
    return RawContext.put(context, wire, handler, builder, None, get)


class NT:
    """p4p's default NT helpers (p4p.nt.defaultNT), one instance per type ID, for any thread.

    What p4p's Context does with its `nt=` argument, without its per-context state (which
    two threads unwrapping values of different types at once can mix up).
    """

    def __init__(self) -> None:
        self._kinds = defaultNT()
        self._helpers: dict[str, Any] = {}

    def _helper(self, value: Value) -> Any:
        type_id = value.getID()
        helper = self._helpers.get(type_id)
        if helper is None and type_id in self._kinds:
            helper = self._helpers[type_id] = self._kinds[type_id]()
        return helper

    def unwrap(self, value: Any) -> Any:
        """A Value as p4p's thread Context gives it by default (ntfloat, ntenum...); others as they are."""
        if not isinstance(value, Value):
            return value
        helper = self._helper(value)
        return value if helper is None else helper.unwrap(value)

    def builder(self, value: Any) -> Callable[[Any], None]:
        """A put builder storing `value` as p4p's own put does (p4p.client.raw.defaultBuilder)."""
        if callable(value):
            return value  # type: ignore[no-any-return]

        def build(put: Value) -> None:
            if isinstance(value, Value):
                put[None] = value
            elif isinstance(value, dict):
                for key, item in value.items():
                    put[key] = item
            else:
                helper = self._helper(put)
                if helper is None:
                    put.value = value  # as p4p does for a structure of no known NT type
                else:
                    helper.assign(put, value)
        return build


default_nt = NT()
"""p4p's default NT types, shared: NT keeps no per-call state."""


def raw_value(value: Any) -> Any:
    """The p4p Value of a read value: itself, or what p4p's NT wrapper (ntfloat...) carries."""
    return value if isinstance(value, Value) else getattr(value, "raw", value)


# ---- the context ---------------------------------------------------------------------------------

class _Tracked:
    """An operation or subscription started through a ClientContext's own raw methods (by
    p4p's thread-level get, put, monitor...): ended through the gate, popped under a lock."""

    __slots__ = ("_gate", "_lock", "_raw", "__weakref__")

    def __init__(self, gate: _Gate, raw: Any) -> None:
        self._gate, self._raw, self._lock = gate, raw, threading.Lock()
        gate.keep(raw)

    def pop(self) -> Any:
        with self._lock:
            raw = self._raw
            return None if raw is None else raw.pop()

    def close(self) -> None:
        with self._lock:
            raw, self._raw = self._raw, None
            if raw is None:
                return
            self._gate.end(raw)

    cancel = close

    def complete(self) -> bool:
        raw = self._raw
        return bool(raw is None or raw.complete())

    @property
    def done(self) -> bool:
        return self.complete()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a finaliser must not raise
            pass


class _Guarded(RawContext):
    """p4p's raw client, every call into pvxs counted by the context's gate and every name
    prefixed on the wire (below thread.Context in the MRO, so its get/put/monitor use it)."""

    name_prefix = ""
    gate: _Gate

    def _started(self, start: Callable[[], Any]) -> _Tracked:
        if not self.gate.enter():
            raise RuntimeError("Context closed")
        try:
            return _Tracked(self.gate, start())
        finally:
            self.gate.leave()

    def get(self, name: str, handler: Callable[[Any], None], request: Any = None) -> Any:
        return self._started(lambda: super(_Guarded, self).get(self.name_prefix + name, handler, request))

    def put(self, name: str, handler: Callable[[Any], None], builder: Any = None, request: Any = None,
            get: bool = True) -> Any:
        return self._started(lambda: super(_Guarded, self).put(self.name_prefix + name, handler, builder,
                                                               request, get))

    def rpc(self, name: str, handler: Callable[[Any], None], value: Any, request: Any = None) -> Any:
        return self._started(lambda: super(_Guarded, self).rpc(self.name_prefix + name, handler, value, request))

    def monitor(self, name: str, handler: Callable[[], None], request: Any = None, **kws: Any) -> Any:
        return self._started(lambda: super(_Guarded, self).monitor(self.name_prefix + name, handler, request,
                                                                   **kws))

    def disconnect(self, name: str | None = None) -> None:
        if not self.gate.enter():
            return
        try:
            super().disconnect(None if name is None else self.name_prefix + name)
        finally:
            self.gate.leave()

    def close(self) -> None:
        self.gate.close(super().close)


class ClientContext(Context, _Guarded):
    """The p4p thread Context of an Interface: safe to close at any moment (see the module).

    A `prefix` is put before every PV name on the wire, so everything built on the context
    (gets, puts, monitors, validation functions) sees the names as given, while the server
    sees prefixed ones. `closed` is true from the moment close() begins; close() never waits
    longer than about CLOSE_WAIT s.

    Underneath, p4p hands this context raw Values (``nt=False``): the batches of this package
    need nothing more. Its thread-level get, put, rpc and monitor give their callers what
    p4p's Context gives by default (ntfloat, ntenum..., and p4p's assignment of a put's
    value), or raw Values with ``nt=False``, as p4p's does.
    """

    def __init__(self, provider: str = "pva", conf: Any = None, useenv: bool = True, nt: Any = None,
                 *, prefix: str = "", **kws: Any) -> None:
        if nt not in (None, False):
            raise ValueError("ClientContext takes nt=None (p4p's default NT types) or nt=False")
        self.gate = _Gate()
        self.name_prefix = prefix
        self._nt_of_callers: NT | None = None if nt is False else default_nt
        super().__init__(provider, conf=conf, useenv=useenv, nt=False, **kws)
        _contexts.add(self)

    @property
    def closed(self) -> bool:
        return self.gate.closed

    def close(self) -> None:
        """Wake every wait on this context (they fail as closed), then close it safely."""
        mark_closed(self)
        super().close()

    # ---- p4p's thread-level calls, unwrapped for their callers as p4p would -------------------

    def _unwrap(self, value: Any) -> Any:
        helper = self._nt_of_callers
        return value if helper is None else helper.unwrap(value)

    # p4p's thread Context layers methods of these names over its raw ones, with other signatures

    def get(self, name: Any, request: Any = None, timeout: float = 5.0,  # type: ignore[override]
            throw: bool = True) -> Any:
        got = Context.get(self, name, request=request, timeout=timeout, throw=throw)
        if isinstance(name, (bytes, str)):
            return self._unwrap(got)
        return [self._unwrap(value) for value in got]

    def put(self, name: Any, values: Any, request: Any = None, timeout: float = 5.0,  # type: ignore[override]
            throw: bool = True, process: Any = None, wait: Any = None, get: bool = True) -> Any:
        helper = self._nt_of_callers
        if helper is not None:
            if isinstance(name, (bytes, str)):
                values = _built(helper, values)
            else:
                values = [_built(helper, value) for value in values]
        return Context.put(self, name, values, request=request, timeout=timeout, throw=throw,
                           process=process, wait=wait, get=get)

    def rpc(self, name: Any, value: Any, request: Any = None, timeout: float = 5.0,  # type: ignore[override]
            throw: bool = True) -> Any:
        return self._unwrap(Context.rpc(self, name, value, request=request, timeout=timeout, throw=throw))

    def monitor(self, name: str, cb: Callable[[Any], None], request: Any = None,  # type: ignore[override]
                notify_disconnect: bool = False, queue: Any = None) -> Any:
        helper = self._nt_of_callers
        callback = cb if helper is None else (lambda value: cb(helper.unwrap(value)))
        return Context.monitor(self, name, callback, request=request, notify_disconnect=notify_disconnect,
                               queue=queue)


def _built(helper: NT, value: Any) -> Any:
    """A put's value as p4p's thread put takes it: JSON text left for p4p to read, the rest as
    a builder assigning it as p4p's default NT types do."""
    if isinstance(value, (bytes, str)) and value[:1] in ("{", b"{"):
        return value
    return helper.builder(value)


_contexts: weakref.WeakSet[ClientContext] = weakref.WeakSet()


def close_every_context() -> int:
    """Close every ClientContext of this process still open (how many were), and free the
    closed ones still alive.

    Before a fork: pvxs keeps one UDP manager per process while any of its contexts lives,
    and a child forked then inherits it without its thread. That child's beacon listener,
    bound (shared) to the servers' UDP port, then takes searches sent to that port by other
    processes and never reads them: their new contexts find no server. A context whose
    Interface was dropped without close() (and is kept alive by a reference cycle until the
    garbage collector runs) is not one of the Interfaces' own: this finds it all the same.
    """
    contexts = list(_contexts)
    left = sum(not context.closed for context in contexts)
    for context in contexts:  # one another thread is closing: close() waits for it to end
        try:
            context.close()
        except Exception:  # noqa: BLE001 - the others must still be closed
            pass
    del contexts
    if len(_contexts):
        # closed, yet alive: a reference cycle (a finished batch and its handlers, a frame
        # kept by a traceback) holds the context or its operations, and they hold pvxs's UDP
        # manager, so that its thread still runs (found with 0.05-0.35 s of collection at
        # each fork of a loaded close-race child; after it, no pvxs client thread was left)
        gc.collect()
    return left
