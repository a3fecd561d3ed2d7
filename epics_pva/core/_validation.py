"""Validation functions: called after a successful put to check that the machine followed it.

Also what a set checks of its configs before anything is sent (`check_configs`), and how
the settings of a wait_for_readback config are read back from it (`wait_configs`).

A validation function is called as ``fn(set_pv=..., set_value=..., context=..., timeout=...)``
with the interface's ``p4p.client.thread.Context``; it returns what it measured or raises.

Inside ``with recording_traces() as traces:`` every wait_for_readback run in that context
(thread, or a thread started with a copy of it) also keeps each readback update it saw, for
a journal to record and a calibration to fit (`epics_pva.tools.measure.fit_from_journal`).
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import math
import numbers
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from p4p.client.thread import Context

from .. import _cancel as _cancel
from ..errors import InvalidInputError
from ..results import show
from ..transport import CallerQueue, check_name, check_open, pop_lost_first_update, watch
from ._readings import Alarm, alarm_of

__all__ = [
    "ReadbackTrace", "ValidationFunction", "WaitConfig", "check_configs", "recording_traces",
    "wait_configs", "wait_for_readback", "wait_parameters_problem",
]

_log = logging.getLogger(__name__)


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
    a finite `offset`. A set checks them before
    its first put (see check_configs).
    """
    why = wait_parameters_problem({"readback_pv": readback_pv, "tolerance": tolerance,
                                   "count_down": count_down, "offset": offset})
    if why is not None:
        raise ValueError(f"PV {set_pv}: {why}")
    expected = set_value + offset
    start = time.monotonic()
    deadline = start + count_down
    first_deadline = deadline if timeout is None else min(deadline, start + timeout)
    latest: list[Any] = []  # last value received, if any
    problems: list[BaseException] = []  # disconnects and remote errors seen on the monitor
    traces = _TRACES.get()
    trace = None
    if traces is not None:
        trace = ReadbackTrace(readback=readback_pv, set_pv=set_pv, set_value=_plain(set_value),
                              tolerance=_plain(tolerance), offset=_plain(offset),
                              count_down=_plain(count_down), start=time.time(), samples=[])
        traces.append(trace)

    def on_update(update: Any) -> None:
        if isinstance(update, Exception):
            problems.append(update)
        else:
            latest[:] = [update]
            if trace is not None:
                sample = _sample(update)
                if sample is not None:
                    trace["samples"].append(sample)

    # A context closed under this wait (close() or os.fork() in another thread) silences the
    # monitor; watch wakes the wait so that it fails at once, blaming no readback.
    doing = f"waiting for readback {readback_pv} of {set_pv}"
    check_open(context, doing)
    cancel = _cancel.current()  # the interrupted set's signal: give up the wait at once
    if cancel is not None:
        cancel.check(doing)
    updates = CallerQueue()
    unwatch = watch(context, updates.wake)
    uncancel = cancel.on_cancel(updates.wake) if cancel is not None else None
    subscription = None
    readback: float | np.ndarray | None = None
    alarm = Alarm()  # of the last update judged
    try:
        try:
            subscription = context.monitor(readback_pv, on_update, notify_disconnect=True,
                                           queue=updates)
        except Exception:
            check_open(context, doing)
            raise
        pop_lost_first_update(subscription, updates)
        while True:
            check_open(context, doing)
            if cancel is not None:
                cancel.check(doing)
            if latest:
                try:
                    readback = _as_number(latest[0])
                except (TypeError, ValueError):
                    raise ValueError(
                        f"PV {set_pv}: readback {readback_pv} = {latest[0]!r} is not a number"
                    ) from None
                alarm = alarm_of(latest[0])
                if alarm.invalid:
                    _log.debug("%s: readback %s = %s ignored: %s", set_pv, readback_pv, readback, alarm)
                elif np.all(np.abs(readback - expected) <= tolerance):
                    _log.debug("%s: readback %s = %s reached %s after %.3f s",
                               set_pv, readback_pv, readback, expected, time.monotonic() - start)
                    return readback
            limit = deadline if latest else first_deadline
            now = time.monotonic()
            if now >= limit:
                break
            updates.run_next(limit - now)
        check_open(context, doing)  # closed during the last wait: say so, not "too slow"
        if cancel is not None:
            cancel.check(doing)
    finally:
        unwatch()
        if uncancel is not None:
            uncancel()
        if subscription is not None:
            subscription.close()
        updates.drop_pending()
        del subscription  # an error's traceback keeps this frame: keep no subscription in it

    if readback is None:
        why = f"; last monitor error: {problems[-1]}" if problems else ""
        waited = count_down if timeout is None else min(count_down, timeout)
        raise ValueError(
            f"PV {set_pv}: readback {readback_pv} sent no value within {waited:g} s "
            f"(expected {_fmt(expected)}; time limit {count_down:g} s){why}"
        )
    if alarm.invalid:
        raise ValueError(
            f"PV {set_pv}: readback {readback_pv}: last readback {_fmt(readback)} was in "
            f"{alarm}, so not taken as settled (expected {_fmt(expected)}, tolerance "
            f"{tolerance:g}; time limit {count_down:g} s)"
        )
    raise ValueError(
        f"PV {set_pv}: readback {readback_pv} = {_fmt(readback)} did not reach the expected "
        f"value {_fmt(expected)} (tolerance {tolerance:g}) within the time limit of "
        f"{count_down:g} s"
    )


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


# ---- what a set checks of its configs before anything is sent ----------------------------------

ValidationFunction = Callable[..., Any]
"""Called as fn(set_pv=..., set_value=..., context=..., timeout=...) after a successful put."""

# what every validation function is called with; the values only matter to bind()
_CALL = {"set_pv": "PV", "set_value": 0.0, "context": None, "timeout": 1.0}


def _cannot_call(fn: Any) -> str | None:
    """Why `fn` cannot be called as a validation function, or None if it can (or cannot be told)."""
    if not callable(fn):
        return f"validation function {fn!r} is not callable"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # some builtins publish no signature: nothing to check before the call
    try:
        signature.bind(**_CALL)
    except TypeError as exc:
        return (f"validation function {fn!r} cannot be called with "
                f"(set_pv=, set_value=, context=, timeout=): {exc}")
    return None


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


def _wait_parameters(fn: Any) -> dict[str, Any] | None:
    """The parameters a (nested) functools.partial of wait_for_readback binds, or None for any
    other function (and for a partial that cannot bind: _cannot_call says why)."""
    args: list[Any] = []
    keywords: dict[str, Any] = {}
    while isinstance(fn, partial):
        args, keywords = [*fn.args, *args], {**fn.keywords, **keywords}
        fn = fn.func
    if fn is not wait_for_readback:
        return None
    try:
        return dict(inspect.signature(wait_for_readback).bind_partial(*args, **keywords).arguments)
    except TypeError:
        return None


def check_configs(
    inputs: Mapping[str, Any], configs: Mapping[str, Any] | None
) -> dict[str, ValidationFunction | None]:
    """The validation function of each input PV; InvalidInputError if configs is malformed.

    Each function's signature is bound to the call's keywords first, so a function missing
    an argument (say a partial of wait_for_readback without `tolerance`) is refused before
    any put is sent, not found after the machine has moved. The parameters a partial of
    wait_for_readback binds are checked too (a NaN, negative or infinite tolerance, a NaN,
    infinite, negative or zero count_down, a NaN or infinite offset, a readback_pv that is no
    PV name, a parameter of the wrong type), the error naming the PV and the parameter.
    """
    if configs is None:
        return {}
    if not isinstance(configs, Mapping):
        raise InvalidInputError(
            {"configs": f"expected a dict of PV name -> function, not {type(configs).__name__}"})
    problems = {
        pv: why for pv, fn in configs.items()
        if pv in inputs and fn is not None and (why := _cannot_call(fn) or _bad_wait(fn)) is not None
    }
    if problems:
        raise InvalidInputError(problems)
    unused = [pv for pv in configs if pv not in inputs]
    if unused:  # normal for Badger: a routine often sets a subset of the variables
        _log.debug("no input for configs key(s) %s: their validation is not run", unused)
    return {pv: fn for pv, fn in configs.items() if pv in inputs}


def _bad_wait(fn: Any) -> str | None:
    parameters = _wait_parameters(fn)
    return None if parameters is None else wait_parameters_problem(parameters)


# ---- the settings of a wait_for_readback config ---------------------------------------------------

@dataclass(frozen=True)
class WaitConfig:
    """What a wait_for_readback validation of one setpoint was configured with (s, value units)."""

    readback_pv: str
    tolerance: float | None = None
    count_down: float | None = None
    offset: float | None = None


def wait_configs(configs: Mapping[str, Any]) -> dict[str, WaitConfig]:
    """The wait_for_readback settings of each setpoint in a Badger-style configs dict.

    Accepts ``functools.partial(wait_for_readback, readback_pv=..., tolerance=..., ...)``
    (nested partials too), plain dicts with those keys or WaitConfigs; others are skipped.
    """
    found: dict[str, WaitConfig] = {}
    for set_pv, config in configs.items():
        keywords: dict[str, Any] = {}
        if isinstance(config, WaitConfig):
            found[set_pv] = config
            continue
        if isinstance(config, Mapping):
            keywords = dict(config)
        else:
            while isinstance(config, partial):
                keywords = {**config.keywords, **keywords}
                config = config.func
        readback = keywords.get("readback_pv")
        if isinstance(readback, str):
            found[set_pv] = WaitConfig(readback, keywords.get("tolerance"), keywords.get("count_down"),
                                       keywords.get("offset"))
    return found
