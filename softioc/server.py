"""p4p wiring for the simulation: SharedPVs, put handlers, the update loop and faults.

The model decides values; this module only moves them over PVAccess, applies faults at the
wire (held or rejected puts, PVs that vanish) and keeps the audit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from p4p.nt import NTEnum, NTScalar
from p4p.server import Server, StaticProvider
from p4p.server.thread import SharedPV
from p4p.util import ThreadedWorkQueue

from . import _guard
from .audit import ACCEPTED, REJECTED, TIMED_OUT, Audit, FaultRecord, PutRecord
from .config import IOCConfig, ObservableConfig, SetpointConfig, load_config
from .control import ControlPVs
from .faults import (
    NO_READBACK_FAULT,
    SERVER,
    ArmedFault,
    Fault,
    FaultBook,
    Outage,
    PutReject,
    PutTimeout,
    describe,
    fault_from_dict,
)
from .model import PutRefused, Simulation

_guard.ensure_this_package()
_log = logging.getLogger(__name__)

ABANDON_AFTER = 60.0
"""Seconds after which a put held without `complete_after` is abandoned with an error."""


def _plain(value: Any) -> Any:
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


def _nt_for(pv_type: str, control: bool) -> NTScalar | NTEnum:
    codes = {"double": "d", "int": "i", "string": "s", "double_array": "ad"}
    if pv_type == "enum":
        return NTEnum(display=False)
    numeric = pv_type != "string"
    return NTScalar(codes[pv_type], display=numeric, control=control and numeric)


def _initial(cfg: SetpointConfig | ObservableConfig, value: Any, control: bool) -> dict[str, Any]:
    """The full first Value of a PV: value plus the metadata a real record publishes."""
    now = time.time()
    stamp = {"timeStamp.secondsPastEpoch": int(now), "timeStamp.nanoseconds": int(now % 1 * 1e9)}
    if isinstance(cfg, SetpointConfig) and cfg.type == "enum":
        return {"value.index": int(value), "value.choices": list(cfg.choices), **stamp}
    if isinstance(cfg, SetpointConfig) and cfg.type == "string":
        return {"value": value, **stamp}
    data: dict[str, Any] = {"value": value, "display.units": cfg.units, **stamp}
    if cfg.precision is not None:
        data["display.format"] = f"%.{cfg.precision}f"
    limits = getattr(cfg, "limits", None)
    if limits is not None:
        data["display.limitLow"], data["display.limitHigh"] = limits
        if control:
            data["control.limitLow"], data["control.limitHigh"] = limits
    if isinstance(cfg, SetpointConfig) and cfg.description:
        data["display.description"] = cfg.description
    return data


def _post_form(pv_type: str, value: Any) -> Any:
    return {"value.index": int(value)} if pv_type == "enum" else value


@dataclass
class _HeldPut:
    """A put kept open by a PutTimeout fault until `deadline` (monotonic s)."""

    pv: str
    op: Any
    value: Any
    deadline: float
    complete: bool  # True: complete normally (late); False: abandon with an error


@dataclass
class _Channel:
    """One served PV and how the update loop treats it."""

    name: str
    pv: SharedPV
    pv_type: str
    initial: dict[str, Any]
    device: str | None = None  # the setpoint this PV belongs to, if any
    open: bool = True
    last: Any = None
    last_post: float = 0.0


@dataclass
class Stats:
    """Update-loop health: steps run, steps started late, and busy time (s)."""

    steps: int = 0
    late_steps: int = 0
    max_lateness: float = 0.0
    busy: float = 0.0
    posts: int = 0
    started: float = field(default_factory=time.monotonic)


class _SetpointHandler:
    def __init__(self, ioc: SoftIOC, name: str) -> None:
        self._ioc, self._name = ioc, name

    def put(self, pv: SharedPV, op: Any) -> None:
        self._ioc._on_put(self._name, op)


class _ReadOnlyHandler:
    def __init__(self, ioc: SoftIOC, name: str) -> None:
        self._ioc, self._name = ioc, name

    def put(self, pv: SharedPV, op: Any) -> None:
        self._ioc._refuse_put(self._name, op, f"{self._name} is read-only (not a setpoint)")


class FaultControl:
    """Arm, inspect and clear faults on a running (or not yet started) IOC."""

    def __init__(self, ioc: SoftIOC) -> None:
        self._ioc = ioc

    def arm(self, pv: str, fault: Fault) -> ArmedFault:
        """Arm `fault` on `pv` ('*' for a whole-server outage); returns the armed entry."""
        return self._ioc._arm(pv, fault)

    def arm_from_dict(self, spec: Mapping[str, Any]) -> ArmedFault:
        """Arm from data such as {"pv": "X:SET", "kind": "put_timeout", "count": 2}."""
        params = dict(spec)
        try:
            pv, kind = params.pop("pv"), params.pop("kind")
        except KeyError as exc:
            raise ValueError(f"a fault needs 'pv' and 'kind'; {exc.args[0]!r} is missing") from None
        return self.arm(pv, fault_from_dict(kind, params))

    def clear(self, pv: str | None = None) -> int:
        """Disarm faults on `pv` (all when None), release puts they hold; returns how many."""
        return self._ioc._clear(pv)

    def active(self, pv: str | None = None) -> list[ArmedFault]:
        """Faults armed now, in arming order."""
        return self._ioc._book.active(pv)


class SoftIOC:
    """A simulated machine served over PVAccess, on loopback unless told otherwise.

    Use as a context manager, or call start()/stop() (repeatedly if you like). Every start
    builds a fresh simulation from the config; restart() keeps it (an outage, not a reboot).
    """

    def __init__(
        self,
        config: IOCConfig | Mapping[str, Any] | str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        broadcast_port: int = 0,
    ) -> None:
        self.config = load_config(config)
        self.host, self.port, self.broadcast_port = host, port, broadcast_port
        self.audit = Audit()
        self.faults = FaultControl(self)
        self.stats = Stats()
        self._book = FaultBook(self.config.ioc.seed)
        self._lock = threading.RLock()
        self._sim: Simulation | None = None
        self._channels: dict[str, _Channel] = {}
        self._provider: StaticProvider | None = None
        self._server: Server | None = None
        self._server_conf: dict[str, str] | None = None
        self._effective: dict[str, str] = {}  # the running server's configuration
        self._queue: ThreadedWorkQueue | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._held: list[_HeldPut] = []
        self._closing = False  # set by stop(): no new put may be held after the held list is released
        self._timers: list[tuple[float, str, Any]] = []  # (monotonic deadline, action, argument)
        self._scheduled: list[tuple[float, str, Fault]] = []
        self._control = None
        self._restarting = threading.Lock()

    # construction helpers -------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> SoftIOC:
        """An IOC from a TOML config file."""
        return cls(load_config(Path(path)), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **kwargs: Any) -> SoftIOC:
        """An IOC from a dict shaped like the TOML config."""
        return cls(load_config(data), **kwargs)

    def __enter__(self) -> SoftIOC:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SoftIOC {self.config.source} {state} {len(self._channels)} PVs>"

    # life cycle ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> SoftIOC:
        """Build the simulation and PVs, start serving and updating; returns self."""
        if self.running:
            raise RuntimeError("this soft IOC is already running")
        self._stop.clear()
        self._closing = False
        self.stats = Stats()
        self._sim = Simulation(self.config)
        # unbounded: p4p's default (5) drops puts and connect events with queue.Full under load
        self._queue = ThreadedWorkQueue(name="softioc-handlers", workers=2, daemon=True, maxsize=0).start()
        self._channels = {}
        self._build_channels()
        self._control = ControlPVs(self, self.config.ioc.control_prefix, self._queue)
        self._provider = StaticProvider(f"softioc-{id(self):x}")
        for channel in self._channels.values():
            self._provider.add(channel.name, channel.pv)
        for name, pv in self._control.pvs.items():
            self._provider.add(name, pv)
        now = time.monotonic()
        for scheduled in self.config.faults:
            if scheduled.at is None:
                self._arm(scheduled.pv, scheduled.fault, now=now)
            else:
                self._scheduled.append((scheduled.at, scheduled.pv, scheduled.fault))
        self._scheduled.sort(key=lambda item: item[0])
        # outages armed before serving (config start-up faults, or armed on a stopped IOC) fire now:
        # a PV's before the server is up, so no client ever sees it; the whole server's once it is up
        waiting = [a for a in self._book.active() if isinstance(a.fault, Outage) and not a.fired]
        for armed in waiting:
            if armed.pv != SERVER:
                self._fire_outage(armed)
        self._serve()
        self._thread = threading.Thread(target=self._run, name="softioc-update", daemon=True)
        self._thread.start()
        for armed in waiting:
            if armed.pv == SERVER:
                self._fire_outage(armed)
        _log.info("soft IOC serving %d PVs on %s", len(self._channels), self.describe_address())
        return self

    def stop(self) -> None:
        """Stop updating and serving; release every held put; idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=10.0)
        with self._lock:
            self._closing = True
            held, self._held = self._held, []
            self._timers.clear()
            self._scheduled.clear()
        for put in held:
            self._finish_held(put, error="soft IOC stopped before completing this put")
        if self._server is not None:
            self._server.stop()
            self._server = None
        for channel in self._channels.values():
            if channel.open:
                channel.pv.close(destroy=True)
        if self._control is not None:
            self._control.close()
        self._provider = None
        if self._queue is not None:
            self._queue.stop()
            self._queue = None
        self._book.clear()
        _log.info("soft IOC stopped")

    def _serve(self) -> None:
        """Start the p4p server: first time on the configured ports, later on the same ones."""
        conf = dict(self._server_conf) if self._server_conf else {
            "EPICS_PVAS_INTF_ADDR_LIST": self.host,
            "EPICS_PVAS_BEACON_ADDR_LIST": self.host,
            "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
            "EPICS_PVAS_SERVER_PORT": str(self.port),
            "EPICS_PVAS_BROADCAST_PORT": str(self.broadcast_port),
            "EPICS_PVA_ADDR_LIST": self.host,
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_SERVER_PORT": str(self.port),
            "EPICS_PVA_BROADCAST_PORT": str(self.broadcast_port),
        }
        self._server = Server(providers=[self._provider], conf=conf, useenv=False)
        self._effective = self._server.conf()
        # keep the ports actually bound, so restart() and the next start() come back where clients look
        self._server_conf = {k: v for k, v in self._effective.items() if k.startswith("EPICS_PVAS_")}

    def restart(self, downtime: float = 0.0, wait: bool = True) -> None:
        """Take the whole server off the network for `downtime` s, then serve again on the same ports.

        The simulation keeps running meanwhile. With wait=False the IOC comes back by itself.
        """
        if not self.running:
            raise RuntimeError("the soft IOC is not running")
        with self._restarting:
            if self._server is not None:
                self._server.stop()
                self._server = None
            _log.warning("soft IOC server down for %.3g s", downtime)
        if wait:
            self._stop.wait(downtime)
            self._bring_back()
        else:
            with self._lock:
                self._timers.append((time.monotonic() + downtime, "serve", None))

    def _bring_back(self) -> None:
        with self._restarting:
            if self._server is None and self.running:
                self._serve()
                _log.warning("soft IOC server back on %s", self.describe_address())

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

    def describe_address(self) -> str:
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
        rows = []
        with self._lock:
            sim = self._sim
            if sim is None:
                return rows
            for name, device in sim.devices.items():
                cfg = device.config
                readback = sim.readbacks.get(cfg.readback) if cfg.readback else None
                distance = None
                if cfg.type in ("double", "int") and readback is not None:
                    distance = float(readback) - (float(device.setpoint) + cfg.offset)
                rows.append({
                    "setpoint_pv": name, "setpoint": device.setpoint, "readback_pv": cfg.readback,
                    "readback": readback, "distance": distance, "units": cfg.units,
                    "online": self._channels[name].open,
                    "faults": [a.fault.kind for a in self._book.active(name)],
                })
            for name, value in sim.observed.items():
                rows.append({
                    "setpoint_pv": None, "setpoint": None, "readback_pv": name, "readback": value,
                    "distance": None, "units": "", "online": self._channels[name].open, "faults": [],
                })
        return rows

    # PVs --------------------------------------------------------------------------------
    def _build_channels(self) -> None:
        assert self._sim is not None
        for sp in self.config.setpoints:
            device = self._sim.devices[sp.name]
            init = _initial(sp, device.setpoint, control=True)
            pv = SharedPV(
                nt=_nt_for(sp.type, control=True), initial=init,
                handler=_SetpointHandler(self, sp.name), queue=self._queue,
            )
            self._channels[sp.name] = _Channel(sp.name, pv, sp.type, init, device=sp.name, last=device.setpoint)
            if sp.readback:
                value = self._sim.readbacks[sp.readback]
                init = _initial(sp, value, control=False)
                pv = SharedPV(
                    nt=_nt_for(sp.type, control=False), initial=init,
                    handler=_ReadOnlyHandler(self, sp.readback), queue=self._queue,
                )
                self._channels[sp.readback] = _Channel(sp.readback, pv, sp.type, init, device=sp.name, last=value)
        for ob in self.config.observables:
            value = self._sim.observed[ob.name]
            init = _initial(ob, value, control=False)
            pv = SharedPV(
                nt=_nt_for("double", control=False), initial=init,
                handler=_ReadOnlyHandler(self, ob.name), queue=self._queue,
            )
            self._channels[ob.name] = _Channel(ob.name, pv, "double", init, last=value)

    # puts -------------------------------------------------------------------------------
    def _record(self, pv: str, value: Any, outcome: str, message: str = "", fault: str | None = None,
                peer: str = "") -> None:
        self.audit.record_put(PutRecord(pv, value, time.time(), self.sim_time, outcome, message, fault, peer))
        if self._control is not None:
            self._control.update_puts()  # at once, so a script reading PUTS right after its put sees it

    def _record_fault(self, pv: str, kind: str, event: str, detail: dict[str, Any] | None = None) -> None:
        self.audit.record_fault(FaultRecord(pv, kind, event, time.time(), self.sim_time, detail or {}))
        if self._control is not None:
            self._control.changed()

    @staticmethod
    def _peer(op: Any) -> str:
        try:
            return str(op.peer())
        except Exception:  # noqa: BLE001 - the peer is informative only
            return ""

    def _refuse_put(self, name: str, op: Any, message: str) -> None:
        try:
            value = _plain(op.value())
        except ValueError:
            value = None
        self._record(name, value, REJECTED, message, peer=self._peer(op))
        _log.info("put refused: %s", message)
        op.done(error=message)

    def _on_put(self, name: str, op: Any) -> None:
        """Handle a put to a setpoint: check it, let faults act, apply it, audit it."""
        peer = self._peer(op)
        try:
            value = _plain(op.value())
        except ValueError as exc:
            self._record(name, None, REJECTED, str(exc), peer=peer)
            op.done(error=f"{name}: {exc}")
            return
        with self._lock:
            if self._closing:
                self._record(name, value, REJECTED, "soft IOC is stopping", peer=peer)
                op.done(error=f"{name}: soft IOC is stopping")
                return
            device = self._sim.devices[name]
            try:
                coerced = device.coerce(value)
            except PutRefused as exc:
                self._record(name, value, REJECTED, str(exc), peer=peer)
                op.done(error=str(exc))
                return
            armed = self._book.take_put_fault(name, time.monotonic())
            fault = armed.fault if armed else None
            if isinstance(fault, PutReject):
                self._record(name, value, REJECTED, fault.message, fault.kind, peer)
                self._record_fault(name, fault.kind, "fired", {"value": _jsonable(value), "message": fault.message})
                op.done(error=fault.message)
                return
            if isinstance(fault, PutTimeout):
                self._record(name, value, TIMED_OUT, "held by fault injection", fault.kind, peer)
                self._record_fault(name, fault.kind, "fired", {"value": _jsonable(value), "apply": fault.apply})
                if fault.apply:
                    self._apply(name, coerced)
                late = fault.complete_after is not None
                delay = fault.complete_after if late else ABANDON_AFTER
                self._held.append(_HeldPut(name, op, None if fault.apply else coerced,
                                           time.monotonic() + delay, complete=late))
                return
            self._apply(name, coerced)
            self._record(name, value, ACCEPTED, peer=peer)
        op.done()

    def _apply(self, name: str, value: Any) -> None:
        self._sim.devices[name].set(value)
        channel = self._channels[name]
        channel.last = value
        if channel.open:
            channel.pv.post(_post_form(channel.pv_type, value), timestamp=time.time())

    def _finish_held(self, put: _HeldPut, error: str | None) -> None:
        if error is None and put.value is not None:
            with self._lock:
                self._apply(put.pv, put.value)
        try:
            put.op.done(error=error) if error else put.op.done()
        except Exception:  # noqa: BLE001 - the client may be long gone
            _log.debug("could not complete a held put to %s", put.pv, exc_info=True)

    # faults -----------------------------------------------------------------------------
    def _arm(self, pv: str, fault: Fault, now: float | None = None) -> ArmedFault:
        now = time.monotonic() if now is None else now
        setpoints = {sp.name for sp in self.config.setpoints}
        if pv == SERVER:
            if not isinstance(fault, Outage):
                raise ValueError(f"only an outage can be armed on the whole server ('{SERVER}'), not {fault.kind}")
        elif pv not in setpoints:
            if pv not in self.config.pv_names():
                raise ValueError(f"{pv!r} is not served by this soft IOC")
            if not isinstance(fault, Outage):
                raise ValueError(f"{pv!r} is not a setpoint: only an outage can be armed on it, not {fault.kind}")
        armed = self._book.arm(pv, fault, now)
        self._record_fault(pv, fault.kind, "armed", describe(fault))
        _log.info("fault armed on %s: %s", pv, describe(fault))
        if isinstance(fault, Outage) and self.running:
            self._fire_outage(armed)
        return armed

    def _fire_outage(self, armed: ArmedFault) -> None:
        armed.fired += 1
        self._start_outage(armed.pv, armed.fault)

    def _start_outage(self, pv: str, fault: Outage) -> None:
        self._record_fault(pv, fault.kind, "fired", {"duration": fault.duration})
        if pv == SERVER:
            self.restart(fault.duration, wait=False)
            return
        with self._lock:
            for channel in self._related(pv):
                if channel.open:
                    channel.open = False
                    channel.pv.close()  # not destroy: clients reconnect when it reopens

    def _related(self, pv: str) -> list[_Channel]:
        """A setpoint goes away with its readback; any other PV goes away alone."""
        channel = self._channels[pv]
        if channel.device == pv:
            return [c for c in self._channels.values() if c.device == pv]
        return [channel]

    def _end_outage(self, pv: str) -> None:
        if pv == SERVER:
            self._bring_back()
            return
        with self._lock:
            for channel in self._related(pv):
                if not channel.open:
                    value = dict(channel.initial)
                    key = "value.index" if channel.pv_type == "enum" else "value"
                    value[key] = int(channel.last) if channel.pv_type == "enum" else channel.last
                    channel.pv.open(value)
                    channel.open = True

    def _clear(self, pv: str | None) -> int:
        removed = self._book.clear(pv)
        for armed in removed:
            self._retire(armed, "cleared")
        with self._lock:
            release = [h for h in self._held if pv is None or h.pv == pv]
            self._held = [h for h in self._held if h not in release]
        for put in release:
            self._finish_held(put, error=f"{put.pv}: put abandoned (fault cleared)")
        return len(removed)

    def _retire(self, armed: ArmedFault, event: str) -> None:
        self._record_fault(armed.pv, armed.fault.kind, event, {"fired": armed.fired})
        if isinstance(armed.fault, Outage):
            self._end_outage(armed.pv)

    # the update loop --------------------------------------------------------------------
    def _run(self) -> None:
        period = 1.0 / self.config.ioc.update_rate
        deadline = time.monotonic()
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            lateness = time.monotonic() - deadline
            if lateness > period / 2:
                self.stats.late_steps += 1
            self.stats.max_lateness = max(self.stats.max_lateness, lateness)
            deadline += period
            if lateness > 1.0:  # hopelessly behind (suspended?): resynchronise, don't burst
                deadline = time.monotonic() + period
            began = time.monotonic()
            try:
                self._step(began)
            except Exception:  # noqa: BLE001 - one bad step must not kill the machine
                _log.exception("soft IOC update step failed")
            self.stats.busy += time.monotonic() - began

    def _step(self, now: float) -> None:
        for armed in self._book.expire(now):
            self._retire(armed, "expired")
        with self._lock:
            sim = self._sim
            due = [t for t in self._timers if t[0] <= now]
            self._timers = [t for t in self._timers if t[0] > now]
            late = [h for h in self._held if h.deadline <= now]
            self._held = [h for h in self._held if h.deadline > now]
            while self._scheduled and self._scheduled[0][0] <= sim.time:
                at, pv, fault = self._scheduled.pop(0)
                self._arm(pv, fault, now)
            rates: dict[str, float | None] = {}
            states = self._book.readback_states(now)  # one pass over the armed faults, not one per PV
            for name, device in sim.devices.items():
                stuck, bias, drift, rate = states.get(name, NO_READBACK_FAULT)
                device.stuck, device.bias, device.drift_rate = stuck, bias, drift
                rates[name] = rate
            updates = sim.step()
        for _, action, _arg in due:
            if action == "serve":
                self._bring_back()
        for put in late:
            self._finish_held(put, None if put.complete else f"{put.pv}: put abandoned after {ABANDON_AFTER:.0f} s")
        self.stats.steps += 1
        stamp = time.time()
        for name, value in updates.items():
            channel = self._channels[name]
            if not channel.open:
                continue
            rate = rates.get(channel.device) if channel.device else None
            if rate is not None and (rate <= 0 or now - channel.last_post < 1.0 / rate):
                continue
            if _same(value, channel.last):
                continue
            channel.last, channel.last_post = value, now
            channel.pv.post(_post_form(channel.pv_type, value), timestamp=stamp)
            self.stats.posts += 1
        if self._control is not None:
            self._control.update()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    return a == b


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
