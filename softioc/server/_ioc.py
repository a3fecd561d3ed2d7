"""One soft IOC process: its life cycle (start/stop/restart) and its update loop.

The model decides values; `_channels` maps them onto p4p, `_fault_control` applies faults at the
wire (held or rejected puts, PVs that vanish). SoftIOC ties its parts together: it owns its
fault control (`_fault_control`), its endpoint (the p4p server and its ports, `_endpoint`),
and for each run a put path (`_puts`) and the views that publish alarms and give the live
view (`_views`); it keeps the audit.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from p4p.server import StaticProvider
from p4p.util import ThreadedWorkQueue

from .. import _guard
from ..config import IOCConfig, check_load, load_config
from ..errors import NetworkRefused, UpdateLoopError
from ..model import (
    OK,
    FunctionStats,
    ObservableFunction,
    Simulation,
    VectorSimulation,
    check_functions,
)
from ._access import AccessRule, is_loopback, owner
from ._audit import Audit
from ._channels import Channel, PostBatch, build_channels
from ._control import ControlPVs
from ._endpoint import Endpoint
from ._fault_control import ABANDON_AFTER, FaultControl, Wire
from ._put_queue import PutQueue
from ._puts import PutPath
from ._stats import Stats
from ._views import Views

_guard.ensure_this_package()
_log = logging.getLogger(__name__)

MAX_FAILED_STEPS = 10
"""Update steps in a row that may fail (each logged) before the loop is taken for dead."""

__all__ = ["ABANDON_AFTER", "SoftIOC", "Stats", "is_loopback"]


class SoftIOC:
    """A simulated machine served over PVAccess, on loopback unless told otherwise.

    `config` is an IOCConfig, a dict shaped like the TOML file, or the path of one. Use as a
    context manager, or call start()/stop() (repeatedly if you like). Every start builds a fresh
    simulation from the config; restart() keeps it (an outage, not a reboot). An explicit
    `port` (TCP) that cannot be bound fails the start with PortInUseError. A SoftIOC is one
    process: a config asking for N > 1 (`[ioc] processes = N`, or processes=N) is refused, and
    softioc.serve(config) gives a SoftIOC or a softioc.Machine of N processes as it asks.

    Every start draws a new `identity` (uuid4 hex), published in every PV's `softiocId`
    field and in the control PV `ID`; restart() keeps it. A `host` beyond loopback needs
    `allow_network` (argument, else `[ioc] allow_network`): the start is refused otherwise.
    Every PV is served under `[ioc] prefix`. Control PVs obey `[ioc] control_from` (default:
    the account that started the IOC), setpoints `[ioc] write_from` (default: everyone).

    `observables` computes observables of the config with Python functions ({name: fn}): each
    call gets the observable's `inputs` as keyword arguments and returns a number; the config
    still names the observable and its inputs (its `expression` may then be left out). A call
    that raises puts the PV in INVALID alarm with the message; a step waits for the calls at
    most `observable_budget` s (default: half an update period), so a slow function is skipped
    and counted (observable_stats()), never stalling the other PVs; one that raises a
    BaseException (SystemExit, KeyboardInterrupt) stops the IOC, as below.

    An update loop that dies (an exception escaping it, or MAX_FAILED_STEPS failed steps in a
    row) takes the IOC off the network rather than leave it answering with frozen values:
    `failure` holds the exception, and `wait()` and the next `stop()` raise UpdateLoopError.
    """

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
        observables: Mapping[str, ObservableFunction] | None = None,
        observable_budget: float | None = None,
    ) -> None:
        self.config = load_config(config)
        _check_one_process(self.config, processes)
        # a config built in code (a shard's share of a machine) has not met the loader's check
        check_load(self.config.source, len(self.config.pv_names()), self.config.ioc)
        # Python observables: checked now (a name the config lacks, an observable left without
        # an expression), not at start()
        self._functions = dict(observables or {})
        if observable_budget is not None and not 0 < observable_budget <= 60:
            raise ValueError(f"observable_budget must be within (0, 60] s, got {observable_budget!r}")
        self._budget = observable_budget
        check_functions(self.config, self._functions)
        self.allow_network = self.config.ioc.allow_network if allow_network is None else bool(allow_network)
        self.prefix = self.config.ioc.prefix
        self.identity = ""  # drawn by start()
        self.owner = owner()
        # every put and fault event also appended to this JSON Lines file (AuditFileError if not)
        self.audit = Audit(audit if audit is not None else self.config.ioc.audit)
        self.stats = Stats()
        self._lock = threading.RLock()  # the machine's: the model, its channels and the fault state
        self._endpoint = Endpoint(host, port, broadcast_port)
        self.faults = FaultControl(self.config, self.audit, self._lock, Wire(
            apply=self._apply, take_down=lambda downtime: self.restart(downtime, wait=False),
            bring_back=self._bring_back, clock=lambda: self.sim_time, changed=self._changed,
        ))
        # one run's parts, built by start() and kept after stop() (what the last run served)
        self._sim: Simulation | None = None
        self._channels: dict[str, Channel] = {}
        self._control: ControlPVs | None = None
        self._views: Views | None = None
        self._put_path: PutPath | None = None
        self._provider: StaticProvider | None = None  # None while not serving
        self._queue: ThreadedWorkQueue | None = None
        self._puts: PutQueue | None = None  # the setpoints' handlers, at once when the machine is free
        # the update loop
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._serve_again_at: float | None = None  # monotonic s: when a restart(wait=False) ends
        self._stepped_due: float | None = None  # monotonic s the last step run was due at
        # why the update loop died (None while it runs); the IOC then stops serving at once
        self.failure: BaseException | None = None
        self._failure_told = False  # stop() raises the failure once
        self._down = threading.Event()  # set when this run ends: stopped, or its loop died
        self._teardown_lock = threading.Lock()
        self._torn_down = True  # nothing to tear down before a start

    def __enter__(self) -> SoftIOC:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SoftIOC {self.config.source} {state} {len(self._channels)} PVs>"

    @property
    def host(self) -> str:
        """The interface address served on."""
        return self._endpoint.host

    @property
    def port(self) -> int:
        """The TCP port asked for (0: a free one); once bound, restarts keep the bound one."""
        return self._endpoint.port

    @port.setter
    def port(self, port: int) -> None:
        self._endpoint.port = port

    @property
    def broadcast_port(self) -> int:
        """The UDP search port asked for (0: a free one)."""
        return self._endpoint.broadcast_port

    @broadcast_port.setter
    def broadcast_port(self, port: int) -> None:
        self._endpoint.broadcast_port = port

    @property
    def running(self) -> bool:
        """Started, not stopped, and its update loop alive."""
        return self._thread is not None and self.failure is None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until this run ends (stop(), or the update loop died), at most `timeout` s.

        True once stopped, False on timeout; UpdateLoopError (from the loop's exception) when the
        update loop died, which took the IOC off the network.
        """
        if not self._down.wait(timeout):
            return False
        if self.failure is not None:
            raise self._failure_error() from self.failure
        return True

    def _failure_error(self) -> UpdateLoopError:
        exc = self.failure
        return UpdateLoopError(f"soft IOC update loop died: {type(exc).__name__}: {exc}; the IOC stopped "
                               "serving (its PVs would otherwise answer with frozen values)")

    # life cycle ---------------------------------------------------------------------------
    def start(self) -> SoftIOC:
        """Build the simulation and PVs, start serving and updating; returns self."""
        if self._thread is not None:
            raise RuntimeError("this soft IOC is already running (or its update loop died: stop() it first)")
        self._check_network()
        settings = self.config.ioc
        control_rule = AccessRule.build(
            "control_from", settings.control_from if settings.control_from is not None else (self.owner,))
        write_rule = AccessRule.build("write_from", settings.write_from)
        self.identity = self._new_identity()
        self._stop.clear()
        self._down.clear()
        self.failure, self._failure_told, self._torn_down = None, False, False
        self.stats = Stats()
        self._sim = sim = self._simulation()
        self._stepped_due = None
        # unbounded: p4p's default (5) drops puts and connect events with queue.Full under load
        self._queue = ThreadedWorkQueue(name="softioc-handlers", workers=2, daemon=True, maxsize=0).start()
        self._puts = PutQueue(self._lock, self._queue)
        self._channels = build_channels(self.config, sim, self._puts, self._on_put, self._refuse_put,
                                        self.identity)
        self._control = ControlPVs(
            settings.control_prefix, self._queue, faults=self.faults, audit=self.audit,
            clock=lambda: self.sim_time, restart=lambda downtime: self.restart(downtime, wait=False),
            identity=self.identity, rule=control_rule,
        )
        self._views = Views(sim, self._channels, self.faults, self._lock)
        self._put_path = PutPath(sim=sim, views=self._views, faults=self.faults, audit=self.audit,
                                 control=self._control, lock=self._lock, write_rule=write_rule,
                                 clock=lambda: self.sim_time, overdue=self._overdue_steps)
        self._provider = StaticProvider(f"softioc-{id(self):x}")
        for channel in self._channels.values():
            self._provider.add(self.prefix + channel.name, channel.pv)
        for name, pv in self._control.pvs.items():
            self._provider.add(self.prefix + name, pv)
        self.faults.start(self._channels)
        self._views.refresh(everything=True)  # computed alarms and config alarm faults show at once
        try:
            self._endpoint.serve(self._provider)
        except Exception:
            self._teardown()
            raise
        self._thread = threading.Thread(target=self._run, name="softioc-update", daemon=True)
        self._thread.start()
        self.faults.serving()
        _log.info("soft IOC serving %d PVs on %s", len(self._channels), self.describe_address())
        return self

    def _new_identity(self) -> str:
        """The id this start publishes in `softiocId` (a shard of a machine takes the machine's)."""
        return uuid.uuid4().hex

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
        """A fresh model of the config, stepping alike devices in arrays (softioc.model.VectorSimulation)."""
        return VectorSimulation(self.config, self._functions, self._budget)

    def observable_stats(self) -> dict[str, FunctionStats]:
        """Per Python observable: calls, errors, calls over the step's budget, skipped steps,
        the longest call (s) and the last error, in this run (empty before the first start)."""
        runner = self._sim.functions if self._sim is not None else None
        return {} if runner is None else {name: dataclasses.replace(st) for name, st in runner.stats.items()}

    def stop(self) -> None:
        """Stop updating and serving; release every held put; idempotent. UpdateLoopError (once)
        when the update loop had died, which had already taken the IOC off the network."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=10.0)
            self._teardown()
            self._down.set()
            _log.info("soft IOC stopped")
        if self.failure is not None and not self._failure_told:
            self._failure_told = True
            raise self._failure_error() from self.failure

    def _teardown(self) -> None:
        with self._teardown_lock:  # by stop(), and by an update loop that died: once
            if self._torn_down:
                return
            self._torn_down = True
        self.faults.stop()
        if self._sim is not None:
            self._sim.close()
        with self._lock:
            self._serve_again_at = None
        self._endpoint.close()
        for channel in self._channels.values():
            if channel.open:
                channel.pv.close(destroy=True)
        if self._control is not None:
            self._control.close()
        self._provider = None
        if self._queue is not None:
            self._queue.stop()
            self._queue = None

    def restart(self, downtime: float = 0.0, wait: bool = True) -> None:
        """Take the whole server off the network for `downtime` s, then serve again on the same ports.

        The simulation keeps running meanwhile. With wait=False the IOC comes back by itself.
        """
        if not self.running:
            raise RuntimeError("the soft IOC is not running")
        self._endpoint.take_down()
        _log.warning("soft IOC server down for %.3g s", downtime)
        if wait:
            self._stop.wait(downtime)
            self._bring_back()
        else:
            with self._lock:
                self._serve_again_at = time.monotonic() + downtime

    def _bring_back(self) -> None:
        provider = self._provider
        if provider is not None and self.running:  # never after the update loop died
            self._endpoint.bring_back(provider)

    # the parts' wiring ----------------------------------------------------------------------
    def _on_put(self, name: str, op: Any) -> None:
        """A put to a setpoint, from its channel's handler on the p4p work queue."""
        assert self._put_path is not None  # built before the channels are served
        self._put_path.on_put(name, op)

    def _refuse_put(self, name: str, op: Any) -> None:
        """A put to any other PV, from its channel's handler on the p4p work queue."""
        assert self._put_path is not None  # built before the channels are served
        self._put_path.refuse(name, op)

    def _apply(self, name: str, value: Any) -> None:
        """Fault injection completes a held put: the value reaches the device now."""
        assert self._put_path is not None  # puts are held only once started
        self._put_path.apply(name, value)

    def _changed(self) -> None:
        """Fault state changed: its alarms show at once, not at the next step, and so do the control PVs."""
        if self._views is not None and self._provider is not None:
            self._views.refresh()
        if self._control is not None:
            self._control.changed()

    def _overdue_steps(self) -> int:
        """Update steps due by now that a late loop has yet to run (0 when it keeps time, or is so
        late it will resynchronise): a put's effect on the readback waits for them."""
        if self._stepped_due is None:
            return 0
        period = 1.0 / self.config.ioc.update_rate
        behind = time.monotonic() - self._stepped_due
        return int(behind / period) if behind <= 1.0 + period else 0

    # what clients and operators see -------------------------------------------------------------
    def client_conf(self) -> dict[str, str]:
        """The client configuration: `Context('pva', conf=ioc.client_conf(), useenv=False)`."""
        if not self.running:
            raise RuntimeError("start the soft IOC before asking for its client configuration")
        return self._endpoint.client_conf()

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
        return self._endpoint.describe()

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
        return [] if self._views is None else self._views.snapshot()

    # the update loop --------------------------------------------------------------------
    def _run(self) -> None:
        """The update thread: the loop, and when it dies (any exception), the IOC taken down."""
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - whatever killed it, a frozen server must not stay
            self._die(exc)

    def _die(self, exc: BaseException) -> None:
        """Record why the loop died, say so, and stop serving (stop() then raises it)."""
        self.failure = exc
        _log.critical("%s", self._failure_error(), exc_info=exc)
        try:
            self._teardown()
        finally:
            self._down.set()

    def _loop(self) -> None:
        """Step the model every period on a fixed schedule; a step that runs late (by under 1 s)
        is still one step, stamped and scheduled as of the time it stands for. A step that fails
        is logged and the next one runs; MAX_FAILED_STEPS in a row end the loop."""
        period = 1.0 / self.config.ioc.update_rate
        deadline = time.monotonic()
        failed = 0
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            began, began_cpu = time.monotonic(), time.thread_time()
            lateness = began - deadline
            if lateness > period / 2:
                self.stats.late_steps += 1
            self.stats.max_lateness = max(self.stats.max_lateness, lateness)
            due = deadline
            deadline += period
            if lateness > 1.0:  # hopelessly behind (suspended?): resynchronise, don't burst
                due, deadline = began, began + period
            try:
                self._step(began, due)
                failed = 0
            except Exception:  # one bad step must not kill the machine; a loop failing every step is dead
                failed += 1
                _log.exception("soft IOC update step failed (%d in a row)", failed)
                if failed >= MAX_FAILED_STEPS:
                    raise
            self.stats.busy += time.monotonic() - began
            self.stats.cpu += time.thread_time() - began_cpu

    def _step(self, now: float, due: float) -> None:
        """One model step run at monotonic `now` for the step due at monotonic `due` (earlier when
        the loop runs late). Posts are stamped with `due`'s wall time, never before an alarm change
        posted meanwhile, so a late loop catching up still shows the model's own timing (a put
        made meanwhile reaches the model only at the first step due after it: _overdue_steps)."""
        effects = self.faults.tick(now)  # one pass over the armed faults, not one per PV
        overrides = self.faults.alarms(now)
        with self._lock:
            serve_again = self._serve_again_at is not None and self._serve_again_at <= now
            if serve_again:
                self._serve_again_at = None
            sim = self._sim
            assert sim is not None  # the update loop runs only once started
            sim.set_faults(effects)
            updates = sim.step()
            self._stepped_due = due
        if serve_again:
            self._bring_back()
        self.stats.steps += 1
        # a readback's stamps never go back past an alarm change posted on it meanwhile
        views = self._views
        assert views is not None  # built by start(), with the simulation
        stamp = max(due + time.time() - time.monotonic(), views.posted_at)
        step = 1.0 / self.config.ioc.update_rate  # wall s between update steps
        channels, alarms = self._channels, sim.alarms
        # the readbacks a fault acts on and the PVs an alarm fault overrides take the full checks
        posted_effects = sim.posted_effects
        special = posted_effects.keys() | overrides.keys() if posted_effects or overrides else ()
        batch = PostBatch(stamp, due)
        pending = batch.pending  # the usual post: a new value, alarm as published
        for name, value in updates.items():
            channel = channels[name]
            if not channel.open:  # reopened with the newest value: an unchanged one is not reported again
                channel.last = value
            elif channel.update_rate is not None or name in special:
                rate = posted_effects[name].rate if name in posted_effects else None
                if channel.due(due, rate, step):
                    self._post_update(channel, value, views.alarm_of(name, overrides), batch)
            else:  # always due, with its computed alarm: _post_update inlined, the loop's hot path
                alarm = alarms.get(name, OK)
                last = channel.last
                if alarm is not channel.alarm and alarm != channel.alarm:
                    self._post_update(channel, value, alarm, batch)
                elif type(value) is float and type(last) is float:  # Channel.holds' first case
                    if value != last:
                        pending.append((channel, value))
                elif not channel.holds(value):
                    pending.append((channel, value))
        batch.send()
        self.stats.posts += batch.posts
        if self._control is not None:
            self._control.update()

    @staticmethod
    def _post_update(channel: Channel, value: Any, alarm: Any, batch: PostBatch) -> None:
        """Post a step's `value` unless the PV holds it with that alarm already."""
        if alarm is channel.alarm or alarm == channel.alarm:
            if not channel.holds(value):
                batch.pending.append((channel, value))
        else:
            channel.last_post = batch.now
            channel.post(value, batch.stamp, alarm)
            batch.count()



def _check_one_process(config: IOCConfig, processes: int | None) -> None:
    """ValueError unless `config` and `processes` ask for one process, pointing to softioc.serve."""
    count = config.ioc.processes if processes is None else processes
    if count == 1:
        return
    if count < 1:
        raise ValueError(f"processes must be >= 1, got {count!r}")
    asked = f"processes={count}" if processes is not None else f"[ioc] processes = {count} in {config.source}"
    raise ValueError(
        f"a SoftIOC serves one process, and {asked} asks for a machine of {count}: use "
        f"softioc.serve(config{'' if processes is None else f', processes={count}'}) (a SoftIOC or a Machine, "
        f"as asked) or softioc.Machine(config{'' if processes is None else f', processes={count}'})")
