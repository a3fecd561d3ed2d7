"""The p4p client context of one Interface: opened lazily, closed safely.

Fork safety: a child forked while this process holds an open p4p context hangs on its first
p4p call, so every live context is closed just before a fork and reopened lazily after it.
Operations in flight in the parent's other threads then fail at once as "closed under
them" (see _closing.py); keeping the context across the fork is not possible.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping

from .._fork import at_fork
from ._closing import mark_closed
from ._p4p import ClientContext, close_every_context
from ._pvxs_settings import client_settings

__all__ = ["Connection"]

_log = logging.getLogger(__name__)

_live: weakref.WeakSet[Connection] = weakref.WeakSet()
_live_lock = threading.Lock()


def _before_fork() -> None:
    _live_lock.acquire()
    for connection in list(_live):
        connection.lock.acquire()  # held across the fork: no thread can be mid-creation
        if connection._context is not None and connection._pid == os.getpid():
            mark_closed(connection._context)  # waiters fail now, not at their time limit
            connection._context.close()
        connection._context = None
        connection._forget()
    strays = close_every_context()  # those of Interfaces dropped without close()
    if strays:
        _log.debug("closed %d p4p client context(s) left open by dropped Interfaces before a fork", strays)


def _after_fork_in_parent() -> None:
    for connection in list(_live):
        connection.lock.release()
    _live_lock.release()


def _after_fork_in_child() -> None:
    for connection in list(_live):
        connection.lock = threading.RLock()  # the parent's threads are gone; start clean
        connection._pid = os.getpid()
    _live_lock.release()


at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


class Connection:
    """One lazily created client context (`conf`, or the environment if None).

    `on_close` is called (under the lock) whenever the context is dropped, so the owner can
    forget what it learnt through it. A `prefix` is put before every PV name on the wire.
    """

    def __init__(self, conf: Mapping[str, str] | None,
                 on_close: Callable[[], None] = lambda: None, prefix: str = "") -> None:
        self.conf = dict(conf) if conf is not None else None
        self.prefix = prefix
        self._forget = on_close
        self.lock = threading.RLock()
        self._context: ClientContext | None = None
        self._built_from: dict[str, str] = {}  # the client settings the open context was built from
        self._pid = os.getpid()
        with _live_lock:
            _live.add(self)

    @property
    def connected(self) -> bool:
        """True while a context is open."""
        return self._context is not None

    def client_conf(self) -> dict[str, str]:
        """The client settings of the open context, or those the next context would be built from.

        `conf` if given, else the EPICS_PVA_* environment as it is now; a context is built
        from exactly these, so what a rehearsal checks here is what its searches use.
        """
        with self.lock:
            if self._context is not None and self._pid == os.getpid():
                return dict(self._built_from)
            return client_settings(self.conf)

    def close(self) -> None:
        """Close the context (at once: see ClientContext); the next use reopens it."""
        with self.lock:
            self._drop()

    def _drop(self) -> None:
        context, self._context = self._context, None
        if self._pid != os.getpid():
            self._forget()
            return  # inherited from the parent process: its threads do not exist here
        if context is not None:
            mark_closed(context)  # wake waiters on it first: they fail, saying why
        self._forget()  # after marking: no check can start on this context again
        if context is not None:
            context.close()
            _log.debug("closed p4p client context")

    def context(self) -> ClientContext:
        """The client context, created on first use (and again after close() or a fork)."""
        with self.lock:
            if self._pid != os.getpid():  # forked without the at-fork hooks running
                self._drop()
                self._pid = os.getpid()
            if self._context is None:
                # the environment is read once, here, and the context built from that copy
                built_from = client_settings(self.conf)
                self._context = ClientContext("pva", conf=built_from, useenv=False, prefix=self.prefix)
                self._built_from = built_from
                _log.debug("opened p4p client context")
            return self._context
