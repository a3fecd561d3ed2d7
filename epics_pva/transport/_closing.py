"""Who is told when a client context is closed under them (close() or a fork in another thread).

Closing a p4p context does not end the monitors opened on it: they go silent, and a wait on
one would run its full time limit and then blame the machine. So whoever closes a context
marks it closed here first, which wakes every waiter watching it; a waiter checks
`is_closed` on each wake and fails at once with ContextClosedError.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from p4p.client.raw import Context as RawContext

from .._fork import at_fork
from ..errors import ContextClosedError

__all__ = ["ContextClosedError", "check_open", "closed_error", "is_closed", "mark_closed", "watch"]

_lock = threading.Lock()
_closed: weakref.WeakSet[Any] = weakref.WeakSet()
_watchers: weakref.WeakKeyDictionary[Any, set[Callable[[], None]]] = weakref.WeakKeyDictionary()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it: start clean


at_fork(after_in_child=_after_fork_in_child)


def mark_closed(context: Any) -> None:
    """Record that `context` is being closed and wake everyone watching it (call before close())."""
    with _lock:
        _closed.add(context)
        wakers = list(_watchers.pop(context, ()))
    for wake in wakers:
        wake()


def is_closed(context: Any) -> bool:
    """True once `context` was closed: marked here, or closed by its owner directly.

    A ClientContext says so itself (`closed`); any other p4p Context is closed when its
    conf() is empty, as p4p 4.3.0's is once closed (tests/test_p4p_api.py checks it).
    """
    with _lock:
        if context in _closed:
            return True
    closed = getattr(context, "closed", None)
    if isinstance(closed, bool):
        return closed
    if isinstance(context, RawContext):
        return not context.conf()
    return False


def closed_error(doing: str) -> ContextClosedError:
    """The error for an operation cut off by its context closing, saying what it was doing."""
    return ContextClosedError(
        f"the client context was closed while {doing} (close() or os.fork() in another "
        "thread); nothing can be concluded about the machine")


def check_open(context: Any, doing: str) -> None:
    """Raise ContextClosedError (saying what was being done) if `context` was closed."""
    if is_closed(context):
        raise closed_error(doing)


def watch(context: Any, wake: Callable[[], None]) -> Callable[[], None]:
    """Call `wake` when `context` is marked closed; returns the function that stops watching."""
    with _lock:
        _watchers.setdefault(context, set()).add(wake)

    def unwatch() -> None:
        with _lock:
            _watchers.get(context, set()).discard(wake)

    return unwatch
