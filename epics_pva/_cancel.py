"""A set's cancel signal: the waits of an interrupted set_values call give up at once.

A Python thread cannot be stopped from outside. When a set is interrupted (Ctrl-C raises
KeyboardInterrupt in the main thread, or anything else escapes it), the validation functions
still running for it in threads would go on waiting (a wait_for_readback they call, say).
Each set therefore runs inside ``cancel_scope()``, which gives the threads that work for it
(the caller's context variables go along) one `Cancel`; the set path cancels it when the
call is interrupted, and every wait that looks at it wakes up and gives up:

- `pause(seconds)` instead of ``time.sleep``: True when the set was cancelled meanwhile;
- `current()` in a wait loop: `Cancel.on_cancel(wake)` to be woken, `Cancel.check(doing)` to
  raise `SetCancelled` saying what was given up.

Outside a set (no scope), `pause` is ``time.sleep`` and `current()` is None.

What this cannot mend: Python raises a KeyboardInterrupt between any two bytecodes of the
main thread. Ctrl-C normally finds a set's main thread blocked in its wait for the next
outcome, where it is harmless; one that lands inside the bookkeeping of a lock can leave
that lock held, as Python's documentation warns, and a thread waiting on it then waits for
ever.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import SetCancelled

__all__ = ["Cancel", "SetCancelled", "cancel_scope", "current", "pause"]


class Cancel:
    """One set's cancel signal: set once, wakes every registered waiter."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._wakers: set[Callable[[], None]] = set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Cancel the set: every waiter is woken (safe to call more than once, from any thread)."""
        with self._lock:
            self._event.set()
            wakers, self._wakers = list(self._wakers), set()
        for wake in wakers:
            wake()

    def on_cancel(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` when the set is cancelled (at once if it already is); returns the undo."""
        with self._lock:
            if not self._event.is_set():
                self._wakers.add(wake)

                def forget() -> None:
                    with self._lock:
                        self._wakers.discard(wake)

                return forget
        wake()
        return lambda: None

    def wait(self, seconds: float) -> bool:
        """Sleep `seconds` or until cancelled; True if cancelled."""
        return self._event.wait(max(0.0, seconds))

    def check(self, doing: str) -> None:
        """Raise SetCancelled ("interrupted while <doing>") if the set was cancelled."""
        if self._event.is_set():
            raise SetCancelled(f"the set was interrupted while {doing}")


_CURRENT: contextvars.ContextVar[Cancel | None] = contextvars.ContextVar("epics_pva_cancel", default=None)


def current() -> Cancel | None:
    """The cancel signal of the set this thread works for, or None outside a set."""
    return _CURRENT.get()


@contextmanager
def cancel_scope(cancel: Cancel | None = None) -> Iterator[Cancel]:
    """Run the block with `cancel` (a new Cancel if None) as this context's cancel signal.

    Threads started with a copy of this context (``contextvars.copy_context().run``) see it too.
    """
    cancel = Cancel() if cancel is None else cancel
    token = _CURRENT.set(cancel)
    try:
        yield cancel
    finally:
        _CURRENT.reset(token)


def pause(seconds: float) -> bool:
    """time.sleep(seconds), cut short when this thread's set is cancelled; True if it was."""
    cancel = _CURRENT.get()
    if cancel is None:
        time.sleep(seconds)
        return False
    return cancel.wait(seconds)
