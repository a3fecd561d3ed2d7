"""wait_for_readback: wait on a monitor until a readback reaches its target, and its traces.

`ReadbackWait` is the wait itself, fed monitor updates and judged on demand: the function
wait_for_readback drives one in its own thread; the set path drives many at once from the
calling thread (a validation that is exactly a wait_for_readback partial needs no thread).

Inside ``with recording_traces() as traces:`` every wait_for_readback run in that context
(thread, or a thread started with a copy of it) also keeps each readback update it saw, for
a journal to record and a calibration to fit (`epics_pva.tools.measure.fit_from_journal`).
"""

from __future__ import annotations

import contextvars
import logging
import math
import numbers
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from p4p.client.thread import Context

from .. import _cancel as _cancel
from ..results import show
from ..transport import CallerQueue, Monitor, check_name, check_open, watch
from ._readings import Alarm, alarm_of

__all__ = [
    "ReadbackTrace", "ReadbackWait", "TraceList", "recording_traces", "wait_for_readback",
    "wait_parameters_problem",
]

_log = logging.getLogger("epics_pva.core._validation")  # where these waits have always logged


class ReadbackTrace(dict[str, Any]):
    """The readback updates one wait_for_readback saw, JSON-ready: ``{"readback": PV, "set_pv":
    PV, "set_value": number, "tolerance": number, "offset": number, "count_down": s, "start":
    epoch s, "samples": [[server time s, value, client time s], ...]}``.

    `readback`, `tolerance`, `offset` and `count_down` are the wait's own keywords: enough to
    wait for the same readback again (pva-journal restore --validate does).

    Server time is the update's timestamp, client time this host's clock when it was handled:
    their smallest difference bounds the clock offset a fit needs to place the put.
    """


class TraceList(list[Any]):
    """The traces recorded in one `recording_traces` block, in order; `last` is the latest or None."""

    @property
    def last(self) -> ReadbackTrace | None:
        return self[-1] if self else None


_TRACES: contextvars.ContextVar[TraceList | None] = contextvars.ContextVar("epics_pva_traces", default=None)


@contextmanager
def recording_traces() -> Iterator[TraceList]:
    """Collect a ReadbackTrace of every wait_for_readback run in this context until the block ends."""
    traces = TraceList()
    token = _TRACES.set(traces)
    try:
        yield traces
    finally:
        _TRACES.reset(token)


def _sample(update: Any) -> list[float] | None:
    """[server time s, value, client time s] of a scalar update; None for arrays or non-numbers."""
    try:
        value = float(update)
    except (TypeError, ValueError):
        return None
    stamp = float(getattr(update, "timestamp", math.nan) or math.nan)
    if not (math.isfinite(value) and math.isfinite(stamp)):
        return None
    return [stamp, value, time.time()]


def _as_number(value: Any) -> float | np.ndarray:
    """A readback as a float (or float array) to compare with the target."""
    if isinstance(value, np.ndarray):
        return np.array(value, dtype=float)
    return float(value)


def _real(value: Any) -> float | None:
    """A real number as a float (None for what is not one: bools, strings, Decimal, arrays)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        return None
    try:
        number = float(value)
    except Exception:  # noqa: BLE001 - a Real whose __float__ raises is no number to wait with
        return None
    return number if type(number) is float else None


def wait_parameters_problem(parameters: Mapping[str, Any]) -> str | None:
    """Why wait_for_readback cannot run with these of its parameters (readback_pv, tolerance,
    count_down, offset: those given), or None."""
    rules: dict[str, tuple[Callable[[float], bool], str]] = {
        "tolerance": (lambda x: 0 <= x < math.inf, "a finite number >= 0"),
        "count_down": (lambda x: 0 < x < math.inf, "a finite number of seconds > 0"),
        "offset": (math.isfinite, "a finite number"),
    }
    if "readback_pv" in parameters:
        name = parameters["readback_pv"]
        why = check_name(name)
        if why is not None:
            return f"wait_for_readback: readback_pv must be a PV name, not {show(name)} ({why})"
    for key, (good, rule) in rules.items():
        if key not in parameters:
            continue
        number = _real(parameters[key])
        if number is None or not good(number):  # NaN fails every rule
            return f"wait_for_readback: {key} must be {rule}, not {show(parameters[key])}"
    return None


class ReadbackWait:
    """One wait for `readback_pv` to come within `tolerance` of `set_value + offset`.

    Updates arrive through `subscribe(work_queue)` (a monitor whose updates run where the
    queue is drained); `judge(now)` says whether it settled (and on what) and raises the wait's
    error once its time is up, or ContextClosedError when `context` was closed. `limit` is the
    monotonic time by which it must be judged again; `changed` is set by every update. With
    `traces` (a TraceList), the wait's ReadbackTrace is appended to it at once.
    """

    def __init__(self, set_pv: str, set_value: Any, readback_pv: str, tolerance: float, count_down: float,
                 offset: float, context: Context, timeout: float | None, traces: TraceList | None = None,
                 changed: Callable[[ReadbackWait], None] | None = None) -> None:
        why = wait_parameters_problem({"readback_pv": readback_pv, "tolerance": tolerance,
                                       "count_down": count_down, "offset": offset})
        if why is not None:
            raise ValueError(f"PV {set_pv}: {why}")
        self.set_pv, self.set_value, self.readback_pv = set_pv, set_value, readback_pv
        self.tolerance, self.count_down, self.offset = tolerance, count_down, offset
        self.context, self.timeout = context, timeout
        self.expected = set_value + offset
        self.start = time.monotonic()
        self.deadline = self.start + count_down
        self.first_deadline = self.deadline if timeout is None else min(self.deadline, self.start + timeout)
        self.doing = f"waiting for readback {readback_pv} of {set_pv}"
        self._latest: list[Any] = []  # last value received, if any
        self._problems: list[BaseException] = []  # disconnects and remote errors seen on the monitor
        self._changed = changed
        self.readback: float | np.ndarray | None = None
        self.alarm = Alarm()  # of the last update judged
        self.trace: ReadbackTrace | None = None
        if traces is not None:
            self.trace = ReadbackTrace(readback=readback_pv, set_pv=set_pv, set_value=_plain(set_value),
                                       tolerance=_plain(tolerance), offset=_plain(offset),
                                       count_down=_plain(count_down), start=time.time(), samples=[])
            traces.append(self.trace)
        self._monitor: Monitor | None = None

    def subscribe(self, work_queue: Any) -> None:
        """Open the readback's monitor (ContextClosedError if the context is closed)."""
        check_open(self.context, self.doing)
        try:
            self._monitor = Monitor(self.context, self.readback_pv, self._on_update, work_queue, unwrap=True)
        except Exception:
            check_open(self.context, self.doing)
            raise

    def _on_update(self, update: Any) -> None:
        if isinstance(update, Exception):
            self._problems.append(update)
        else:
            self._latest[:] = [update]
            if self.trace is not None:
                sample = _sample(update)
                if sample is not None:
                    self.trace["samples"].append(sample)
        if self._changed is not None:
            self._changed(self)

    @property
    def limit(self) -> float:
        """The monotonic time at which the wait gives up if nothing settles it before."""
        return self.deadline if self._latest else self.first_deadline

    def judge(self, now: float, cancel: _cancel.Cancel | None = None) -> tuple[bool, Any]:
        """(True, readback) once settled, (False, None) while it may still settle; raises the
        wait's ValueError once `now` is past its limit, ContextClosedError if the context was
        closed, SetCancelled if `cancel` was."""
        check_open(self.context, self.doing)
        if cancel is not None:
            cancel.check(self.doing)
        if self._latest:
            latest = self._latest[0]
            try:
                self.readback = _as_number(latest)
            except (TypeError, ValueError):
                raise ValueError(
                    f"PV {self.set_pv}: readback {self.readback_pv} = {latest!r} is not a number"
                ) from None
            self.alarm = alarm_of(latest)
            if self.alarm.invalid:
                _log.debug("%s: readback %s = %s ignored: %s", self.set_pv, self.readback_pv, self.readback,
                           self.alarm)
            elif np.all(np.abs(self.readback - self.expected) <= self.tolerance):
                _log.debug("%s: readback %s = %s reached %s after %.3f s", self.set_pv, self.readback_pv,
                           self.readback, self.expected, time.monotonic() - self.start)
                return True, self.readback
        if now < self.limit:
            return False, None
        check_open(self.context, self.doing)  # closed during the last wait: say so, not "too slow"
        if cancel is not None:
            cancel.check(self.doing)
        raise self._failure()

    def _failure(self) -> ValueError:
        set_pv, readback_pv, expected = self.set_pv, self.readback_pv, self.expected
        tolerance, count_down, timeout = self.tolerance, self.count_down, self.timeout
        if self.readback is None:
            why = f"; last monitor error: {self._problems[-1]}" if self._problems else ""
            waited = count_down if timeout is None else min(count_down, timeout)
            return ValueError(
                f"PV {set_pv}: readback {readback_pv} sent no value within {waited:g} s "
                f"(expected {_fmt(expected)}; time limit {count_down:g} s){why}"
            )
        if self.alarm.invalid:
            return ValueError(
                f"PV {set_pv}: readback {readback_pv}: last readback {_fmt(self.readback)} was in "
                f"{self.alarm}, so not taken as settled (expected {_fmt(expected)}, tolerance "
                f"{tolerance:g}; time limit {count_down:g} s)"
            )
        return ValueError(
            f"PV {set_pv}: readback {readback_pv} = {_fmt(self.readback)} did not reach the expected "
            f"value {_fmt(expected)} (tolerance {tolerance:g}) within the time limit of "
            f"{count_down:g} s"
        )

    def close(self) -> None:
        """Close the monitor (safe to call again)."""
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.close()


def wait_for_readback(
    set_pv: str,
    set_value: float,
    readback_pv: str,
    tolerance: float,
    count_down: float,
    offset: float,
    context: Context,
    timeout: float | None,
) -> float | np.ndarray:
    """Wait until ``|readback - (set_value + offset)| <= tolerance`` and return the readback.

    Waits on a monitor of `readback_pv`, checking each update as it arrives, for at most
    `count_down` seconds; raises ValueError naming the setpoint PV, the readback PV, its last
    value, the expected value and the time limit if it does not get there. An update in
    INVALID alarm is never taken as settled, however close its value: the wait goes on for
    a valid one, and if none comes, the error says the last readback was INVALID and why
    ("last readback 3.0 was in alarm INVALID (LINK)"). If the readback PV
    sends no value at all within `timeout` seconds (the network timeout), it stops early. If
    `context` is closed meanwhile (close() or os.fork() in another thread), raises
    ContextClosedError at once: the readback was not judged. If the set_values call it
    validates for is interrupted meanwhile (see epics_pva.cancel), raises SetCancelled at once.

    Its own parameters are checked first (ValueError naming the one that is wrong): a
    `readback_pv` that is a PV name, a finite `tolerance` >= 0, a finite `count_down` > 0 (s),
    a finite `offset`. A set checks them before its first put (see check_configs).
    """
    wait = ReadbackWait(set_pv, set_value, readback_pv, tolerance, count_down, offset, context, timeout,
                        _TRACES.get())
    # A context closed under this wait (close() or os.fork() in another thread) silences the
    # monitor; watch wakes the wait so that it fails at once, blaming no readback.
    check_open(context, wait.doing)
    cancel = _cancel.current()  # the interrupted set's signal: give up the wait at once
    if cancel is not None:
        cancel.check(wait.doing)
    updates = CallerQueue()
    unwatch = watch(context, updates.wake)
    uncancel = cancel.on_cancel(updates.wake) if cancel is not None else None
    try:
        wait.subscribe(updates)
        while True:
            settled, readback = wait.judge(time.monotonic(), cancel)
            if settled:
                return readback  # type: ignore[no-any-return]
            updates.run_next(wait.limit - time.monotonic())
    finally:
        unwatch()
        if uncancel is not None:
            uncancel()
        wait.close()
        updates.drop_pending()
        del wait  # an error's traceback keeps this frame: keep no subscription in it


def _plain(value: Any) -> Any:
    """A set value as JSON-ready Python (a number, or a list for an array)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _fmt(value: float | np.ndarray) -> str:
    """A number for a message: six significant digits, arrays summarised."""
    if isinstance(value, np.ndarray):
        return np.array2string(value, threshold=6, precision=6)
    return f"{value:.6g}"
