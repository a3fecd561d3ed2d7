"""Fit each setpoint's lag from an interface journal of a real run, with no network at all.

The journal's validation lines carry readback traces (see
`epics_pva.core.recording_traces`); the result has the pair entries of the step test.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ...journal import group_calls, read_journal
from ..calibration import StepFit, combine_step_fits, fit_response
from .at_rest import Calibration
from .recording import _number
from .steps import _pair_entry

__all__ = ["fit_from_journal"]

_log = logging.getLogger(__name__)


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
            put_time = rec.last_put  # None: the PV was not put in this call (rec.was_put)
            if put_time is None or rec.read_only:
                continue
            requested = _number(rec.requested)
            before = _number(rec.before) if rec.has_before else last_value.get(pv)
            if requested is not None:
                last_value[pv] = requested
            accepted = any(outcome == "accepted" for _, outcome, _ in rec.attempts)
            trace = rec.validation.trace if rec.validation is not None else None
            if not accepted:
                why = "put not accepted"
            elif trace is None or not isinstance(trace.get("readback"), str):
                why = "validation recorded no readback trace"
            elif requested is None or before is None:
                why = "no numeric value before or after the put"
            elif requested == before:
                why = "the put did not change the value"
            else:
                samples = [s for s in trace.get("samples", []) if isinstance(s, list) and len(s) >= 3]
                if samples:
                    clock = min(float(s[2]) - float(s[0]) for s in samples)
                    steps.setdefault(pv, []).append((trace["readback"], before, put_time - clock, requested,
                                                     samples))
                    continue
                why = "its trace holds no samples"
            skipped.setdefault(pv, []).append(why)
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
