"""The simulated machine, free of any network code: given time and inputs, what is read back.

Time advances in fixed simulated steps, so a run is reproducible: the same seed, the same
puts at the same steps give the same readbacks, whatever the wall clock did.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .config import IOCConfig, ObservableConfig, SetpointConfig
from .expression import compile_expression


def rng_for(seed: int, name: str) -> np.random.Generator:
    """A generator that depends only on the IOC seed and a PV name (stable across runs)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


class PutRefused(ValueError):
    """A put the device itself refuses (wrong type, not finite, outside limits)."""


class Device:
    """A setpoint and the readback that follows it with lag, noise, offset and injected faults."""

    def __init__(self, config: SetpointConfig, seed: int) -> None:
        self.config = config
        self._rng = rng_for(seed, config.readback or config.name)
        self.setpoint: Any = self._copy(config.initial)
        self._state: Any = self._as_state(config.initial)
        self._output: Any = self._render(self._state, 0.0)
        self._drift = 0.0
        # fault modifiers, set by the server from its fault book each step
        self.stuck = False
        self.bias = 0.0
        self.drift_rate = 0.0

    @property
    def numeric(self) -> bool:
        return self.config.type in ("double", "int", "double_array")

    @staticmethod
    def _copy(value: Any) -> Any:
        return list(value) if isinstance(value, list) else value

    def _as_state(self, value: Any) -> Any:
        if self.config.type == "double_array":
            return np.asarray(value, dtype=float).copy()
        if self.config.type in ("double", "int"):
            return float(value)
        return value

    def coerce(self, value: Any) -> Any:
        """Check a put's value against the device; return it normalised or raise PutRefused."""
        cfg = self.config
        if cfg.type in ("double", "int"):
            if isinstance(value, (str, bytes)) or np.ndim(value) != 0:
                raise PutRefused(f"{cfg.name}: {value!r} is not a number")
            number = float(value)
            if not math.isfinite(number):
                raise PutRefused(f"{cfg.name}: {number!r} is not a finite number")
            if cfg.type == "int":
                number = int(round(number))
            self._check_limits(number)
            return number
        if cfg.type == "double_array":
            array = np.asarray(value, dtype=float).reshape(-1)
            if not np.all(np.isfinite(array)):
                raise PutRefused(f"{cfg.name}: the array holds values that are not finite")
            if cfg.length is not None and array.size > cfg.length:
                raise PutRefused(f"{cfg.name}: {array.size} elements, at most {cfg.length} allowed")
            if cfg.limits is not None:
                for element in array:
                    self._check_limits(float(element))
            return array
        if cfg.type == "enum":
            index = value
            if isinstance(value, str):
                if value not in cfg.choices:
                    raise PutRefused(f"{cfg.name}: {value!r} is not one of {list(cfg.choices)}")
                index = cfg.choices.index(value)
            if not isinstance(index, (int, np.integer)) or not 0 <= index < len(cfg.choices):
                raise PutRefused(f"{cfg.name}: {value!r} is not a valid index of {len(cfg.choices)} choices")
            return int(index)
        return str(value)

    def _check_limits(self, number: float) -> None:
        limits = self.config.limits
        if limits is not None and not limits[0] <= number <= limits[1]:
            raise PutRefused(
                f"{self.config.name}: {number!r} is outside the limits [{limits[0]!r}, {limits[1]!r}]"
            )

    def set(self, value: Any) -> None:
        """Apply an accepted (already coerced) setpoint."""
        self.setpoint = value

    def advance(self, dt: float) -> None:
        """Move the true readback state toward the setpoint over `dt` simulated seconds."""
        cfg = self.config
        target = self._as_state(self.setpoint)
        if not self.numeric or cfg.lag == "none":
            self._state = target
        elif cfg.lag == "first_order":
            self._state = self._state + (target - self._state) * (1.0 - math.exp(-dt / cfg.tau))
        else:  # rate: ramp at cfg.rate units per simulated second
            step = cfg.rate * dt
            self._state = self._state + np.clip(target - self._state, -step, step)
            if not isinstance(self._state, np.ndarray):
                self._state = float(self._state)
        # drift accumulates only while a drift fault is armed; clearing it restores the readback
        self._drift = self._drift + self.drift_rate * dt if self.drift_rate else 0.0

    def sample(self) -> Any:
        """The next readback value: one noise draw per call, frozen while stuck."""
        if not self.stuck:
            self._output = self._render(self._state, self.bias + self._drift)
        return self._output

    def _render(self, state: Any, extra: float) -> Any:
        cfg = self.config
        if not self.numeric:
            return state
        shape = np.shape(state)
        noise = self._rng.normal(0.0, cfg.noise, size=shape or None) if cfg.noise > 0 else 0.0
        value = state + cfg.offset + extra + noise
        if cfg.type == "int":
            return int(round(float(value)))
        if cfg.type == "double_array":
            return np.asarray(value, dtype=float)
        return float(value)

    def settled_value(self) -> Any:
        """The readback value without noise, as the device would settle (for views and tests)."""
        return self._state


class Observable:
    """A computed PV: an expression of readback values plus its own noise."""

    def __init__(self, config: ObservableConfig, seed: int) -> None:
        self.config = config
        self._evaluate = compile_expression(config.expression, list(config.inputs))
        self._rng = rng_for(seed, config.name)

    def compute(self, values: Mapping[str, Any]) -> float:
        """Evaluate with {input variable: value}; a math error or bad call gives NaN, not a crash."""
        try:
            result = float(self._evaluate(values))
        except (ArithmeticError, ValueError, TypeError):  # TypeError: e.g. min() with no arguments
            result = math.nan
        if self.config.noise > 0:
            result += float(self._rng.normal(0.0, self.config.noise))
        return result


class Simulation:
    """Every device and observable of one IOC, stepped together in fixed simulated steps."""

    def __init__(self, config: IOCConfig) -> None:
        self.config = config
        seed = config.ioc.seed
        self.dt = config.ioc.time_scale / config.ioc.update_rate
        self.time = 0.0
        self.steps = 0
        self.devices = {sp.name: Device(sp, seed) for sp in config.setpoints}
        self.observables = [Observable(ob, seed) for ob in config.observables]
        self.readbacks: dict[str, Any] = {}
        for device in self.devices.values():
            value = device.sample()
            self.readbacks[device.config.name] = device.setpoint
            if device.config.readback:
                self.readbacks[device.config.readback] = value
        self.observed: dict[str, float] = {ob.config.name: self._observe(ob) for ob in self.observables}

    def _observe(self, observable: Observable) -> float:
        env = {var: self.readbacks[pv] for var, pv in observable.config.inputs.items()}
        return observable.compute(env)

    def step(self) -> dict[str, Any]:
        """Advance one step; return {readback or observable PV: new value} for this step."""
        self.steps += 1
        self.time = self.steps * self.dt
        out: dict[str, Any] = {}
        for device in self.devices.values():
            device.advance(self.dt)
            self.readbacks[device.config.name] = device.setpoint
            if device.config.readback:
                value = device.sample()
                self.readbacks[device.config.readback] = value
                out[device.config.readback] = value
        for ob in self.observables:
            value = self._observe(ob)
            self.observed[ob.config.name] = value
            out[ob.config.name] = value
        return out
