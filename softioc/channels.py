"""PV types to p4p channels: building each SharedPV, its first Value, and the forms it posts.

The only module that knows how a registered PV type maps onto p4p's normative types.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from p4p.nt import NTEnum, NTScalar
from p4p.server.thread import SharedPV

from .config import IOCConfig, ObservableConfig, SetpointConfig
from .model import Simulation
from .pvtypes import OBSERVABLE_TYPE, PV_TYPES, PVType

PutCallback = Callable[[str, Any], None]
"""Called with (PV name, p4p server operation) for each put a channel receives."""


def plain(value: Any) -> Any:
    """Turn a p4p-unwrapped put value (ntfloat, ntenum, ntnumericarray...) into plain Python."""
    if type(value).__name__ == "ntenum":
        return int(value)
    raw = getattr(value, "raw", None)
    if raw is not None:  # str() of an nt wrapper prints its timestamp: read the field itself
        value = raw["value"]
    if isinstance(value, np.ndarray):
        return np.asarray(value, dtype=float)
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value


def nt_for(kind: PVType, control: bool) -> NTScalar | NTEnum:
    """The normative type serving `kind`; control limits only on numeric setpoints."""
    if kind.nt_code is None:
        return NTEnum(display=False)
    return NTScalar(kind.nt_code, display=kind.numeric, control=control and kind.numeric)


def initial_value(cfg: SetpointConfig | ObservableConfig, kind: PVType, value: Any, control: bool) -> dict[str, Any]:
    """The full first Value of a PV: value plus the metadata a real record publishes."""
    now = time.time()
    data: dict[str, Any] = {
        "timeStamp.secondsPastEpoch": int(now), "timeStamp.nanoseconds": int(now % 1 * 1e9),
        **kind.initial_fields(value, getattr(cfg, "choices", ())),
    }
    if not kind.numeric:  # only numbers carry display metadata (units, format, limits)
        return data
    data["display.units"] = cfg.units
    if cfg.precision is not None:
        data["display.format"] = f"%.{cfg.precision}f"
    limits = getattr(cfg, "limits", None)
    if limits is not None:
        data["display.limitLow"], data["display.limitHigh"] = limits
        if control:
            data["control.limitLow"], data["control.limitHigh"] = limits
    if description := getattr(cfg, "description", ""):  # observables have none
        data["display.description"] = description
    return data


@dataclass
class Channel:
    """One served PV and how the update loop treats it."""

    name: str
    pv: SharedPV
    kind: PVType
    initial: dict[str, Any]
    device: str | None = None  # the setpoint this PV belongs to, if any
    open: bool = True
    last: Any = None
    last_post: float = 0.0

    def post(self, value: Any, stamp: float) -> None:
        """Publish `value` (wall-clock `stamp`, s) and remember it for a later reopen."""
        self.last = value
        self.pv.post(self.kind.post_form(value), timestamp=stamp)

    def holds(self, value: Any) -> bool:
        """True when `value` is what the PV last posted (nothing to post)."""
        last = self.last
        if isinstance(value, np.ndarray) or isinstance(last, np.ndarray):
            return isinstance(value, np.ndarray) and isinstance(last, np.ndarray) and np.array_equal(value, last)
        return bool(value == last)

    def close(self) -> None:
        """Take the PV off the network; clients reconnect when it reopens."""
        if self.open:
            self.open = False
            self.pv.close()  # not destroy

    def reopen(self) -> None:
        """Serve the PV again with its last value."""
        if not self.open:
            self.pv.open({**self.initial, **self.kind.value_fields(self.last)})
            self.open = True


class _Handler:
    """A SharedPV handler passing every put to one callback with the PV's name."""

    def __init__(self, name: str, on_put: PutCallback) -> None:
        self._name, self._on_put = name, on_put

    def put(self, pv: SharedPV, op: Any) -> None:
        self._on_put(self._name, op)


def build_channels(
    config: IOCConfig, sim: Simulation, queue: Any, on_put: PutCallback, on_read_only_put: PutCallback,
) -> dict[str, Channel]:
    """One Channel per simulated PV, in config order; setpoint puts go to `on_put`."""
    channels: dict[str, Channel] = {}

    def add(name: str, cfg: Any, kind: PVType, value: Any, control: bool, device: str | None) -> None:
        init = initial_value(cfg, kind, value, control)
        handler = _Handler(name, on_put if control else on_read_only_put)
        pv = SharedPV(nt=nt_for(kind, control), initial=init, handler=handler, queue=queue)
        channels[name] = Channel(name, pv, kind, init, device=device, last=value)

    for sp in config.setpoints:
        kind = PV_TYPES[sp.type]
        add(sp.name, sp, kind, sim.devices[sp.name].setpoint, True, sp.name)
        if sp.readback:
            add(sp.readback, sp, kind, sim.readbacks[sp.readback], False, sp.name)
    for ob in config.observables:
        add(ob.name, ob, OBSERVABLE_TYPE, sim.observed[ob.name], False, None)
    return channels
