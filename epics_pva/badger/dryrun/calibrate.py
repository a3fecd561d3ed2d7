"""A mirror calibrated from what was measured, and the comparison of its response with the real one.

The calibration is the JSON of ``pva-preflight --measure``/``--step``/``--from-journal``; the
responses are computed from the lag models of `epics_pva.tools.calibration` (no network, no simulator).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...tools.calibration import LAG_MODELS
from ...tools.environment import TOLERANCE_KEY, environment_configs, validation_keywords
from .mirror import DryRunError, _round

__all__ = ["MAX_MIRROR_RATE", "STEPS_PER_POST", "apply_calibration", "compare_responses", "load_calibration",
           "mirrored_dead_time"]


MAX_MIRROR_RATE = 1000.0
"""Highest update loop rate (Hz) a calibrated mirror is given."""

STEPS_PER_POST = 10
"""Update steps per measured post a calibrated mirror aims for: a PV posts at the step nearest
each due time, so ten steps per post keep its median interval within a few % of the measured."""


def load_calibration(path: str | Path) -> dict[str, Any]:
    """Read a calibration JSON file ({"readbacks": {...}, "pairs": {...}}); DryRunError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DryRunError(f"{path}: cannot read the calibration: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DryRunError(f"{path}: not a calibration JSON file: {exc}") from None
    if not isinstance(data, Mapping) or not all(isinstance(data.get(k, {}), Mapping) for k in ("readbacks", "pairs")):
        raise DryRunError(f"{path}: a calibration is an object with 'readbacks' and 'pairs' objects")
    return dict(data)


def _measured(where: str, table: Mapping[str, Any], key: str, positive: bool = False) -> float | None:
    """A number from a calibration entry, None when absent or null; DryRunError when not a number."""
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            positive and value <= 0):
        raise DryRunError(f"calibration {where}: '{key}' must be a finite number{' > 0' if positive else ''}, "
                          f"got {value!r}")
    return float(value)


def apply_calibration(config: dict[str, Any], calibration: Mapping[str, Any], env: Any = None
                      ) -> tuple[dict[str, Any], list[str]]:
    """The mirror `config` with what `calibration` measured in place of the guesses, and notes.

    Per setpoint with a readback: lag (first_order tau_s / rate rate_per_s / none), dead time
    and offset from its pair, noise (sigma) and update rate (Hz) from its readback; per
    observable its noise and update rate. The update loop runs at STEPS_PER_POST times the
    fastest measured rate (at least the config's, at most MAX_MIRROR_RATE). The notes name what
    could not be mirrored (a pair whose readback differs) and end with the response comparison.
    """
    pairs = calibration.get("pairs", {}) or {}
    readbacks = calibration.get("readbacks", {}) or {}
    config = json.loads(json.dumps(config))  # a deep copy of plain data
    notes: list[str] = []
    guesses: dict[str, dict[str, Any]] = {}
    rates: dict[str, float] = {}
    served = set()
    for entry in config.get("setpoint", []):
        name, readback = entry["name"], entry.get("readback")
        served.add(name)
        pair = pairs.get(name)
        if readback is None or not isinstance(pair, Mapping):
            continue
        if pair.get("readback") not in (None, readback):
            notes.append(f"{name}: calibrated with readback {pair.get('readback')}, mirrored as {readback}: not used")
            continue
        guesses[name] = dict(entry)
        lag = pair.get("lag")
        if lag is not None:
            if lag not in LAG_MODELS:
                raise DryRunError(f"calibration pairs.{name}: unknown lag {lag!r} (known: {', '.join(LAG_MODELS)})")
            for key in ("tau", "rate"):
                entry.pop(key, None)
            entry["lag"] = lag
            if lag == "first_order":
                entry["tau"] = _round(_measured(f"pairs.{name}", pair, "tau_s", positive=True) or 1.0)
            elif lag == "rate":
                entry["rate"] = _round(_measured(f"pairs.{name}", pair, "rate_per_s", positive=True) or 1.0)
            dead = _measured(f"pairs.{name}", pair, "dead_time_s") or 0.0
            entry.pop("dead_time", None)
            if dead > 0:
                entry["dead_time"] = _round(dead)
        offset = _measured(f"pairs.{name}", pair, "offset")
        if offset is not None:
            entry["offset"] = _round(offset)
        rates.update(_readback_calibration(entry, readback, readbacks))
    for entry in config.get("observable", []):
        served.add(entry["name"])
        rates.update(_readback_calibration(entry, entry["name"], readbacks))
    stray = sorted(set(pairs) - served)
    if stray:
        notes.append(f"calibrated setpoint(s) not in the environment, ignored: {', '.join(stray)}")
    ioc = config.setdefault("ioc", {})
    if rates:
        loop = min(MAX_MIRROR_RATE, max(float(ioc.get("update_rate", 10.0)), STEPS_PER_POST * max(rates.values())))
        ioc["update_rate"] = _round(loop)
        for table in ("setpoint", "observable"):
            for entry in config.get(table, []):
                if "update_rate" in entry and entry["update_rate"] > loop:
                    entry["update_rate"] = _round(loop)
    configs = environment_configs(env) if env is not None else {}
    notes += compare_responses(config, guesses, pairs, configs)
    return config, notes


def _readback_calibration(entry: dict[str, Any], pv: str, readbacks: Mapping[str, Any]) -> dict[str, float]:
    """Set `entry`'s noise and update_rate from readbacks[pv]; {pv: rate} when a rate was measured."""
    measured = readbacks.get(pv)
    if not isinstance(measured, Mapping):
        return {}
    sigma = _measured(f"readbacks.{pv}", measured, "noise_sigma")
    if sigma is not None:
        entry["noise"] = float(f"{sigma:.4g}")
    rate = _measured(f"readbacks.{pv}", measured, "update_rate_hz", positive=True)
    if rate is None:
        return {}
    entry["update_rate"] = float(f"{rate:.4g}")
    return {pv: rate}


def _model_params(entry: Mapping[str, Any]) -> tuple[str, float | None]:
    """(lag, parameter) of a soft IOC setpoint entry, in the calibration's terms."""
    lag = entry.get("lag", "none")
    return lag, {"first_order": entry.get("tau"), "rate": entry.get("rate")}.get(lag)


def _settle_time(lag: str, parameter: float | None, dead: float, step: float, tolerance: float) -> float:
    """Seconds after a setpoint step of `step` until the readback is within `tolerance` of the target.

    Found by bisection on the model's response (every lag model approaches its target
    monotonically), after the dead time `dead` s.
    """
    model = LAG_MODELS[lag]
    p = np.asarray(parameter if parameter is not None else 1.0, dtype=float)

    def within(t: float) -> bool:
        value = float(np.ravel(model.respond(np.asarray(t), np.asarray(0.0), float(step), p))[0])
        return abs(value - step) <= tolerance

    if within(0.0):
        return dead
    low, high = 0.0, 1.0
    while not within(high):
        low, high = high, high * 2.0
        if high > 1e9:
            return math.inf
    for _ in range(60):
        middle = (low + high) / 2.0
        low, high = (low, middle) if within(middle) else (middle, high)
    return dead + high


def compare_responses(config: Mapping[str, Any], guesses: Mapping[str, Mapping[str, Any]],
                      pairs: Mapping[str, Any], configs: Mapping[str, Any]) -> list[str]:
    """Per calibrated pair: the settling time of a step as measured (with its dead time), as the
    mirror simulates it and as the uncalibrated guess did; lines for the TOML header."""
    lines = []
    for entry in config.get("setpoint", []):
        name = entry["name"]
        if name not in guesses:
            continue
        pair = pairs[name]
        lag = pair.get("lag")
        if lag not in LAG_MODELS:
            continue
        limits = entry.get("limits") or [0.0, 1.0]
        step = abs(float(pair.get("step") or 0.0)) or (limits[1] - limits[0]) / 10.0
        tolerance = validation_keywords(configs.get(name)).get(TOLERANCE_KEY)
        if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or tolerance <= 0:
            tolerance = step / 10.0
        dead = float(pair.get("dead_time_s") or 0.0)
        measured = _settle_time(lag, pair.get("tau_s") if lag == "first_order" else pair.get("rate_per_s"),
                                dead, step, tolerance)
        mirror_dead = mirrored_dead_time(config, entry)
        mirror = _settle_time(*_model_params(entry), mirror_dead, step, tolerance)
        guess = _settle_time(*_model_params(guesses[name]), mirrored_dead_time(config, guesses[name]), step,
                             tolerance)
        lines.append(f"{name}: a step of {step:g} settles within {tolerance:g} in {measured:.3g} s measured "
                     f"(dead time {dead:.3g} s), {mirror:.3g} s mirrored (dead time {mirror_dead:.3g} s), "
                     f"{guess:.3g} s uncalibrated ({_model_text(guesses[name])})")
    return lines


def mirrored_dead_time(config: Mapping[str, Any], entry: Mapping[str, Any]) -> float:
    """The dead time (s) the soft IOC simulates for setpoint `entry` of `config`: whole update steps."""
    dead = float(entry.get("dead_time") or 0.0)
    ioc = config.get("ioc", {})
    dt = float(ioc.get("time_scale", 1.0)) / float(ioc.get("update_rate", 10.0))
    return round(dead / dt) * dt


def _model_text(entry: Mapping[str, Any]) -> str:
    lag, parameter = _model_params(entry)
    unit = {"first_order": "tau {:g} s", "rate": "rate {:g}/s"}.get(lag)
    return lag if unit is None else f"{lag}, {unit.format(parameter)}"
