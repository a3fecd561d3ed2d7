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

__all__ = ["DryRunError", "config_from_environment"]

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
    initial_fraction: float = 0.25,
    seed: int = 0,
    update_rate: float = 20.0,
    time_scale: float = 1.0,
) -> dict[str, Any]:
    """Build a soft IOC config dict mirroring ``env`` (a Badger environment class or instance).

    - every variable becomes a setpoint whose ``limits`` are its bounds and whose ``initial``
      value sits ``initial_fraction`` of the way from the lower bound;
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
