"""Measure a live system over PVAccess for calibration: read-only, unless a step test is asked for.

`measure` monitors each readback and observable for some seconds (every update counted, with
its server timestamp and alarm) and reads each setpoint once, then reports per readback the
update rate (Hz), noise sigma, mean, alarm state and, per setpoint/readback pair, the offset
at rest; it flags every ``wait_for_readback`` config that cannot work with what it measured.
It never puts. `step_test` is the one writer: it moves each setpoint by a step and back,
within the PV's control limits, and only when called with ``write_test=True``; it fits the
readback's lag model, dead time and offset to what it recorded. `main_measure` is the command
line (``--measure SECONDS``, ``--pair SET=RBV``, ``--pv NAME``, ``--env SPEC``, ``--json FILE``,
``--step SIZE``, ``--write-test``, ``--from-journal FILE``); the JSON it writes is
``{"readbacks": {RBV: {...}}, "pairs": {SET: {...}}, "warnings": [...]}``. `fit_from_journal`
fits the same pair entries, with no network at all, from an interface journal whose
validation lines carry readback traces (see `epics_pva.validation.recording_traces`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from p4p.client.thread import Context

from ._cli import bounded, pv_name, seconds
from ._p4p_compat import CallerQueue, pop_lost_first_update
from .calibration import (
    StepFit,
    TraceStats,
    alarm_summary,
    check_wait_config,
    combine_step_fits,
    fit_response,
    trace_stats,
)
from .errors import InvalidInputError, JournalError, PutError, ReadError
from .journal import group_calls, read_journal

__all__ = [
    "Calibration",
    "MeasureTargets",
    "Sample",
    "WaitConfig",
    "add_measure_arguments",
    "build_measure_parser",
    "fit_from_journal",
    "main_measure",
    "measure",
    "record",
    "run_measure",
    "step_test",
    "wait_configs",
]

_log = logging.getLogger(__name__)

QUEUE_SIZE = 256
"""Monitor queue depth asked of the server, so updates are queued, not merged, between drains."""


@dataclass(frozen=True)
class Sample:
    """One monitor update: server timestamp (s since the epoch), value, alarm severity and message."""

    time: float
    value: float
    severity: int = 0
    message: str = ""


@dataclass(frozen=True)
class WaitConfig:
    """What a wait_for_readback validation of one setpoint was configured with (s, value units)."""

    readback_pv: str
    tolerance: float | None = None
    count_down: float | None = None
    offset: float | None = None


@dataclass
class MeasureTargets:
    """What to measure: setpoint -> readback pairs, other PVs, and the wait configs to check."""

    pairs: dict[str, str] = field(default_factory=dict)
    pvs: list[str] = field(default_factory=list)
    configs: dict[str, WaitConfig] = field(default_factory=dict)


@dataclass
class Calibration:
    """Everything measured: per readback/observable, per pair, and the warnings; `as_json()` for files."""

    readbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"readbacks": self.readbacks, "pairs": self.pairs, "warnings": self.warnings,
                "measure_s": self.seconds}


# ---------------------------------------------------------------------------------------
# recording
# ---------------------------------------------------------------------------------------
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
                subscription = context.monitor(
                    name, partial(self._on_update, name), request=f"record[queueSize={QUEUE_SIZE}]",
                    notify_disconnect=True, queue=self._queue)
                self._subscriptions.append(subscription)
                pop_lost_first_update(subscription, self._queue)
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


# ---------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------
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


def _make_context(context: Context | None, conf: Mapping[str, str] | None) -> tuple[Context, bool]:
    if context is not None:
        return context, False
    if conf is not None:
        return Context("pva", conf=dict(conf), useenv=False), True
    return Context("pva"), True


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


# ---------------------------------------------------------------------------------------
# read-only measurement
# ---------------------------------------------------------------------------------------
def _readback_entry(samples: list[Sample], errors: list[str]) -> tuple[dict[str, Any], TraceStats]:
    stats = trace_stats(_trace(samples))
    alarms = alarm_summary((s.severity, s.message) for s in samples)
    entry = {
        "update_rate_hz": stats.update_rate_hz,
        "noise_sigma": stats.noise_sigma,
        "mean": stats.mean,
        "alarm": alarms.as_dict(),
        "updates": max(len(samples) - 1, 0),  # the first value is the current one, not an update
        "samples": len(samples),
        "span_s": stats.span_s,
    }
    if errors:
        entry["monitor_errors"] = list(errors)
    return entry, stats


def measure(
    pairs: Mapping[str, str],
    pvs: Sequence[str] = (),
    seconds: float = 5.0,
    *,
    configs: Mapping[str, Any] | None = None,
    context: Context | None = None,
    conf: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> Calibration:
    """Monitor each readback of `pairs` ({setpoint: readback}) and each of `pvs` for `seconds` s.

    Read-only: setpoints are read once (for the offset at rest), never written. `configs`
    (Badger-style, {setpoint: wait_for_readback partial or dict}) are checked against what was
    measured. Uses `context`, or a client built from `conf`, or the environment's settings.
    Raises ReadError if a setpoint cannot be read, ValueError for a bad `seconds`.
    """
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise InvalidInputError({"seconds": f"the measuring time must be > 0 s, not {seconds!r}"}, what="measure")
    checks = wait_configs(configs or {})
    watched = list(dict.fromkeys([*pairs.values(), *pvs, *(c.readback_pv for c in checks.values())]))
    ctx, own = _make_context(context, conf)
    try:
        setpoints = _read(ctx, list(pairs), timeout)
        started = time.monotonic()
        recorder = _Recorder(ctx, watched)
        try:
            recorder.run_until(started + seconds)
        finally:
            recorder.close()
    finally:
        if own:
            ctx.close()
    result = Calibration(seconds=float(seconds))
    stats: dict[str, TraceStats] = {}
    for name in watched:
        result.readbacks[name], stats[name] = _readback_entry(recorder.samples[name], recorder.errors[name])
    for set_pv, rbv in pairs.items():
        setpoint = _number(setpoints[set_pv])
        mean = stats[rbv].mean
        offset = mean - setpoint if mean is not None and setpoint is not None else None
        result.pairs[set_pv] = {"readback": rbv, "setpoint": setpoint, "offset": offset, "lag": None}
        result.readbacks[rbv]["setpoint"] = set_pv
        result.readbacks[rbv]["offset"] = offset
    checked_readbacks = set()
    for set_pv, cfg in checks.items():
        checked_readbacks.add(cfg.readback_pv)
        measured_offset = result.readbacks[cfg.readback_pv].get("offset")
        if measured_offset is None and set_pv in pairs and pairs[set_pv] == cfg.readback_pv:
            measured_offset = result.pairs[set_pv]["offset"]
        result.warnings += check_wait_config(set_pv, cfg.readback_pv, cfg.tolerance, cfg.count_down,
                                             stats[cfg.readback_pv] if stats[cfg.readback_pv].samples else None,
                                             cfg.offset, measured_offset)
    for name in watched:
        if name in checked_readbacks:
            continue
        if not result.readbacks[name]["samples"]:
            result.warnings.append(f"{name}: sent no value in {seconds:g} s (not connected?)")
        elif result.readbacks[name]["updates"] == 0:
            result.warnings.append(f"{name}: never updated in {seconds:g} s")
    for warning in result.warnings:
        _log.warning("%s", warning)
    return result


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------------------------------
# the step test (writes)
# ---------------------------------------------------------------------------------------
def _limits(value: Any) -> tuple[float, float] | None:
    """A PV's control limits, or None when it publishes none (both zero, or absent)."""
    try:
        low, high = float(value.raw.control.limitLow), float(value.raw.control.limitHigh)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return None if low == high == 0 else (low, high)


def _step_target(set_pv: str, value: Any, size: float) -> float | str:
    """Where a step of `size` takes the setpoint within its limits, or why it cannot go."""
    current = _number(value)
    if current is None:
        return f"current value {value!r} is not a finite number"
    limits = _limits(value)
    for target in (current + size, current - size):
        if limits is None or limits[0] <= target <= limits[1]:
            return target
    return (f"neither {current:g} + {size:g} nor {current:g} - {size:g} is within the control "
            f"limits [{limits[0]:g}, {limits[1]:g}]")


def _step_time(samples: list[Sample], target: float, first: int, fallback: float) -> tuple[float, int]:
    """Server timestamp (s) and index of the first setpoint update from index `first` carrying `target`.

    Matched by arrival order, not by clock, so a server clock that is off from this one does
    not matter; `fallback` (the client's clock) only if the update never came.
    """
    for index in range(first, len(samples)):
        if math.isclose(samples[index].value, target, rel_tol=1e-9, abs_tol=1e-12):
            return samples[index].time, index
    _log.warning("no setpoint update with %g seen: the step time is this client's clock", target)
    return fallback, len(samples)


def step_test(
    pairs: Mapping[str, str],
    size: float,
    *,
    write_test: bool = False,
    hold: float = 3.0,
    noise: Mapping[str, float | None] | None = None,
    context: Context | None = None,
    conf: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> dict[str, dict[str, Any]]:
    """WRITES: step each setpoint of `pairs` by `size` and back, fit its readback's response.

    Refused with InvalidInputError, before anything is written, unless `write_test` is True,
    and if any setpoint cannot move by `size` either way within its control limits. Pairs are
    stepped one at a time: rest `hold`/2 s, step, hold `hold` s, step back, hold `hold` s. The
    setpoint is put back to its value even if recording fails. Returns {setpoint: pair entry}
    with the fitted lag, tau_s, rate_per_s, dead_time_s, offset and fit_quality. `noise`
    ({readback: sigma}) gives fit_quality its yardstick; measured before each step if absent.
    """
    if not write_test:
        raise InvalidInputError(
            {"step": f"a step test of {size!r} writes to {len(pairs)} setpoint(s); it needs "
                     f"write_test=True (--write-test)"}, what="step")
    if not (isinstance(size, (int, float)) and math.isfinite(size) and size > 0):
        raise InvalidInputError({"step": f"the step size must be a finite number > 0, not {size!r}"}, what="step")
    if not (isinstance(hold, (int, float)) and math.isfinite(hold) and hold > 0):
        raise InvalidInputError({"hold": f"the hold time must be > 0 s, not {hold!r}"}, what="step")
    ctx, own = _make_context(context, conf)
    try:
        current = _read(ctx, list(pairs), timeout)
        targets = {pv: _step_target(pv, current[pv], float(size)) for pv in pairs}
        problems = {pv: why for pv, why in targets.items() if isinstance(why, str)}
        if problems:
            raise InvalidInputError(problems, what="step")
        results = {}
        for set_pv, rbv in pairs.items():
            sigma = (noise or {}).get(rbv)
            results[set_pv] = _step_one(ctx, set_pv, rbv, float(current[set_pv]), float(targets[set_pv]),
                                        hold, sigma, timeout)
        return results
    finally:
        if own:
            ctx.close()


def _put(ctx: Context, pv: str, value: float, timeout: float) -> None:
    try:
        ctx.put(pv, value, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure of the put is reported with the PV
        raise PutError(pv, value, f"step test put failed: {exc or type(exc).__name__}") from exc


def _step_one(ctx: Context, set_pv: str, rbv: str, start: float, target: float, hold: float,
              sigma: float | None, timeout: float) -> dict[str, Any]:
    """Step one setpoint to `target` and back to `start`, recording both; fit the response."""
    recorder = _Recorder(ctx, [set_pv, rbv])
    moved = False
    try:
        recorder.run_until(time.monotonic() + hold / 2)
        up_client = time.time()
        _log.info("step test: %s %g -> %g", set_pv, start, target)
        _put(ctx, set_pv, target, timeout)
        moved = True
        recorder.run_until(time.monotonic() + hold)
        down_client = time.time()
        _log.info("step test: %s %g -> %g", set_pv, target, start)
        _put(ctx, set_pv, start, timeout)
        moved = False
        recorder.run_until(time.monotonic() + hold)
    finally:
        try:
            if moved:
                _put(ctx, set_pv, start, timeout)
        finally:
            recorder.close()
    set_samples = recorder.samples[set_pv]
    t_up, index = _step_time(set_samples, target, 1, up_client)  # [0] is the value before the step
    t_down, _ = _step_time(set_samples, start, index + 1, down_client)
    # one fit over both moves: a move back that starts before the readback settled is modelled
    fit = fit_response(start, [(t_up, target), (t_down, start)], _trace(recorder.samples[rbv]), noise=sigma)
    entry = _pair_entry(rbv, fit)
    entry.update({
        "setpoint": start,
        "step": target - start,
        "steps": [{"time": t_up, "from": start, "to": target}, {"time": t_down, "from": target, "to": start}],
    })
    return entry


def _pair_entry(rbv: str, fit: StepFit) -> dict[str, Any]:
    """A pair's JSON entry from a fit: lag, tau_s, rate_per_s, dead_time_s, offset, quality, every model."""
    best = fit.best
    return {
        "readback": rbv,
        "lag": best.lag,
        "tau_s": best.tau_s,
        "rate_per_s": best.rate_per_s,
        "dead_time_s": best.dead_time_s,
        "offset": best.offset,
        "fit_quality": fit.fit_quality(),
        "models": {name: model_fit.as_dict() for name, model_fit in fit.fits.items()},
    }


# ---------------------------------------------------------------------------------------
# fit from a journal of a real run (no network)
# ---------------------------------------------------------------------------------------
_JournalStep = tuple[str, float, float, float, list[list[float]]]
"""(readback, setpoint before, step time on the server's clock s, setpoint after, trace samples)"""


def _journal_steps(path: str | Any, since: float | None, until: float | None
                   ) -> tuple[dict[str, list[_JournalStep]], list[str]]:
    """{setpoint: [step, ...]} and notes on the puts that could not be used.

    A step is an accepted put whose validation recorded a trace; its time is the journal's put
    line (this client's clock), moved onto the server's clock by the trace's smallest
    (client - server) time, which is the clock offset plus the shortest delivery time.
    """
    steps: dict[str, list[_JournalStep]] = {}
    skipped: dict[str, list[str]] = {}
    last_value: dict[str, float] = {}
    for call in group_calls(read_journal(path, since, until)):
        for pv, rec in call.pvs.items():
            if not rec.was_put or rec.read_only:
                continue
            requested = _number(rec.requested)
            before = _number(rec.before) if rec.has_before else last_value.get(pv)
            if requested is not None:
                last_value[pv] = requested
            accepted = any(outcome == "accepted" for _, outcome, _ in rec.attempts)
            trace = rec.validation.trace if rec.validation is not None else None
            why = None
            if not accepted:
                why = "put not accepted"
            elif trace is None or not isinstance(trace.get("readback"), str):
                why = "validation recorded no readback trace"
            elif requested is None or before is None:
                why = "no numeric value before or after the put"
            elif requested == before:
                why = "the put did not change the value"
            if why is not None:
                skipped.setdefault(pv, []).append(why)
                continue
            samples = [s for s in trace.get("samples", []) if isinstance(s, list) and len(s) >= 3]
            if not samples:
                skipped.setdefault(pv, []).append("its trace holds no samples")
                continue
            clock = min(float(s[2]) - float(s[0]) for s in samples)
            steps.setdefault(pv, []).append((trace["readback"], before, rec.last_put - clock, requested, samples))
    for found in steps.values():
        # A validation stops watching once within tolerance, before the readback's plateau: the
        # next trace's first update(s), from before the next put, show where it came to rest.
        for i in range(len(found) - 1):
            rbv, before, when, after, samples = found[i]
            following = found[i + 1]
            rest = [s for s in following[4] if float(s[0]) < following[2] and following[0] == rbv]
            found[i] = (rbv, before, when, after, samples + rest)
    notes = [f"{pv}: {len(whys)} put(s) not fitted ({', '.join(sorted(set(whys)))})"
             for pv, whys in skipped.items()]
    return steps, notes


def fit_from_journal(path: str | Any, since: float | None = None, until: float | None = None) -> Calibration:
    """Fit each setpoint's lag, dead time and offset from an interface journal of a real run.

    Uses every accepted put whose validation line carries a readback trace (server timestamp,
    value per update): each put is one step from the value before it, fitted alone, and a
    setpoint's steps are combined (combine_step_fits). A validation stops watching once its
    readback is within tolerance, so a trace holds the response up to settling, and the rest
    level after it is only the next trace's first update (from before the next put): a ramp
    (`rate`) lag's offset is then known only as well as those few updates tell it. The readback
    rate (Hz) comes from its updates' timestamps and `noise_sigma` is the rms residual of the
    fit (what the model does not explain). Reads only the file: raises JournalError if it
    cannot be read or is corrupt.
    """
    steps, notes = _journal_steps(path, since, until)
    result = Calibration()
    result.warnings += notes
    for set_pv, found in steps.items():
        fits: list[StepFit] = []
        readback = found[0][0]
        intervals: list[float] = []
        problems: list[str] = []
        for rbv, before, when, after, samples in found:
            if rbv != readback:
                problems.append(f"trace of readback {rbv}, not {readback}")
                continue
            times = sorted(float(s[0]) for s in samples)
            intervals += [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
            try:
                fits.append(fit_response(before, [(when, after)], [(float(s[0]), float(s[1])) for s in samples]))
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            result.warnings.append(f"{set_pv}: {len(problems)} step(s) not fitted: {'; '.join(sorted(set(problems)))}")
        if not fits:
            continue
        fit = combine_step_fits(fits)
        rate = 1.0 / float(np.median(intervals)) if intervals else None
        entry = _pair_entry(readback, fit)
        entry.update({"source": "journal", "steps": len(fits)})
        result.pairs[set_pv] = entry
        result.readbacks[readback] = {"update_rate_hz": rate, "noise_sigma": _pooled_residual(fit),
                                      "noise_from": "fit residual", "setpoint": set_pv,
                                      "offset": fit.best.offset, "updates": len(intervals)}
    for warning in result.warnings:
        _log.warning("%s", warning)
    return result


def _pooled_residual(fit: StepFit) -> float | None:
    """The residual sigma of the chosen model over every step: sqrt(sum of squares / (n - 3 per step))."""
    ssr = sum(f.rms_residual ** 2 * f.samples for f in fit.per_step)
    dof = sum(f.samples - 3 for f in fit.per_step)
    return math.sqrt(ssr / dof) if dof > 0 else None


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------
EnvLoader = Callable[[str], MeasureTargets]
"""Turns an --env SPEC into what to measure (pairs, PVs, wait configs)."""


def _pair(text: str) -> tuple[str, str]:
    set_pv, sep, rbv = text.partition("=")
    if not sep or not set_pv or not rbv:
        raise argparse.ArgumentTypeError(f"--pair wants SET=RBV, got {text!r:.80}")
    return pv_name(set_pv), pv_name(rbv)


def add_measure_arguments(parser: argparse.ArgumentParser, common: bool = True) -> None:
    """Add the measurement options to `parser`; `common` adds --env, --write-test and --timeout too
    (leave it False for a parser that has its own)."""
    group = parser.add_argument_group(
        "calibration (read-only unless --step)",
        "--measure SECONDS monitors each readback/observable and reports update rate (Hz), noise "
        "sigma, mean, alarm and offset at rest, and flags wait_for_readback configs that cannot "
        "work; --step SIZE with --write-test also moves each setpoint by SIZE and back and fits "
        "its lag; --from-journal FILE fits the lags from an interface journal instead, offline.")
    group.add_argument("--measure", type=seconds(), default=None, metavar="SECONDS",
                       help="seconds to monitor each readback (read-only; also the hold time of --step)")
    if common:
        group.add_argument("--env", metavar="SPEC", help="a Badger environment to take PVs and configs from")
    group.add_argument("--pair", action="append", default=[], type=_pair, metavar="SET=RBV",
                       help="a setpoint and its readback (repeatable)")
    group.add_argument("--pv", action="append", default=[], metavar="NAME", type=pv_name,
                       help="another PV to measure (repeatable)")
    group.add_argument("--json", metavar="FILE", help="write the calibration as JSON to FILE")
    group.add_argument("--step", type=bounded(above=0), metavar="SIZE",
                       help="WRITES: move each setpoint by SIZE and back and fit the response (needs --write-test)")
    group.add_argument("--from-journal", metavar="FILE",
                       help="fit each setpoint's lag from the puts and validation traces of an interface "
                            "journal (no network)")
    if common:
        group.add_argument("--write-test", action="store_true", help="allow --step to write")
        group.add_argument("--timeout", type=seconds(), default=5.0, help="seconds per network operation (default 5)")


def build_measure_parser(prog: str = "python -m epics_pva.measure") -> argparse.ArgumentParser:
    """The measurement command's parser (--measure defaults to 5 s here)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Measure update rate, noise, mean, alarm and offset of readbacks (read-only); "
        "with --step and --write-test, step each setpoint and fit its readback's lag.",
        epilog="Exit status: 0 nothing flagged, 1 warnings or a PV that cannot be read, 2 misuse "
               "or a refused step.",
    )
    add_measure_arguments(parser)
    return parser


def _summary(result: Calibration) -> str:
    lines = [f"{'PV':32} {'updates':>7} {'rate Hz':>9} {'sigma':>10} {'mean':>12} {'offset':>10} alarm"]
    for name, entry in result.readbacks.items():
        def num(key: str, fmt: str, entry: dict[str, Any] = entry) -> str:
            value = entry.get(key)
            return format(value, fmt) if isinstance(value, float) else "-"
        lines.append(f"{name:32} {entry.get('updates', '-'):>7} {num('update_rate_hz', '9.3f')} "
                     f"{num('noise_sigma', '10.3g')} {num('mean', '12.6g')} {num('offset', '10.3g')} "
                     f"{entry.get('alarm', {}).get('max_severity', '-')}")
    for set_pv, entry in result.pairs.items():
        if entry.get("lag"):
            q = entry["fit_quality"]
            lines.append(f"{set_pv}: lag {entry['lag']} tau_s {entry['tau_s']} rate_per_s {entry['rate_per_s']} "
                         f"dead_time_s {entry['dead_time_s']:.3g} offset {entry['offset']:.3g} "
                         f"R^2 {q['r_squared']:.4f}")
    lines += [f"WARNING: {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def main_measure(argv: Sequence[str] | None = None, env_loader: EnvLoader | None = None,
                 conf: Mapping[str, str] | None = None) -> int:
    """Command line: 0 when nothing was flagged, 1 with warnings, 2 on misuse or a refused step.

    `env_loader` turns --env SPEC into MeasureTargets (the caller knows how environments are
    loaded); `conf` is a p4p client configuration used instead of the environment's EPICS_PVA_*.
    """
    return run_measure(build_measure_parser().parse_args(argv), env_loader, conf)


def run_measure(args: argparse.Namespace, env_loader: EnvLoader | None = None,
                conf: Mapping[str, str] | None = None) -> int:
    """Run what parsed measurement options ask for (see add_measure_arguments); the exit code."""
    if args.from_journal:
        return _run_from_journal(args)
    targets = MeasureTargets(dict(args.pair), list(args.pv))
    if args.env:
        if env_loader is None:
            print("measure: --env needs an environment loader; give --pair/--pv instead", file=sys.stderr)
            return 2
        try:
            loaded = env_loader(args.env)
        except (ImportError, ValueError, OSError) as exc:
            print(f"measure: cannot load environment {args.env}: {exc}", file=sys.stderr)
            return 2
        targets.pairs = {**loaded.pairs, **targets.pairs}
        targets.pvs += [p for p in loaded.pvs if p not in targets.pvs]
        targets.configs = dict(loaded.configs)
    if not (targets.pairs or targets.pvs):
        print("measure: nothing to measure: give --pair SET=RBV, --pv NAME or --env", file=sys.stderr)
        return 2
    if args.step is not None and not args.write_test:
        print(f"measure: --step {args.step:g} writes to the machine and is refused without --write-test",
              file=sys.stderr)
        return 2
    seconds = 5.0 if args.measure is None else args.measure
    ctx, own = _make_context(None, conf)
    try:
        result = measure(targets.pairs, targets.pvs, seconds, configs=targets.configs,
                         context=ctx, timeout=args.timeout)
        if args.step is not None:
            noise = {rbv: result.readbacks[rbv]["noise_sigma"] for rbv in targets.pairs.values()}
            stepped = step_test(targets.pairs, args.step, write_test=True, hold=seconds,
                                noise=noise, context=ctx, timeout=args.timeout)
            for set_pv, entry in stepped.items():
                result.pairs[set_pv].update(entry)
    except InvalidInputError as exc:
        print(f"measure: {exc}", file=sys.stderr)
        return 2
    except (ReadError, PutError) as exc:
        print(f"measure: {exc}", file=sys.stderr)
        return 1
    finally:
        if own:
            ctx.close()
    return _report(result, args.json)


def _run_from_journal(args: argparse.Namespace) -> int:
    """--from-journal FILE: fit offline; misuse if combined with live measuring or a step."""
    live = [flag for flag, given in (("--measure", args.measure is not None), ("--step", args.step is not None),
                                     ("--pair", bool(args.pair)), ("--pv", bool(args.pv)),
                                     ("--env", bool(getattr(args, "env", None)))) if given]
    if live:
        print(f"measure: --from-journal fits a recorded run offline; it takes no {', '.join(live)}",
              file=sys.stderr)
        return 2
    try:
        result = fit_from_journal(args.from_journal)
    except JournalError as exc:
        print(f"measure: {exc}", file=sys.stderr)
        return 2
    if not result.pairs:
        result.warnings.append(f"{args.from_journal}: no put with a readback trace could be fitted")
    return _report(result, args.json)


def _report(result: Calibration, json_path: str | None) -> int:
    """Print the summary, write the JSON if asked; 1 if anything was flagged, else 0."""
    sys.stdout.write(_summary(result))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(result.as_json(), fh, indent=2, allow_nan=False, default=_json_default)
            fh.write("\n")
    return 1 if result.warnings else 0


def _json_default(value: Any) -> Any:
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as JSON")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main_measure())
