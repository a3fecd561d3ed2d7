"""The read-only measurement at rest: update rate, noise, mean, alarm and offset of each readback.

`measure` never puts. It takes setpoint -> readback pairs, other PVs and Badger-style
wait_for_readback configs (`wait_configs`), and returns a `Calibration`, the result whose JSON
every part of `epics_pva.tools.measure` writes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from p4p.client.thread import Context

from ...core import WaitConfig, wait_configs
from ...errors import InvalidInputError
from ..calibration import TraceStats, alarm_summary, check_wait_config, trace_stats
from .recording import Sample, _make_context, _number, _read, _Recorder, _trace

__all__ = ["Calibration", "MeasureTargets", "WaitConfig", "measure", "wait_configs"]

_log = logging.getLogger(__name__)


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


def _readback_entry(samples: list[Sample], errors: list[str]) -> tuple[dict[str, Any], TraceStats]:
    stats = trace_stats(_trace(samples))
    alarms = alarm_summary((s.severity, s.message) for s in samples)
    entry: dict[str, Any] = {
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
