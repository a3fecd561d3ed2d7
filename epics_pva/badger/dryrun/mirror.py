"""A soft IOC config mirroring a Badger environment: its variables, readbacks and observables.

The environment is read by `epics_pva.tools.environment` (duck typing, no Badger).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import BadgerEnvironmentError
from ...tools.environment import (
    OFFSET_KEY,
    READBACK_KEY,
    TOLERANCE_KEY,
    environment_configs,
    environment_name,
    served_observables,
    validation_keywords,
)

__all__ = ["OVERLAY_KEYS", "DryRunError", "apply_overlay", "config_from_environment"]

OVERLAY_KEYS = {
    "setpoint": frozenset({"initial", "units", "precision", "description", "alarm_limits", "alarm_deadband", "noise", "offset", "lag", "tau",
                           "rate", "dead_time", "update_rate", "limit_action", "limits"}),
    "observable": frozenset({"expression", "inputs", "units", "precision", "description", "alarm_limits",
                             "alarm_deadband", "noise", "update_rate"}),
    "ioc": frozenset({"seed", "update_rate", "time_scale", "prefix"}),
}
"""What an overlay may set: per generated setpoint, per generated observable, and in [ioc]."""

logger = logging.getLogger(__name__)


class DryRunError(BadgerEnvironmentError):
    """The environment cannot be mirrored; the message says which part and why."""


def config_from_environment(
    env: Any,
    *,
    objective: str | Mapping[str, str] | None = None,
    lag: str = "first_order",
    tau: float = 0.5,
    rate: float = 1.0,
    noise: float | None = None,
    observable_noise: float = 0.0,
    initial_fraction: float = 0.5,
    seed: int = 0,
    update_rate: float = 20.0,
    time_scale: float = 1.0,
) -> dict[str, Any]:
    """Build a soft IOC config dict mirroring ``env`` (a Badger environment class or instance).

    - every variable becomes a setpoint whose ``limits`` are its bounds and whose ``initial``
      value sits ``initial_fraction`` of the way from the lower bound (default: mid-range);
    - a validation config naming ``readback_pv`` adds that readback, lagging as given
      (``tau`` in s, ``rate`` in units/s) with the config's ``offset``; its ``noise`` is
      ``noise`` or, when None, a tenth of the config's ``tolerance``;
    - every observable that is not already served becomes a computed PV. Its expression is
      ``objective`` (one string for all, or a mapping observable -> expression) written in
      ``x0, x1, ...``, the readbacks (or setpoints, without a readback) of the variables in
      order. The default is the sum of squares of each ``x_i`` from its bounds' centre plus
      offset, so the minimum is where every setpoint sits at the centre of its bounds.
    """
    variables = getattr(env, "variables", None)
    if not isinstance(variables, Mapping) or not variables:
        raise DryRunError(f"{environment_name(env)}: the environment has no 'variables' to mirror")
    observables = served_observables(env)
    configs = environment_configs(env)
    unknown = sorted(set(configs) - set(variables))
    if unknown:
        logger.warning("%s: validation configs for non-variables ignored: %s", environment_name(env), unknown)
    if not 0.0 <= initial_fraction <= 1.0:
        raise DryRunError(f"initial_fraction must be within [0, 1], got {initial_fraction!r}")

    setpoints: list[dict[str, Any]] = []
    inputs: dict[str, str] = {}
    terms: list[str] = []
    for i, (name, bounds) in enumerate(variables.items()):
        low, high = _bounds(env, name, bounds)
        keywords = validation_keywords(configs.get(name))
        readback = keywords.get(READBACK_KEY)
        offset = _number(env, name, OFFSET_KEY, keywords.get(OFFSET_KEY, 0.0))
        tolerance = keywords.get(TOLERANCE_KEY)
        entry: dict[str, Any] = {"name": name}
        if readback is not None:
            if not isinstance(readback, str) or not readback:
                raise DryRunError(f"{environment_name(env)}: '{name}': {READBACK_KEY} must be a PV name, got {readback!r}")
            entry["readback"] = readback
        span = high - low
        entry["initial"] = _round(low + initial_fraction * span)
        entry["limits"] = [float(low), float(high)]
        if readback is not None:
            entry["lag"] = lag
            if lag == "first_order":
                entry["tau"] = float(tau)
            elif lag == "rate":
                entry["rate"] = float(rate)
            if noise is not None:
                entry["noise"] = float(noise)
            elif tolerance is not None:
                entry["noise"] = _round(_number(env, name, TOLERANCE_KEY, tolerance) / 10.0)
            entry["offset"] = offset
        setpoints.append(entry)
        inputs[f"x{i}"] = readback if readback is not None else name
        target = _round((low + high) / 2.0 + (offset if readback is not None else 0.0))
        terms.append(f"(x{i} - {_fmt(target)})**2" if target else f"x{i}**2")

    served = {n for sp in setpoints for n in (sp["name"], sp.get("readback")) if n}
    default_expression = " + ".join(terms)
    computed: list[dict[str, Any]] = []
    for name in observables:
        if name in served:  # a setpoint or readback already: no mirror needed
            continue
        expression = _objective_for(objective, name) or default_expression
        entry = {"name": name, "expression": expression, "inputs": dict(inputs)}
        if observable_noise:
            entry["noise"] = float(observable_noise)
        computed.append(entry)
    if isinstance(objective, Mapping):
        stray = sorted(set(objective) - {o["name"] for o in computed})
        if stray:
            raise DryRunError(f"objective given for {stray}, not computed observables of {environment_name(env)}")

    config: dict[str, Any] = {
        "ioc": {"seed": int(seed), "update_rate": float(update_rate), "time_scale": float(time_scale)},
        "setpoint": setpoints,
    }
    if computed:
        config["observable"] = computed
    return config


def apply_overlay(config: dict[str, Any], overlay: Mapping[str, Any], source: str = "overlay") -> dict[str, Any]:
    """Merge what the environment cannot say into a generated mirror: `overlay` is shaped like
    the soft IOC config ([ioc], [[setpoint]] and [[observable]] tables, each naming a generated
    entry by `name`) and may set alarm limits, units, expressions, initial values and the other
    OVERLAY_KEYS. DryRunError naming the table and key for anything else."""
    merged = {key: [dict(e) for e in value] if isinstance(value, list) else value for key, value in config.items()}
    for key in overlay:
        if key not in OVERLAY_KEYS:
            raise DryRunError(f"{source}: unknown table {key!r} (an overlay has [ioc], [[setpoint]], [[observable]])")
    ioc = overlay.get("ioc", {})
    if not isinstance(ioc, Mapping):
        raise DryRunError(f"{source}: [ioc] must be a table")
    _check_keys(source, "[ioc]", ioc, OVERLAY_KEYS["ioc"])
    base_ioc = merged.get("ioc", {})
    merged["ioc"] = {**(base_ioc if isinstance(base_ioc, Mapping) else {}), **ioc}
    for table in ("setpoint", "observable"):
        entries = overlay.get(table, [])
        if not isinstance(entries, list):
            raise DryRunError(f"{source}: {table} must be an array of tables ([[{table}]])")
        generated = {e["name"]: e for e in merged.get(table, [])}
        for i, entry in enumerate(entries):
            where = f"[[{table}]] #{i + 1}"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                raise DryRunError(f"{source}: {where} needs a 'name'")
            name = entry["name"]
            if name not in generated:
                known = ", ".join(list(generated)[:10]) or "none"
                raise DryRunError(f"{source}: {where}: {name!r} is not a generated {table} (generated: {known})")
            changes = {k: v for k, v in entry.items() if k != "name"}
            _check_keys(source, f"{where} ('{name}')", changes, OVERLAY_KEYS[table])
            generated[name].update(changes)
    return merged


def _check_keys(source: str, where: str, table: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise DryRunError(f"{source}: {where}: key {unknown[0]!r} cannot be overlaid (keys: {', '.join(sorted(allowed))})")


def _bounds(env: Any, name: str, bounds: Any) -> tuple[float, float]:
    if (
        not isinstance(bounds, Sequence)
        or len(bounds) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        or not all(math.isfinite(b) for b in bounds)
        or not bounds[0] < bounds[1]
    ):
        raise DryRunError(
            f"{environment_name(env)}: variable '{name}' needs bounds [low, high] with low < high, got {bounds!r}"
        )
    return float(bounds[0]), float(bounds[1])


def _number(env: Any, name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DryRunError(f"{environment_name(env)}: '{name}': validation keyword '{key}' must be a finite number, got {value!r}")
    return float(value)


def _round(value: float) -> float:
    # Keep generated TOML readable: 0.30000000000000004 -> 0.3.
    return float(f"{value:.12g}")


def _fmt(value: float) -> str:
    return f"({value!r})" if value < 0 else repr(value)


def _objective_for(objective: str | Mapping[str, str] | None, name: str) -> str | None:
    if objective is None or isinstance(objective, str):
        return objective
    return objective.get(name)
