"""The step test, the one writer: move each setpoint by a step and back, fit its readback's response.

Only with ``write_test=True`` and within the PV's control limits; the setpoint is put back
even if recording fails. Every put goes through ``epics_pva.Interface.set_values`` (see
epics_pva.tools._writes), with its guards: an interface in read-only mode refuses the test.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from p4p.client.thread import Context

from ...errors import InvalidInputError, PutError
from ...results import Status
from .._writes import open_interface, put_failure, write
from ..calibration import StepFit, fit_response
from .recording import Sample, _make_context, _number, _read, _Recorder, _trace

if TYPE_CHECKING:
    from ...core import Interface

__all__ = ["step_test"]

_log = logging.getLogger(__name__)


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
    assert limits is not None  # with no limits the first target was returned
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
    interface: Interface | None = None,
) -> dict[str, dict[str, Any]]:
    """WRITES: step each setpoint of `pairs` by `size` and back, fit its readback's response.

    Refused with InvalidInputError, before anything is written, unless `write_test` is True,
    and if any setpoint cannot move by `size` either way within its control limits. Pairs are
    stepped one at a time: rest `hold`/2 s, step, hold `hold` s, step back, hold `hold` s. The
    setpoint is put back to its value even if recording fails. Returns {setpoint: pair entry}
    with the fitted lag, tau_s, rate_per_s, dead_time_s, offset and fit_quality. `noise`
    ({readback: sigma}) gives fit_quality its yardstick; measured before each step if absent.

    Reads use `context` (else one built from `conf`, None: the environment); every put goes
    through `interface`.set_values (else an Interface built from `conf` and `timeout`). A
    read-only interface sends nothing: the first step is refused (InvalidInputError saying
    read-only); any other put that does not go through raises PutError saying why.
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
    writer = interface if interface is not None else open_interface(conf, "", timeout)
    try:
        current = _read(ctx, list(pairs), timeout)
        targets = {pv: _step_target(pv, current[pv], float(size)) for pv in pairs}
        problems = {pv: why for pv, why in targets.items() if isinstance(why, str)}
        if problems:
            raise InvalidInputError(problems, what="step")
        results = {}
        for set_pv, rbv in pairs.items():
            sigma = (noise or {}).get(rbv)
            results[set_pv] = _step_one(ctx, writer, set_pv, rbv, float(current[set_pv]),
                                        float(targets[set_pv]), hold, sigma)
        return results
    finally:
        if interface is None:
            writer.close()
        if own:
            ctx.close()


def _put(interface: Interface, pv: str, value: float, first: bool = False) -> None:
    """Put one value through interface.set_values; PutError (the first put of a test: a
    refusal, InvalidInputError, when read-only) unless it went through."""
    result = write(interface, {pv: value})[pv]
    if result.status == Status.SET:
        return
    if first and result.status == Status.READ_ONLY:  # this setpoint has not moved: refused
        raise InvalidInputError({pv: f"{put_failure(result)}; a step test needs to write"}, what="step")
    raise PutError(pv, value, f"step test put {put_failure(result)}", max(result.attempts, 1))


def _step_one(ctx: Context, interface: Interface, set_pv: str, rbv: str, start: float, target: float,
              hold: float, sigma: float | None) -> dict[str, Any]:
    """Step one setpoint to `target` and back to `start`, recording both; fit the response."""
    recorder = _Recorder(ctx, [set_pv, rbv])
    moved = False
    try:
        recorder.run_until(time.monotonic() + hold / 2)
        up_client = time.time()
        _log.info("step test: %s %g -> %g", set_pv, start, target)
        _put(interface, set_pv, target, first=True)
        moved = True
        recorder.run_until(time.monotonic() + hold)
        down_client = time.time()
        _log.info("step test: %s %g -> %g", set_pv, target, start)
        _put(interface, set_pv, start)
        moved = False
        recorder.run_until(time.monotonic() + hold)
    finally:
        try:
            if moved:
                _put(interface, set_pv, start)
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
