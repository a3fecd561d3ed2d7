"""What one started soft IOC shows besides its values: each PV's alarm, and the live-view rows.

A PV publishes an armed alarm fault's alarm, else the alarm its value computes (limits, UDF).
`Views` publishes it when faults change (the update loop publishes it with each step), and
gives the rows of the operator's live view. SoftIOC.start() builds one per run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..model import OK

if TYPE_CHECKING:
    from ..model import Simulation
    from ._channels import Channel
    from ._fault_control import FaultControl

_log = logging.getLogger(__name__)

__all__ = ["Views"]


class Views:
    """The alarms and live-view rows of one run's simulation and channels."""

    def __init__(self, sim: Simulation, channels: Mapping[str, Channel], faults: FaultControl,
                 lock: threading.RLock) -> None:
        self._sim, self._channels, self._faults, self._lock = sim, channels, faults, lock
        self._overridden: set[str] = set()  # PVs publishing an alarm fault's alarm now
        self.posted_at = 0.0  # wall s of the newest alarm post made outside an update step

    def alarm_of(self, name: str, overrides: Mapping[str, Any]) -> Any:
        """The alarm `name` publishes: an armed alarm fault's, else its computed one."""
        return overrides.get(name) or self._sim.alarms.get(name, OK)

    def refresh(self, everything: bool = False) -> None:
        """Publish the alarm of every PV whose alarm fault was armed or cleared since last time
        (of every PV with `everything`)."""
        overrides = self._faults.alarms(time.monotonic())
        forced = self._forced()
        with self._lock:
            self.posted_at = stamp = time.time()
            names = set(self._channels) if everything else set(overrides) | self._overridden
            for name in names:
                channel = self._channels.get(name)
                if channel is None:
                    continue
                try:
                    if name in forced and channel.open:  # a forced value shows with its alarm, in one post
                        channel.post(forced[name], stamp, self.alarm_of(name, overrides))
                        continue
                    channel.post_alarm(self.alarm_of(name, overrides), stamp)
                except Exception:  # noqa: BLE001 - a PV closed by a concurrent stop
                    _log.debug("could not publish the alarm of %s", name, exc_info=True)
            self._overridden = set(overrides)

    def _forced(self) -> dict[str, Any]:
        """The value each PV with a forced_value fault armed holds (the latest armed wins)."""
        forced: dict[str, Any] = {}
        for armed in self._faults.active():
            effect = armed.fault.readback_effect()
            if effect is not None and effect.forced is not None:
                forced[armed.pv] = effect.forced
        return forced

    def post(self, name: str, value: Any) -> None:
        """Publish a value applied outside an update step (a put) with the alarm it has now;
        a PV off the network keeps both for when it comes back."""
        channel = self._channels[name]
        alarm = self.alarm_of(name, self._faults.alarms(time.monotonic()))
        if channel.open:
            channel.post(value, time.time(), alarm)
        else:
            channel.last, channel.alarm = value, alarm

    def snapshot(self) -> list[dict[str, Any]]:
        """Per device: setpoint, readback, distance to target and armed faults (for live views)."""
        rows: list[dict[str, Any]] = []
        with self._lock:
            sim = self._sim
            for name, device in sim.devices.items():
                cfg = device.config
                readback = sim.readbacks.get(cfg.readback) if cfg.readback else None
                distance = None
                if device.pv_type.scalar and readback is not None:
                    distance = float(readback) - (float(device.setpoint) + cfg.offset)
                rows.append({
                    "setpoint_pv": name, "setpoint": device.setpoint, "readback_pv": cfg.readback,
                    "readback": readback, "distance": distance, "units": cfg.units,
                    "online": self._channels[name].open,
                    "faults": [a.fault.kind for a in self._faults.active(name)],
                })
            units = {ob.config.name: ob.config.units for ob in sim.observables}
            for name, value in sim.observed.items():
                rows.append({
                    "setpoint_pv": None, "setpoint": None, "readback_pv": name, "readback": value,
                    "distance": None, "units": units.get(name, ""), "online": self._channels[name].open,
                    "faults": [a.fault.kind for a in self._faults.active(name)],
                })
        return rows
