"""Run validation functions with a time limit, in a bounded number of threads.

A Python thread cannot be stopped: a validation function that overruns its limit is left to
finish on its own (a "stray"), counted and logged. Each running validation holds one of
`limit` slots until it really ends, strays included, so at most `limit` validation threads
exist at once; a call that finds every slot taken waits for one within its own time limit.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .._fork import at_fork
from ..errors import ValidationTimeout

__all__ = ["TimeLimit", "ValidationTimeout"]

_log = logging.getLogger(__name__)


_live: weakref.WeakSet[TimeLimit] = weakref.WeakSet()


def _renew_in_child() -> None:
    # the parent's threads do not exist in a forked child: their slots are free again there
    for limiter in list(_live):
        limiter._reset()


at_fork(after_in_child=_renew_in_child)


class TimeLimit:
    """Runs functions each in its own thread, at most `limit` at once, waiting at most a timeout."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.limit)
        self.strays = 0  # validations that overran their limit, in this process's life
        self.running_strays = 0  # of those, still running now

    def run(self, name: str, fn: Callable[..., Any], kwargs: dict[str, Any], timeout: float) -> Any:
        """fn(**kwargs) if it returns within `timeout` s; raises what it raises, or ValidationTimeout."""
        deadline = time.monotonic() + timeout
        if not self._slots.acquire(timeout=timeout):
            raise ValidationTimeout(
                f"no validation thread free within {timeout:g} s (validation_timeout): "
                f"{self.limit} already running, {self.running_strays} of them overran their limit")
        box: dict[str, Any] = {}
        done = threading.Event()
        state = {"stray": False}

        def target() -> None:
            try:
                box["result"] = fn(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller (or logged if it left)
                box["error"] = exc
            finally:
                with self._lock:
                    stray = state["stray"]
                    if stray:
                        self.running_strays -= 1
                    done.set()
                self._slots.release()
                if stray:
                    _log.warning("validation of %s ended %.3f s after its limit (%s)", name,
                                 time.monotonic() - deadline,
                                 f"raised {box['error']!r}" if "error" in box else "returned")

        # the caller's context variables go along (a recording_traces block sees this validation)
        thread = threading.Thread(target=contextvars.copy_context().run, args=(target,),
                                  name=f"epics_pva-validate-{name}", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._slots.release()
            raise
        finished = done.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            if not finished and not done.is_set():
                state["stray"] = True
                self.strays += 1
                self.running_strays += 1
        if state["stray"]:
            _log.warning("validation of %s still running after %g s (validation_timeout): left to "
                         "finish on its own (%d stray(s) running)", name, timeout, self.running_strays)
            raise ValidationTimeout(
                f"validation function still running after {timeout:g} s (validation_timeout); "
                "left to finish on its own")
        if "error" in box:
            raise box["error"]
        return box.get("result")
