"""The devices, observables and update step of the simulated machine: given time and inputs,
what is read back (`_vector` steps alike devices together).

Time advances in fixed simulated steps, so a run is reproducible: the same seed, the same
puts at the same steps give the same readbacks, whatever the wall clock did.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import PutRefused
from ._alarms import INVALID, UDF, AlarmCheck, AlarmState
from ._expression import compile_expression
from ._functions import FUNCTION_ALARM_STATUS, FunctionRunner, ObservableFunction, Outcome
from ._lags import LAGS
from ._pvtypes import PV_TYPES
from ._types import NO_EFFECT, ModelConfig, ObservableConfig, ReadbackEffect, SetpointConfig

__all__ = ["Device", "Observable", "PutRefused", "Simulation", "rng_for"]


def rng_for(seed: int, name: str) -> np.random.Generator:
    """A generator that depends only on the IOC seed and a PV name (stable across runs)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


class Device:
    """A setpoint and the readback that follows it with lag, noise, offset and injected faults."""

    def __init__(self, config: SetpointConfig, seed: int) -> None:
        self.config = config
        self.pv_type = PV_TYPES[config.type]
        self._lag = LAGS[config.lag]
        self._rng = rng_for(seed, config.readback or config.name)
        self.setpoint: Any = self._copy(config.initial)
        self.target: Any = self.setpoint  # what the lag moves toward: the setpoint once its dead time is over
        self.delay_steps = 0  # the dead time in whole update steps (Simulation sets it from its dt)
        self._pending: deque[tuple[int, Any]] = deque()  # (first step moving toward it, setpoint), oldest first
        self._state: Any = self.pv_type.to_state(config.initial)
        self._output: Any = self._render(self._state, 0.0)
        self._drift = 0.0
        self.faults: ReadbackEffect = NO_EFFECT  # set by the server from its fault book each step
        self.alarm_check = AlarmCheck(config.alarm_limits)  # of the readback

    @property
    def numeric(self) -> bool:
        return self.pv_type.numeric

    @staticmethod
    def _copy(value: Any) -> Any:
        return list(value) if isinstance(value, list) else value

    def coerce(self, value: Any) -> Any:
        """Check a put's value against the device; return it normalised or raise PutRefused."""
        return self.pv_type.coerce(self.config, value)

    def set(self, value: Any, steps: int = 0, later: int = 0) -> None:
        """Apply an accepted (already coerced) setpoint after `steps` update steps.

        The lag's target changes `delay_steps` (the dead time) plus `later` steps on (see
        `release`); `later` counts the steps already due that a late update loop has yet to run.
        """
        self.setpoint = value
        wait, pending = self.delay_steps + later, self._pending
        if wait or pending:  # after any still waiting: targets change in the order of the puts
            due = steps + wait + 1
            pending.append((max(due, pending[-1][0]) if pending else due, value))
        else:
            self.target = value

    def release(self, step: int) -> None:
        """Make due the setpoints whose dead time is over by update step `step` (1 is the first)."""
        pending = self._pending
        while pending and pending[0][0] <= step:
            self.target = pending.popleft()[1]

    def advance(self, dt: float) -> None:
        """Move the true readback state toward the lag's target over `dt` simulated seconds."""
        self._state = self._lag(self._state, self.pv_type.to_state(self.target), dt, self.config)
        # drift accumulates only while a drift fault is armed; clearing it restores the readback
        drift = self.faults.drift
        self._drift = self._drift + drift * dt if drift else 0.0

    def sample(self) -> Any:
        """The next readback value: one noise draw per call, frozen while stuck, held while forced."""
        if self.faults.forced is not None:
            self._output = self.pv_type.render(self.faults.forced)
        elif not self.faults.stuck:
            self._output = self._render(self._state, self.faults.bias + self._drift)
        return self._output

    def _render(self, state: Any, extra: float) -> Any:
        cfg = self.config
        if not self.numeric:
            return state
        shape = np.shape(state)
        noise = self._rng.normal(0.0, cfg.noise, size=shape or None) if cfg.noise > 0 else 0.0
        return self.pv_type.render(state + cfg.offset + extra + noise)


class Observable:
    """A computed PV: an expression of readback values (or a Python `function` of them) plus its
    own noise."""

    def __init__(self, config: ObservableConfig, seed: int, function: ObservableFunction | None = None) -> None:
        self.config = config
        self.function = function
        if function is None and not config.expression:
            raise ValueError(f"observable {config.name!r} has no expression: give it one in the config, or serve "
                             f"it with a Python function (SoftIOC(config, observables={{{config.name!r}: fn}}))")
        self._evaluate = compile_expression(config.expression, list(config.inputs)) if function is None else None
        self._rng = rng_for(seed, config.name)
        self.alarm_check = AlarmCheck(config.alarm_limits)
        self.scan_steps = 1  # recomputed every this many update steps (its scan period)

    def noisy(self, value: float) -> float:
        """`value` plus this observable's noise (one draw)."""
        if self.config.noise > 0:
            value += float(self._rng.normal(0.0, self.config.noise))
        return value

    def compute(self, values: Mapping[str, Any]) -> float:
        """Evaluate with {input variable: value}; a math error or bad call gives NaN, not a crash."""
        if self._evaluate is None:  # a Python observable's value comes from FunctionRunner
            return math.nan
        try:
            result = float(self._evaluate(values))
        except (ArithmeticError, ValueError, TypeError):  # TypeError: e.g. min() with no arguments
            result = math.nan
        return self.noisy(result)


def check_functions(config: ModelConfig, functions: Mapping[str, ObservableFunction]) -> None:
    """ValueError unless each Python observable is an observable of `config` and every observable
    has an expression or a function (TypeError for a function that is not callable)."""
    unknown = sorted(set(functions) - {ob.name for ob in config.observables})
    if unknown:
        known = ", ".join(repr(ob.name) for ob in config.observables[:10]) or "none"
        raise ValueError(f"Python observable {unknown[0]!r} is not an observable of the config (observables: "
                         f"{known}); the config names each observable and its inputs")
    for name, function in functions.items():
        if not callable(function):
            raise TypeError(f"Python observable {name!r} must be a function, got {type(function).__name__}")
    for ob in config.observables:
        if not ob.expression and ob.name not in functions:
            raise ValueError(f"observable {ob.name!r} has no expression: give it one in the config, or serve "
                             f"it with a Python function (SoftIOC(config, observables={{{ob.name!r}: fn}}))")


class Simulation:
    """Every device and observable of one IOC, stepped together in fixed simulated steps."""

    def __init__(self, config: ModelConfig, functions: Mapping[str, ObservableFunction] | None = None,
                 budget: float | None = None) -> None:
        """`functions`: Python observables by name (each an observable of the config); `budget`:
        seconds a step waits for their calls in all (default: half an update period)."""
        self.config = config
        seed = config.ioc.seed
        functions = dict(functions or {})
        check_functions(config, functions)
        self.dt = config.ioc.time_scale / config.ioc.update_rate
        self.time = 0.0
        self.steps = 0
        self.devices = {sp.name: Device(sp, seed) for sp in config.setpoints}
        for device in self.devices.values():  # dead time is quantised to whole update steps
            device.delay_steps = round(device.config.dead_time / self.dt)
        self._waiting: set[Device] = set()  # devices whose setpoint waits to reach the lag
        self.observables = [Observable(ob, seed, functions.get(ob.name)) for ob in config.observables]
        self._python = [ob for ob in self.observables if ob.function is not None]
        self.functions = (FunctionRunner(functions, 0.5 / config.ioc.update_rate if budget is None else budget)
                          if functions else None)
        for ob in self.observables:  # a scan period is quantised to whole update steps, at least one
            ob.scan_steps = 1 if ob.config.scan is None else max(1, round(ob.config.scan / self.dt))
        self.readbacks: dict[str, Any] = {}
        self.alarms: dict[str, AlarmState] = {}  # the limit alarm of each readback and observable
        for device in self.devices.values():
            if device.config.udf:
                self.alarms[device.config.name] = UDF
            value = device.sample()
            self.readbacks[device.config.name] = device.setpoint
            if device.config.readback:
                self.readbacks[device.config.readback] = value
                self.alarms[device.config.readback] = device.alarm_check(value)
        self._faulted: set[str] = set()  # devices given a readback effect by set_faults
        self._by_readback = {d.config.readback: d.config.name for d in self.devices.values() if d.config.readback}
        self._observable_faults: dict[str, ReadbackEffect] = {}  # observable PV: its faults' effect
        self._observable_drift: dict[str, float] = {}  # drift accumulated while a drift fault is armed
        self.posted_effects: dict[str, ReadbackEffect] = {}  # readback or observable PV: effect acting on it
        self.observed: dict[str, float] = {}
        outcomes = self._call_functions()
        for ob in self.observables:
            name = ob.config.name
            if ob.function is None:
                self.observed[name] = value = self._observe(ob)
                self.alarms[name] = ob.alarm_check(value)
                continue
            outcome = outcomes.get(name)
            if outcome is None or outcome.value is None:
                self.observed[name] = math.nan
                message = (outcome.error or "no value") if outcome else "no value yet"
                self.alarms[name] = (INVALID, FUNCTION_ALARM_STATUS, message)
            else:
                self.observed[name] = value = ob.noisy(outcome.value)
                self.alarms[name] = ob.alarm_check(value)

    def close(self) -> None:
        """Stop the Python observables' workers (the IOC stops); a no-op without any."""
        if self.functions is not None:
            self.functions.close()

    def _call_functions(self) -> dict[str, Outcome]:
        """This step's outcomes of the Python observables' calls (see FunctionRunner.run)."""
        if self.functions is None:
            return {}
        readbacks = self.readbacks
        return self.functions.run({
            ob.config.name: {var: readbacks.get(pv, math.nan) for var, pv in ob.config.inputs.items()}
            for ob in self._python
        })

    def _observe(self, observable: Observable) -> float:
        env = {var: self.readbacks[pv] for var, pv in observable.config.inputs.items()}
        return observable.compute(env)

    def _observe_faulted(self, ob: Observable, effect: ReadbackEffect, fresh: float | None = None) -> float:
        """An observable's value this step under its faults' `effect` (as Device.sample does);
        `fresh` is what it computes without them (None: compute it from its expression)."""
        name = ob.config.name
        if effect.forced is not None:
            return float(effect.forced)
        if effect.stuck:
            return self.observed[name]
        drift = self._observable_drift.get(name, 0.0) + effect.drift * self.dt if effect.drift else 0.0
        self._observable_drift[name] = drift
        return (self._observe(ob) if fresh is None else fresh) + effect.bias + drift

    def apply(self, name: str, value: Any, later: int = 0) -> None:
        """Apply an accepted (coerced) put to setpoint `name`; its first put ends UDF.

        `later`: update steps already due but not yet run (a late loop); the readback starts
        to move only after them, as it would have had the loop kept time.
        """
        device = self.devices[name]
        device.set(value, self.steps, later)
        if device._pending:
            self._waiting.add(device)
        self.readbacks[name] = value  # what observables read of a setpoint: the setpoint at once
        self.alarms.pop(name, None)

    def _release(self) -> None:
        """Give each device whose setpoint was waiting the target due at this step."""
        for device in list(self._waiting):
            device.release(self.steps)
            if not device._pending:
                self._waiting.discard(device)

    def set_faults(self, effects: Mapping[str, ReadbackEffect]) -> None:
        """Give each device and observable its armed faults' effect for the next step (NO_EFFECT
        if none). `effects` is keyed by setpoint, readback PV or observable PV; a setpoint's and
        its readback's combine.

        Only the devices named now or last time are touched, not every device every step.
        """
        devices, by_readback = self.devices, self._by_readback
        per_device: dict[str, ReadbackEffect] = {}
        observables: dict[str, ReadbackEffect] = {}
        posted: dict[str, ReadbackEffect] = {}
        for name, effect in effects.items():
            device = name if name in devices else by_readback.get(name)
            if device is not None:
                per_device[device] = per_device[device].combine(effect) if device in per_device else effect
            elif name in self.observed:
                observables[name] = effect
        for name in self._faulted.difference(per_device):
            devices[name].faults = NO_EFFECT
        for name, effect in per_device.items():
            devices[name].faults = effect
            readback = devices[name].config.readback
            if readback:
                posted[readback] = effect
        self._faulted = set(per_device)
        for name in self._observable_faults.keys() - observables.keys():
            self._observable_drift.pop(name, None)
        self._observable_faults = observables
        posted.update(observables)
        self.posted_effects = posted

    def step(self) -> dict[str, Any]:
        """Advance one step; return {readback or observable PV: new value} for this step.

        `alarms` then holds each readback's and observable's limit alarm for that value.
        """
        self.steps += 1
        self.time = self.steps * self.dt
        if self._waiting:
            self._release()
        out: dict[str, Any] = {}
        self._advance(self.devices.values(), out)
        self._observe_all(out)
        return out

    def _advance(self, devices: Iterable[Device], out: dict[str, Any]) -> None:
        """Step `devices` one at a time, adding each readback to `out` (`_vector` steps the rest)."""
        for device in devices:
            device.advance(self.dt)
            self.readbacks[device.config.name] = device.setpoint
            if device.config.readback:
                value = device.sample()
                self.readbacks[device.config.readback] = value
                out[device.config.readback] = value
                if device.alarm_check.limits is not None:
                    self.alarms[device.config.readback] = device.alarm_check(value)

    def _observe_all(self, out: dict[str, Any]) -> None:
        """Compute every observable from this step's values, adding each to `out`."""
        faults = self._observable_faults
        outcomes = self._call_functions() if self.functions is not None else {}
        for ob in self.observables:
            name = ob.config.name
            effect = faults.get(name) if faults else None
            if ob.function is not None:  # a Python observable: its call's outcome, if one came in time
                outcome = outcomes.get(name)
                if outcome is None and effect is None:
                    continue  # no new value this step: the PV keeps its value and alarm
                fresh = self.observed[name] if outcome is None or outcome.value is None else ob.noisy(outcome.value)
                value = fresh if effect is None else self._observe_faulted(ob, effect, fresh)
                self.observed[name] = out[name] = value
                if outcome is not None and outcome.error is not None:
                    self.alarms[name] = (INVALID, FUNCTION_ALARM_STATUS, outcome.error)
                elif outcome is not None:
                    self.alarms[name] = ob.alarm_check(value)
                continue
            if effect is None and ob.scan_steps > 1 and self.steps % ob.scan_steps:
                continue  # scanned: held, and not posted, until its next scan
            value = self._observe(ob) if effect is None else self._observe_faulted(ob, effect)
            self.observed[name] = value
            out[name] = value
            if ob.alarm_check.limits is not None:
                self.alarms[ob.config.name] = ob.alarm_check(value)
