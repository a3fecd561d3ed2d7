"""The update step over many alike devices at once (numpy), reporting only what changed.

A machine of 10,000 pairs spends its step in Python, one device at a time. Here devices
whose type is `double`, with a readback, no alarm limits, no dead time (its FIFO of pending
setpoints is per device) and no fault acting this step, are
grouped by every config key the lag may read; each group is one call of its lag function on
arrays (the registered lag functions are written with array arithmetic), and the readbacks
are rendered in one array expression. The arithmetic is the scalar path's, element by
element, and each noisy device still draws from its own generator, so the values are the same
as Simulation's, bit for bit (drawn a block at a time: `_Noise`). Only readbacks whose value
changed are returned: a settled, noiseless pair costs a few array elements, not a post. Any
other device (and any device while a fault acts on it) takes the scalar path of its Device.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, cast

import numpy as np

from ._functions import ObservableFunction
from ._simulation import Device, Simulation
from ._types import NO_EFFECT, ModelConfig, SetpointConfig

__all__ = ["VectorSimulation"]

_log = logging.getLogger(__name__)

# keys a lag never reads: devices differing only in these step in one group
_NOT_LAG_KEYS = frozenset({"name", "readback", "initial", "offset", "noise", "units", "precision",
                           "description", "choices", "length", "limits", "alarm_limits", "udf"})


def _lag_key(cfg: SetpointConfig) -> tuple[Any, ...]:
    return tuple(repr(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.name not in _NOT_LAG_KEYS)


def _vectorisable(device: Device, dt: float) -> bool:
    """A double readback without alarm limits or dead time whose lag gives arrays for arrays."""
    if device.pv_type.name != "double" or not device.config.readback or device.delay_steps:
        return False
    check = getattr(device, "alarm_check", None)
    if check is not None and getattr(check, "limits", None) is not None:
        return False
    try:
        probe = device._lag(np.zeros(2), np.ones(2), dt, device.config)
    except Exception:  # noqa: BLE001 - a lag written for scalars only stays on the scalar path
        return False
    return isinstance(probe, np.ndarray) and probe.shape == (2,)


BLOCK = 64
"""Noise draws taken from each device's generator at once (one a step afterwards, from memory)."""


class _Noise:
    """The noise of a group's noisy devices, each from its own generator, one draw a step.

    A generator's `normal(0, sigma, size=n)` gives the same values as n calls of `normal(0, sigma)`,
    so each device draws `BLOCK` values at once and the step takes the next one of each in one
    array index. A device the scalar path takes over (a fault acts on it) draws from its
    generator itself: `give_back` first rewinds the generator to the draws actually used.
    The first blocks are of staggered lengths so that the devices refill on different steps.
    """

    def __init__(self, rngs: list[np.random.Generator], sigma: list[float]) -> None:
        count = len(rngs)
        self.rngs, self.sigma = rngs, sigma
        self.block = np.zeros((count, BLOCK))
        self.stagger = (np.arange(count) % BLOCK).tolist()  # where each first block begins
        self.start = np.zeros(count, dtype=int)  # where each device's current block begins
        self.used = np.full(count, BLOCK)  # next position to take; BLOCK: no block drawn
        self.states: list[Any] = [None] * count  # each generator's state before its block

    def draw(self, ks: np.ndarray) -> np.ndarray:
        """The next draw of devices `ks` (positions among the noisy ones)."""
        used = self.used
        for k in ks[used[ks] >= BLOCK].tolist():
            rng, begin = self.rngs[k], self.stagger[k]
            self.stagger[k] = 0  # later blocks are whole
            self.states[k] = rng.bit_generator.state
            self.block[k, begin:] = rng.normal(0.0, self.sigma[k], size=BLOCK - begin)
            self.start[k] = used[k] = begin
        taken: np.ndarray = self.block[ks, used[ks]]
        used[ks] += 1
        return taken

    def give_back(self, k: int) -> None:
        """Leave device k's generator where one draw a step would have left it."""
        if self.states[k] is None:
            return
        rng = self.rngs[k]
        rng.bit_generator.state = self.states[k]
        taken = int(self.used[k] - self.start[k])
        if taken:
            rng.normal(0.0, self.sigma[k], size=taken)
        self.states[k] = None
        self.stagger[k], self.used[k] = 0, BLOCK  # its next block, whole, is drawn when needed


class _Group:
    """Devices of one lag configuration, their state in arrays."""

    def __init__(self, devices: list[Device]) -> None:
        self.devices = devices
        self.cfg = devices[0].config
        self.lag = devices[0]._lag
        self.readbacks = cast("list[str]", [d.config.readback for d in devices])  # all set: _vectorisable
        self.setpoint_names = [d.config.name for d in devices]
        self.state = np.array([float(d._state) for d in devices])
        self.output = np.array([float(d._output) for d in devices])
        self.target = np.array([float(d.setpoint) for d in devices])
        self.offset = np.array([d.config.offset for d in devices])
        self.noisy = np.array([d.config.noise > 0 for d in devices])
        self.noisy_at = np.flatnonzero(self.noisy)
        self.noise = _Noise([devices[i]._rng for i in self.noisy_at], [devices[i].config.noise for i in self.noisy_at])
        self.noisy_k = {int(i): k for k, i in enumerate(self.noisy_at)}  # device index -> noisy position
        self.faulted_last: set[int] = set()


class VectorSimulation(Simulation):
    """A Simulation stepping alike devices together; `step()` returns only changed values."""

    def __init__(self, config: ModelConfig, functions: Mapping[str, ObservableFunction] | None = None,
                 budget: float | None = None) -> None:
        super().__init__(config, functions, budget)
        groups: dict[tuple[Any, ...], list[Device]] = {}
        self._scalar: list[Device] = []
        for device in self.devices.values():
            if _vectorisable(device, self.dt):
                groups.setdefault(_lag_key(device.config), []).append(device)
            else:
                self._scalar.append(device)
        self._groups = [_Group(devices) for devices in groups.values()]
        self._last_setpoint: dict[str, Any] = {}
        _log.debug("%d devices in %d array groups, %d scalar", sum(len(g.devices) for g in self._groups),
                   len(self._groups), len(self._scalar))

    def step(self) -> dict[str, Any]:
        """Advance one step; return {readback or observable PV: value} of the values that changed."""
        self.steps += 1
        self.time = self.steps * self.dt
        if self._waiting:
            self._release()
        out: dict[str, Any] = {}
        self._advance(self._scalar, out)
        for group in self._groups:
            self._step_group(group, out)
        self._observe_all(out)
        return out

    def _step_group(self, group: _Group, out: dict[str, Any]) -> None:
        i: int | np.integer[Any]  # indexes from numpy arrays and from Python sets alike
        devices, readbacks = group.devices, self.readbacks
        target = np.fromiter((d.target for d in devices), float, len(devices))
        for i in np.flatnonzero(target != group.target):  # the setpoint entries observables may read
            readbacks[group.setpoint_names[i]] = devices[i].setpoint
        group.target = target
        faulted = {i for i, d in enumerate(devices) if d.faults is not NO_EFFECT and d.faults != NO_EFFECT}
        state = group.lag(group.state, target, self.dt, group.cfg)
        noise = np.zeros(len(devices))
        if len(group.noisy_at):  # each device's own generator, one draw a step, as Device
            ks = np.arange(len(group.noisy_at))
            if faulted:
                for i in faulted & group.noisy_k.keys():
                    group.noise.give_back(group.noisy_k[i])
                ks = ks[~np.isin(group.noisy_at, sorted(faulted))]
            noise[group.noisy_at[ks]] = group.noise.draw(ks)
        output = state + group.offset + 0.0 + noise
        released = group.faulted_last - faulted
        for i in released:  # as Device.advance: drift ends with its fault
            devices[i]._drift = 0.0
        for i in faulted:  # the scalar path for a device a fault acts on this step
            device = devices[i]
            device._state, device._output = float(group.state[i]), float(group.output[i])
            device.advance(self.dt)
            state[i], output[i] = device._state, device.sample()
        group.faulted_last = faulted
        changed = np.flatnonzero(output != group.output)
        if faulted or released:  # reported every step a fault acts, as the per-device path does, and
            # once more when it ends: a post its fault held back (a rate limit) is made now
            changed = np.union1d(changed, sorted(faulted | released)).astype(int)
        group.state, group.output = state, output
        if len(changed) == len(devices):  # every readback (a noisy group): no index to look up
            names, values = group.readbacks, output.tolist()
        else:
            names, values = [group.readbacks[i] for i in changed.tolist()], output[changed].tolist()
        readbacks.update(zip(names, values, strict=True))
        out.update(zip(names, values, strict=True))
