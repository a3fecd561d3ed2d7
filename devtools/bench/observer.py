"""An observer: every update of some PVs, with the IOC's post time, from its own p4p context.

The soft IOC stamps each readback with time.time() when it posts it; this host's clock is the
same one, so `time.time()` at some event minus that stamp is the delay since the post.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from p4p.client.thread import Context

MONITOR_REQUEST = "record[queueSize=1000]"
"""A deep queue: p4p's default squashes updates when a callback falls behind."""


class Observer:
    """Monitors PVs and keeps (post stamp, value) of every update, in arrival order."""

    def __init__(self, conf: Mapping[str, str]) -> None:
        self._ctx = Context("pva", conf=dict(conf), useenv=False)
        self._cond = threading.Condition()
        self._updates: dict[str, list[tuple[float, float]]] = {}
        self._subs: dict[str, Any] = {}

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_update(self, name: str, value: Any) -> None:
        if isinstance(value, Exception):
            return
        with self._cond:
            self._updates[name].append((float(value.timestamp), float(value)))
            self._cond.notify_all()

    def watch(self, names: Iterable[str], timeout: float = 10.0) -> list[str]:
        """Start monitoring `names`; returns those not watched before, once each sent a value."""
        new = [n for n in names if n not in self._subs]
        with self._cond:
            for name in new:
                self._updates[name] = []
        for name in new:
            self._subs[name] = self._ctx.monitor(
                name, partial(self._on_update, name), request=MONITOR_REQUEST)
        with self._cond:
            if not self._cond.wait_for(lambda: all(self._updates[n] for n in new), timeout):
                raise TimeoutError(f"observer: no first value within {timeout:g} s")
        return new

    def unwatch(self, names: Iterable[str]) -> None:
        """Stop monitoring `names` (their recorded updates are kept)."""
        for name in names:
            sub = self._subs.pop(name, None)
            if sub is not None:
                sub.close()

    def mark(self, name: str) -> int:
        """How many updates of `name` so far: look only at later ones."""
        with self._cond:
            return len(self._updates[name])

    def updates(self, name: str, since: int = 0) -> list[tuple[float, float]]:
        """(post stamp, value) of each update of `name` from number `since` on."""
        with self._cond:
            return list(self._updates[name][since:])

    def value(self, name: str) -> float:
        """The latest value of `name`."""
        with self._cond:
            return self._updates[name][-1][1]

    def reached(self, name: str, target: float, tolerance: float, since: int, timeout: float) -> float:
        """The post stamp of the first update from `since` on within `tolerance` of `target`.

        Waits at most `timeout` seconds for it; raises TimeoutError naming the PV otherwise.
        """
        def first() -> float | None:
            for stamp, value in self._updates[name][since:]:
                if abs(value - target) <= tolerance:
                    return stamp
            return None

        deadline = time.monotonic() + timeout
        with self._cond:
            while (stamp := first()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"observer: {name} did not reach {target:g} within {timeout:g} s")
                self._cond.wait(left)
            return stamp

    def close(self) -> None:
        """Close every subscription and the context."""
        self.unwatch(list(self._subs))
        self._ctx.close()
