"""How a readback follows its setpoint: a registry of lag models keyed by their config name.

Each model takes (state, target, dt simulated s, setpoint config) and returns the new state.
Adding a lag model is adding one function to `LAGS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["LAGS", "Lag", "first_order", "no_lag", "rate"]

Lag = Callable[[Any, Any, float, Any], Any]


def no_lag(state: Any, target: Any, dt: float, cfg: Any) -> Any:
    """The readback is the setpoint at once."""
    return target


def first_order(state: Any, target: Any, dt: float, cfg: Any) -> Any:
    """Exponential approach with time constant `cfg.tau` simulated seconds."""
    return state + (target - state) * (1.0 - math.exp(-dt / cfg.tau))


def rate(state: Any, target: Any, dt: float, cfg: Any) -> Any:
    """Ramp toward the target at `cfg.rate` units per simulated second."""
    step = cfg.rate * dt
    new = state + np.clip(target - state, -step, step)
    return new if isinstance(new, np.ndarray) else float(new)


LAGS: dict[str, Lag] = {"none": no_lag, "first_order": first_order, "rate": rate}
"""Every lag model by its config name ('none' is the only one for non-numeric PVs)."""
