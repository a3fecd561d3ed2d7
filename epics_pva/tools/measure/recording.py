"""Recording monitors and reading PVs once, for the measurement and the step test (read-only).

Every monitor update of each PV is kept as a `Sample` (server timestamp, value, alarm),
drained in the calling thread, with a queue deep enough that the server does not merge them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from p4p.client.thread import Context

from ...errors import ReadError
from ...transport import CallerQueue, ClientContext, Monitor

__all__ = ["QUEUE_SIZE", "Sample", "record"]

QUEUE_SIZE = 256
"""Monitor queue depth asked of the server, so updates are queued, not merged, between drains."""


@dataclass(frozen=True)
class Sample:
    """One monitor update: server timestamp (s since the epoch), value, alarm severity and message."""

    time: float
    value: float
    severity: int = 0
    message: str = ""



def _sample(update: Any) -> Sample:
    """A monitor update as a Sample; a value that is not a number is NaN (counted, not measured)."""
    try:
        value = float(update)
    except (TypeError, ValueError):
        value = math.nan
    raw = getattr(update, "raw", None)
    message = ""
    if raw is not None:
        try:
            message = str(raw["alarm.message"])
        except (KeyError, TypeError, ValueError):
            message = ""
    return Sample(float(getattr(update, "timestamp", math.nan)), value,
                  int(getattr(update, "severity", 0) or 0), message)


class _Recorder:
    """Monitors of several PVs whose every update is kept, drained in the calling thread."""

    def __init__(self, context: Context, names: Iterable[str]) -> None:
        self.samples: dict[str, list[Sample]] = {}
        self.errors: dict[str, list[str]] = {}
        self._queue = CallerQueue()  # drains monitor updates in the waiting thread
        self._subscriptions = []
        try:
            for name in dict.fromkeys(names):
                self.samples[name], self.errors[name] = [], []
                self._subscriptions.append(Monitor(
                    context, name, partial(self._on_update, name), self._queue,
                    request=f"record[queueSize={QUEUE_SIZE}]", unwrap=True))
        except BaseException:
            self.close()
            raise

    def _on_update(self, name: str, update: Any) -> None:
        if isinstance(update, Exception):
            if self.samples[name]:  # p4p reports "disconnected" once before the first value
                self.errors[name].append(str(update) or type(update).__name__)
        else:
            self.samples[name].append(_sample(update))

    def run_until(self, deadline: float) -> None:
        """Handle updates until the monotonic `deadline` (s)."""
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            self._queue.run_next(deadline - now)

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
        self._queue.drop_pending()


def record(context: Context, names: Iterable[str], seconds: float) -> dict[str, list[Sample]]:
    """Every monitor update of each PV during `seconds` s (the current value first); read-only."""
    recorder = _Recorder(context, names)
    try:
        recorder.run_until(time.monotonic() + seconds)
    finally:
        recorder.close()
    return recorder.samples


def _trace(samples: Sequence[Sample]) -> list[tuple[float, float]]:
    return [(s.time, s.value) for s in samples if math.isfinite(s.value)]


def _make_context(context: Context | None, conf: Mapping[str, str] | None) -> tuple[Context, bool]:
    if context is not None:
        return context, False
    if conf is not None:
        return ClientContext("pva", conf=dict(conf), useenv=False), True
    return ClientContext("pva"), True


def _read(context: Context, names: Sequence[str], timeout: float) -> dict[str, Any]:
    """Read PVs once; ReadError naming each PV that could not be read."""
    if not names:
        return {}
    values = context.get(list(names), timeout=timeout, throw=False)
    failures = {n: (str(v) or type(v).__name__) for n, v in zip(names, values, strict=True) if isinstance(v, Exception)}
    good = {n: v for n, v in zip(names, values, strict=True) if not isinstance(v, Exception)}
    if failures:
        raise ReadError(failures, good)
    return good


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
