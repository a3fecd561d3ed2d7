"""What a serving soft IOC shows: client settings, PV names, time, the live view and alarms.

`ServerViews` is a base of `softioc.server.SoftIOC`, which sets up the state declared below
and runs the life cycle and the update loop; these methods read that state, and publish the
alarms that faults and computed limits give each PV.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .alarms import OK

if TYPE_CHECKING:
    from p4p.server import StaticProvider

    from .channels import Channel
    from .config import IOCConfig
    from .control import ControlPVs
    from .injection import FaultControl
    from .model import Simulation

_log = logging.getLogger("softioc.server")  # the server's messages, wherever their code lives


class ServerViews:
    """The read side of a SoftIOC: what it tells clients and operators, and its PVs' alarms."""

    # set up by SoftIOC.__init__ and start()
    config: IOCConfig
    host: str
    prefix: str
    identity: str
    faults: FaultControl
    _lock: threading.RLock
    _sim: Simulation | None
    _channels: dict[str, Channel]
    _control: ControlPVs | None
    _provider: StaticProvider | None
    _effective: dict[str, str]
    _thread: threading.Thread | None
    _overridden: set[str]
    _alarm_posted_at: float  # wall s of the newest alarm post made outside an update step
    _stepped_due: float | None  # monotonic s the last update step run was due at

    @property
    def running(self) -> bool:
        return self._thread is not None

    # what clients need ----------------------------------------------------------------------
    def client_conf(self) -> dict[str, str]:
        """The client configuration: `Context('pva', conf=ioc.client_conf(), useenv=False)`."""
        if not self.running:
            raise RuntimeError("start the soft IOC before asking for its client configuration")
        conf = self._effective
        return {
            "EPICS_PVA_ADDR_LIST": f"{self.host}:{conf['EPICS_PVAS_BROADCAST_PORT']}",
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_SERVER_PORT": conf["EPICS_PVAS_SERVER_PORT"],
            "EPICS_PVA_BROADCAST_PORT": conf["EPICS_PVAS_BROADCAST_PORT"],
        }  # no EPICS_PVA_NAME_SERVERS: its TCP reconnect backs off ~7 s after a restart, UDP search doesn't

    def interface_settings(self) -> dict[str, str]:
        """The EPICS_PVA_INTERFACE_* settings a rehearsing client needs: this machine's id (and prefix)."""
        if not self.running:
            raise RuntimeError("start the soft IOC before asking for its identity")
        settings = {"EPICS_PVA_INTERFACE_REHEARSAL_ID": self.identity}
        if self.prefix:
            settings["EPICS_PVA_INTERFACE_PREFIX"] = self.prefix
        return settings

    def describe_address(self) -> str:
        """Host, TCP and UDP ports being served, for logs."""
        conf = self._effective
        return f"{self.host} tcp:{conf.get('EPICS_PVAS_SERVER_PORT')} udp:{conf.get('EPICS_PVAS_BROADCAST_PORT')}"

    def pv_names(self, control: bool = False) -> list[str]:
        """Simulated PV names in config order (and the control PVs with control=True)."""
        names = self.config.pv_names()
        if control and self._control is not None:
            names += list(self._control.pvs)
        return names

    @property
    def sim_time(self) -> float:
        """Simulated seconds since start."""
        return self._sim.time if self._sim is not None else 0.0

    def snapshot(self) -> list[dict[str, Any]]:
        """Per device: setpoint, readback, distance to target and armed faults (for live views)."""
        rows: list[dict[str, Any]] = []
        with self._lock:
            sim = self._sim
            if sim is None:
                return rows
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
                    "faults": [a.fault.kind for a in self.faults.active(name)],
                })
            for name, value in sim.observed.items():
                rows.append({
                    "setpoint_pv": None, "setpoint": None, "readback_pv": name, "readback": value,
                    "distance": None, "units": "", "online": self._channels[name].open, "faults": [],
                })
        return rows

    # alarms -----------------------------------------------------------------------------
    def _changed(self) -> None:
        self._refresh_alarms()  # an alarm fault armed or cleared shows at once, not at the next step
        if self._control is not None:
            self._control.changed()

    def _alarm_of(self, name: str, overrides: Mapping[str, Any]) -> Any:
        """The alarm `name` publishes: an armed alarm fault's, else its computed one."""
        assert self._sim is not None  # asked only while serving
        return overrides.get(name) or self._sim.alarms.get(name, OK)

    def _refresh_alarms(self, everything: bool = False) -> None:
        """Publish the alarm of every PV whose alarm fault was armed or cleared since last time
        (of every PV with `everything`)."""
        if self._provider is None or self._sim is None:
            return  # not serving
        overrides = self.faults.alarms(time.monotonic())
        with self._lock:
            self._alarm_posted_at = stamp = time.time()
            names = set(self._channels) if everything else set(overrides) | self._overridden
            for name in names:
                channel = self._channels.get(name)
                if channel is None:
                    continue
                try:
                    channel.post_alarm(self._alarm_of(name, overrides), stamp)
                except Exception:  # noqa: BLE001 - a PV closed by a concurrent stop
                    _log.debug("could not publish the alarm of %s", name, exc_info=True)
            self._overridden = set(overrides)
