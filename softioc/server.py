"""The soft IOC's life cycle: start/stop/restart, the put handler and the update loop.

The model decides values; `channels` maps them onto p4p, `injection` applies faults at the
wire (held or rejected puts, PVs that vanish); this module ties them together and keeps the audit.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from p4p.server import Server, StaticProvider
from p4p.util import ThreadedWorkQueue

from . import _guard
from .access import AccessRule, owner, peer_of
from .alarms import OK
from .audit import ACCEPTED, REJECTED, TIMED_OUT, Audit, PutRecord
from .channels import Channel, build_channels, plain
from .config import IOCConfig, load_config
from .control import ControlPVs
from .errors import NetworkRefused, PortInUseError, PutRefused
from .faults import NO_EFFECT
from .injection import ABANDON_AFTER, FaultControl, Wire
from .model import Simulation
from .vector import VectorSimulation

_guard.ensure_this_package()
_log = logging.getLogger(__name__)

__all__ = ["ABANDON_AFTER", "SoftIOC", "Stats", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True when `host` (an address or 'localhost') reaches this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PutQueue:
    """Where the setpoints' put handlers run: at once on the server's own thread when the
    machine is free, else in arrival order on one of the handler workers.

    Handling a put where it arrives saves two thread hand-offs per put (to a worker, and back
    for the reply), most of a put's cost; a real IOC processes a put in place too. The
    machine's lock is only tried, never waited for here: a thread holding it may be waiting
    on the server's thread (closing a PV). While earlier puts wait, later ones queue behind
    them, and one worker at a time runs the queue, so puts are handled in the order they came.
    A thread holding the guard never waits for the server's thread, nor frees a server
    operation (p4p's ServerOperation waits for that thread when freed); the server's thread
    never waits for the guard while holding the machine's lock.
    """

    def __init__(self, lock: threading.RLock, workers: ThreadedWorkQueue) -> None:
        self._lock, self._workers = lock, workers
        self._guard = threading.Lock()
        self._pending: deque[Any] = deque()  # work waiting for the machine, oldest first
        self._draining = False  # a worker is running the pending work
        self._running = 0  # 1 while that worker runs one of it

    def push(self, work: Any) -> None:
        """Run `work` now if the machine's lock is free and nothing waits; queue it otherwise."""
        with self._guard:  # never taken while holding the machine's lock (see _drain)
            idle = not self._pending and not self._draining
        if idle and self._lock.acquire(blocking=False):
            try:
                work()
                return
            finally:
                self._lock.release()
        with self._guard:
            self._pending.append(work)
            if self._draining:
                return
            self._draining = True
        self._workers.push(self._drain)

    push_wait = push

    @property
    def waiting(self) -> int:
        """How many queued handlers have not finished yet (the one running included)."""
        with self._guard:
            return len(self._pending) + self._running

    def _drain(self) -> None:
        while True:
            with self._guard:
                if not self._pending:
                    self._draining = False
                    return
                work = self._pending.popleft()
                self._running = 1
            try:
                work()  # p4p's wrapper answers the put with the error of anything it raises
            except Exception:  # noqa: BLE001 - one bad handler must not strand the ones behind it
                _log.exception("soft IOC put handler failed")
            finally:
                # freeing the handler frees its server operation, which waits for the server's
                # thread: never under the guard, which that thread may be waiting for
                work = None
                with self._guard:
                    self._running = 0


@dataclass
class Stats:
    """Update-loop health: steps run, steps started late, and busy time (s)."""

    steps: int = 0
    late_steps: int = 0
    max_lateness: float = 0.0
    busy: float = 0.0
    posts: int = 0


class SoftIOC:
    """A simulated machine served over PVAccess, on loopback unless told otherwise.

    `config` is an IOCConfig, a dict shaped like the TOML file, or the path of one. Use as a
    context manager, or call start()/stop() (repeatedly if you like). Every start builds a fresh
    simulation from the config; restart() keeps it (an outage, not a reboot). An explicit
    `port` (TCP) that cannot be bound fails the start with PortInUseError. With processes=N > 1
    (or `[ioc] processes = N`) the result is a softioc.machine.Machine of N shard processes.

    Every start draws a new `identity` (uuid4 hex), published in every PV's `softiocId`
    field and in the control PV `ID`; restart() keeps it. A `host` beyond loopback needs
    `allow_network` (argument, else `[ioc] allow_network`): the start is refused otherwise.
    Every PV is served under `[ioc] prefix`. Control PVs obey `[ioc] control_from` (default:
    the account that started the IOC), setpoints `[ioc] write_from` (default: everyone).
    """

    def __new__(cls, config: Any = None, *args: Any, processes: int | None = None, **kwargs: Any) -> Any:
        # processes=N > 1 (or [ioc] processes) gives a machine of N shard processes with the same API
        if cls is SoftIOC and config is not None:
            loaded = load_config(config)
            count = processes or loaded.ioc.processes
            if count > 1:
                from .machine import Machine

                # not carried to the shards yet: refused rather than silently dropped
                ioc = loaded.ioc
                unsupported = [key for key, given in (
                    ("audit", kwargs.get("audit") or ioc.audit), ("prefix", ioc.prefix),
                    ("control_from", ioc.control_from), ("write_from", ioc.write_from),
                    ("allow_network", kwargs.get("allow_network") or ioc.allow_network)) if given]
                if unsupported:
                    raise ValueError(f"{', '.join(unsupported)} is not supported with processes={count} "
                                     "yet: serve one process for it")
                kwargs.pop("audit", None), kwargs.pop("allow_network", None)
                return Machine(loaded, processes=count, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        config: IOCConfig | Mapping[str, Any] | str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        broadcast_port: int = 0,
        audit: str | Path | None = None,
        allow_network: bool | None = None,
        processes: int | None = None,
    ) -> None:
        if processes not in (None, 1):
            raise ValueError(f"processes must be >= 1, got {processes!r}")
        self.config = load_config(config)
        self.host, self.port, self.broadcast_port = host, port, broadcast_port
        self.allow_network = self.config.ioc.allow_network if allow_network is None else bool(allow_network)
        self.prefix = self.config.ioc.prefix
        self.identity = ""  # drawn by start()
        self.owner = owner()
        self._write_rule: AccessRule | None = None
        # every put and fault event also appended to this JSON Lines file (AuditFileError if not)
        self.audit = Audit(audit if audit is not None else self.config.ioc.audit)
        self.stats = Stats()
        self._lock = threading.RLock()
        self.faults = FaultControl(self.config, self.audit, self._lock, Wire(
            apply=self._apply, take_down=lambda downtime: self.restart(downtime, wait=False),
            bring_back=self._bring_back, clock=lambda: self.sim_time, changed=self._changed,
        ))
        self._sim: Simulation | None = None
        self._channels: dict[str, Channel] = {}
        self._server: Server | None = None
        self._server_conf: dict[str, str] | None = None
        self._effective: dict[str, str] = {}  # the running server's configuration
        self._queue: ThreadedWorkQueue | None = None
        self._puts: PutQueue | None = None  # the setpoints' handlers, at once when the machine is free
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._serve_again_at: float | None = None  # monotonic s: when a restart(wait=False) ends
        self._control: ControlPVs | None = None
        self._provider: StaticProvider | None = None
        self._restarting = threading.Lock()
        self._overridden: set[str] = set()  # PVs publishing an alarm fault's alarm now

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
        self._check_network()
        settings = self.config.ioc
        control_rule = AccessRule.build(
            "control_from", settings.control_from if settings.control_from is not None else (self.owner,))
        self._write_rule = AccessRule.build("write_from", settings.write_from)
        self.identity = uuid.uuid4().hex
        self._stop.clear()
        self.stats = Stats()
        self._sim = self._simulation()
        # unbounded: p4p's default (5) drops puts and connect events with queue.Full under load
        self._queue = ThreadedWorkQueue(name="softioc-handlers", workers=2, daemon=True, maxsize=0).start()
        self._puts = PutQueue(self._lock, self._queue)
        self._channels = build_channels(self.config, self._sim, self._puts, self._on_put, self._refuse_put,
                                        self.identity)
        self._control = ControlPVs(
            self.config.ioc.control_prefix, self._queue, faults=self.faults, audit=self.audit,
            clock=lambda: self.sim_time, restart=lambda downtime: self.restart(downtime, wait=False),
            identity=self.identity, rule=control_rule,
        )
        self._provider = StaticProvider(f"softioc-{id(self):x}")
        for channel in self._channels.values():
            self._provider.add(self.prefix + channel.name, channel.pv)
        for name, pv in self._control.pvs.items():
            self._provider.add(self.prefix + name, pv)
        self._overridden = set()
        self.faults.start(self._channels)
        self._refresh_alarms(everything=True)  # computed alarms and config alarm faults show at once
        try:
            self._serve()
        except Exception:
            self._teardown()
            raise
        self._thread = threading.Thread(target=self._run, name="softioc-update", daemon=True)
        self._thread.start()
        self.faults.serving()
        _log.info("soft IOC serving %d PVs on %s", len(self._channels), self.describe_address())
        return self

    def _check_network(self) -> None:
        """Refuse, before any server exists, to serve beyond loopback unless allowed."""
        if is_loopback(self.host) or self.allow_network:
            return
        names = self.config.pv_names()
        shown = ", ".join(self.prefix + n for n in names[:3]) + (", ..." if len(names) > 3 else "")
        raise NetworkRefused(
            f"soft IOC: refusing to serve on {self.host}, which is not loopback: it would answer "
            f"for these PV names ({shown}) to every client on that network, shadowing any real IOC "
            "serving them there; pass --allow-network (SoftIOC(allow_network=True), [ioc] "
            "allow_network = true) if that is meant, and consider --prefix")

    def _simulation(self) -> Simulation:
        """A fresh model of the config, stepping alike devices in arrays (softioc.vector)."""
        return VectorSimulation(self.config)

    def stop(self) -> None:
        """Stop updating and serving; release every held put; idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=10.0)
        self._teardown()
        _log.info("soft IOC stopped")

    def _teardown(self) -> None:
        self.faults.stop()
        with self._lock:
            self._serve_again_at = None
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
        server = Server(providers=[self._provider], conf=conf, useenv=False)
        effective = server.conf()
        # pvxs moves a server whose TCP port is taken to another one with only a warning, and
        # clients then see two servers of the same PVs: an explicit (or, on restart, a
        # previously bound) port must be the one bound. The UDP search port is not checked:
        # pvxs binds it with SO_REUSEADDR so that several servers on one host share it (as
        # EPICS IOCs share 5076), and it reports the asked port whether shared or not.
        wanted = conf["EPICS_PVAS_SERVER_PORT"]
        if wanted != "0" and effective["EPICS_PVAS_SERVER_PORT"] != wanted:
            server.stop()
            raise PortInUseError(
                f"soft IOC: TCP port {wanted} on {self.host} is in use by another server "
                f"(pvxs fell back to {effective['EPICS_PVAS_SERVER_PORT']}); stop it or choose another port"
            )
        self._server, self._effective = server, effective
        # keep the ports actually bound, so restart() and the next start() come back where clients look
        self._server_conf = {k: v for k, v in effective.items() if k.startswith("EPICS_PVAS_")}

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
                self._serve_again_at = time.monotonic() + downtime

    def _bring_back(self) -> None:
        with self._restarting:
            if self._server is None and self.running:
                try:
                    self._serve()
                except PortInUseError:
                    _log.exception("soft IOC cannot serve again on its port; it stays down")
                    return
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

    # puts -------------------------------------------------------------------------------
    def _record(self, pv: str, value: Any, outcome: str, message: str = "", fault: str | None = None,
                peer: str = "", applied: Any = None) -> None:
        self.audit.record_put(PutRecord(pv, value, time.time(), self.sim_time, outcome, message, fault, peer,
                                        applied))
        if self._control is not None:
            self._control.update_puts()  # at once, so a script reading PUTS right after its put sees it

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
            stamp = time.time()
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

    @staticmethod
    def _peer(op: Any) -> str:
        try:
            return str(op.peer())
        except Exception:  # noqa: BLE001 - the peer is informative only
            return ""

    def _refuse_put(self, name: str, op: Any) -> None:
        message = f"{name} is read-only (not a setpoint)"
        try:
            value = plain(op.value())
        except ValueError:
            value = None
        self._record(name, value, REJECTED, message, peer=self._peer(op))
        _log.info("put refused: %s", message)
        op.done(error=message)

    def _on_put(self, name: str, op: Any) -> None:
        """Handle a put to a setpoint: check it, let faults act, apply it, audit it."""
        peer = self._peer(op)
        try:
            value = _requested(op)
        except ValueError as exc:
            self._record(name, None, REJECTED, str(exc), peer=peer)
            op.done(error=f"{name}: {exc}")
            return
        rule = self._write_rule
        # an open rule (the default) lets everyone write: no account or address to look up
        refusal = rule.refusal(name, *peer_of(op)) if rule is not None and rule.entries is not None else None
        if refusal is not None:
            self._record(name, value, REJECTED, refusal, peer=peer)
            _log.warning("%s", refusal)
            op.done(error=refusal)
            return
        with self._lock:
            if self.faults.closing:
                self._record(name, value, REJECTED, "soft IOC is stopping", peer=peer)
                op.done(error=f"{name}: soft IOC is stopping")
                return
            assert self._sim is not None  # puts are served only once started
            try:
                coerced = self._sim.devices[name].coerce(value)
            except PutRefused as exc:
                self._record(name, value, REJECTED, str(exc), peer=peer)
                op.done(error=str(exc))
                return
            faulted = self.faults.take_put(name, coerced)
            if faulted is not None:
                kind, effect = faulted
                if effect.reject is not None:
                    self._record(name, value, REJECTED, effect.reject, kind, peer)
                    self.faults.report_fired(name, kind, value, effect)
                    op.done(error=effect.reject)
                    return
                if effect.hold:
                    self._record(name, value, TIMED_OUT, "held by fault injection", kind, peer,
                                 coerced if effect.apply else None)
                    self.faults.report_fired(name, kind, value, effect)
                    if effect.apply:
                        self._apply(name, coerced)
                    self.faults.hold(name, op, coerced, effect)
                    return
            self._apply(name, coerced)
            self._record(name, value, ACCEPTED, peer=peer, applied=coerced)
            if self._sim.devices[name].numeric and not _same(coerced, value):
                _log.info("put to %s: %r clamped to %r (its limits)", name, value, coerced)
        op.done()

    def _apply(self, name: str, value: Any) -> None:
        assert self._sim is not None  # puts are served only once started
        self._sim.apply(name, value)
        channel = self._channels[name]
        alarm = self._alarm_of(name, self.faults.alarms(time.monotonic()))
        if channel.open:
            channel.post(value, time.time(), alarm)
        else:
            channel.last, channel.alarm = value, alarm

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
        effects = self.faults.tick(now)  # one pass over the armed faults, not one per PV
        overrides = self.faults.alarms(now)
        with self._lock:
            serve_again = self._serve_again_at is not None and self._serve_again_at <= now
            if serve_again:
                self._serve_again_at = None
            sim = self._sim
            assert sim is not None  # the update loop runs only once started
            for name, device in sim.devices.items():
                device.faults = effects.get(name, NO_EFFECT)
            updates = sim.step()
        if serve_again:
            self._bring_back()
        self.stats.steps += 1
        stamp = time.time()
        step = 1.0 / self.config.ioc.update_rate  # wall s between update steps
        for name, value in updates.items():
            channel = self._channels[name]
            if not channel.open:  # reopened with the newest value: an unchanged one is not reported again
                channel.last = value
                continue
            rate = effects.get(channel.device, NO_EFFECT).rate if channel.device else None
            if not channel.due(now, rate, step):
                continue
            alarm = self._alarm_of(name, overrides)
            if channel.holds(value) and alarm == channel.alarm:
                continue
            channel.last_post = now
            channel.post(value, stamp, alarm)
            self.stats.posts += 1
        if self._control is not None:
            self._control.update()


def _requested(op: Any) -> Any:
    """What a put asks for, as plain Python: channels.plain(op.value()), without first wrapping
    the Value in its NT class (p4p 4.3.0's operation wrapper keeps the raw operation as `_op`)."""
    inner = getattr(op, "_op", None)
    if inner is None:
        return plain(op.value())
    raw = inner.value()
    try:
        if "NTEnum" in raw.getID():
            return int(raw["value.index"])
        return plain(raw["value"])
    except KeyError as exc:
        raise ValueError(f"the put carries no {exc}") from None


_SCALARS = (float, int, str, bool)


def _same(a: Any, b: Any) -> bool:
    """True when a put's applied value is the requested one (no clamping)."""
    if type(a) is type(b) and type(a) in _SCALARS:  # the usual case, without numpy
        return bool(a == b)
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return False
