"""Observables computed by Python functions, each step, without ever stalling the update loop.

A function gets its observable's `inputs` (as the config names them) as keyword arguments and
returns a number. Each call runs on a worker thread of its own observable; the update loop
waits for the calls of one step at most `budget` seconds in all. A call still running then is
counted (`over_budget`) and warned about; its result, when it comes, is used at the next step,
and no new call of that function starts while one runs (each step it misses is `skipped`).
The other PVs are updated on time all along. A function that raises puts its PV in INVALID
alarm with the exception's message until a call succeeds again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

__all__ = ["FUNCTION_ALARM_STATUS", "FunctionRunner", "FunctionStats", "ObservableFunction", "Outcome"]

FUNCTION_ALARM_STATUS = 3
"""alarm.status of a Python observable whose function failed (3: RECORD, its processing)."""

_log = logging.getLogger(__name__)

ObservableFunction = Callable[..., Any]
"""A Python observable: called with its inputs as keyword arguments, returns a number."""


@dataclass
class FunctionStats:
    """What one Python observable's function did: calls made and finished, errors, calls that ran
    past the step's budget, steps skipped while one still ran, the longest call (s)."""

    calls: int = 0
    errors: int = 0
    over_budget: int = 0
    skipped: int = 0
    max_seconds: float = 0.0
    last_error: str = ""


@dataclass(frozen=True)
class Outcome:
    """One finished call: its value (None when it failed) or its error message."""

    value: float | None
    error: str | None


class FunctionRunner:
    """Calls the Python observables' functions on worker threads, within a time budget per step."""

    def __init__(self, functions: Mapping[str, ObservableFunction], budget: float) -> None:
        self._functions = dict(functions)
        self.budget = budget
        self.stats = {name: FunctionStats() for name in self._functions}
        self._running: dict[str, Future[Outcome]] = {}
        self._lock = threading.Lock()  # the stats, written by the worker threads too
        self._pool = (ThreadPoolExecutor(max_workers=len(self._functions), thread_name_prefix="softioc-observable")
                      if self._functions else None)

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def run(self, inputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Outcome]:
        """Call each named function with its inputs; the outcomes ready within the budget (and
        those of calls from earlier steps that finished since), by observable name."""
        pool = self._pool
        if pool is None or not inputs:
            return {}
        ready: dict[str, Outcome] = {}
        started: list[str] = []
        for name, kwargs in inputs.items():
            running = self._running.get(name)
            if running is not None:
                if not running.done():
                    with self._lock:
                        self.stats[name].skipped += 1
                    continue
                ready[name] = running.result()  # a late call's result: used unless this step's is in time
                del self._running[name]
            self._running[name] = pool.submit(self._call, name, dict(kwargs))
            started.append(name)
        if started:
            wait([self._running[name] for name in started], timeout=self.budget)
        for name in started:
            future = self._running[name]
            if future.done():
                ready[name] = future.result()
                del self._running[name]
            else:
                self._over_budget(name)
        return ready

    def close(self) -> None:
        """Stop the workers; a call still running finishes on its own, its result unused."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._running.clear()

    def _call(self, name: str, kwargs: dict[str, Any]) -> Outcome:
        began = time.perf_counter()
        try:
            result = self._functions[name](**kwargs)
            value = float(result)
        except Exception as exc:  # noqa: BLE001 - the user's code: any failure becomes the PV's alarm
            outcome = Outcome(None, f"{type(exc).__name__}: {exc}"[:200])
        else:
            outcome = Outcome(value, None)
        took = time.perf_counter() - began
        with self._lock:
            stats = self.stats[name]
            stats.calls += 1
            stats.max_seconds = max(stats.max_seconds, took)
            if outcome.error is not None:
                stats.errors += 1
                stats.last_error = outcome.error
                first = stats.errors == 1
        if outcome.error is not None and first:
            _log.warning("Python observable %s failed: %s (its PV is INVALID until a call succeeds)",
                         name, outcome.error)
        return outcome

    def _over_budget(self, name: str) -> None:
        with self._lock:
            stats = self.stats[name]
            stats.over_budget += 1
            count = stats.over_budget
        if count & (count - 1) == 0:  # the 1st, 2nd, 4th, 8th...: warned about, never a flood
            _log.warning("Python observable %s ran past its budget of %.3g s (%d times so far): its update is "
                         "skipped until the call returns; the other PVs are updated on time", name, self.budget,
                         count)

