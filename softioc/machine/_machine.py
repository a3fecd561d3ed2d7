"""A whole machine: one soft IOC config served by N processes (shards), found by PVA search.

    with Machine("machine.toml", processes=3) as machine:     # or serve(config), or
        Context("pva", conf=machine.client_conf(), useenv=False)  # pva-softioc CONFIG --processes 3

The parent starts each shard as a fresh interpreter (`_shard.child_main`, never a fork:
a forked child of a process using p4p hangs), waits for every `# ready`, then serves the
machine's control PVs itself and routes them, and its Python API, to the shards over each
child's command pipe. A child stops when that pipe closes, so SIGKILL of the parent leaves
no orphan, and the last child out removes the machine's temporary folder (`_folder`). A shard that dies is reported (log, `dead()`, the SHARDS control PV) and
`restart_shard(k)` brings it back on the same ports while the others keep serving.

Discovery: every shard binds its own UDP search port and the client settings list each
shard's address:port in EPICS_PVA_ADDR_LIST. Measured on loopback with 3 shards
(devtools.bench.discovery, 12 trials, load ~8): this and "all shards share one UDP port" both
connect in ~14 ms and reconnect a median 0.4 s (max 0.7-1.0 s) after a restarted shard is
ready, so neither wins on time; the list was chosen because it does not depend on several
sockets sharing a port (on one host a unicast search reaches only one of them, and the
servers must forward it), and the same form spans real hosts: host1:5076 host2:5076 ...
(EPICS_PVA_NAME_SERVERS, the TCP alternative, reconnects ~7 s after a restart).
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import shutil
import socket
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..child_process import free_port
from ..config import MAX_PROCESSES, IOCConfig, check_load, load_config
from ..errors import NetworkRefused, ShardError
from ..server import Audit, SoftIOC, Stats, is_loopback
from ._folder import make_folder, remove_stale
from ._shard_process import ShardProcess
from ._sharding import assign
from ._surface import ControlSurface
from ._views import MachineAudit, MachineFaults

__all__ = ["Machine", "MachineStats", "serve"]

_log = logging.getLogger(__name__)
# not `-m softioc.machine._shard`: the package imports that module, so runpy would run a second copy
_CHILD = "import sys; from softioc.machine import child_main; sys.exit(child_main(sys.argv[1:]))"

MachineStats = Stats
"""Update-loop health of every shard together: a soft IOC's Stats, summed over the shards."""


class Machine:
    """A soft IOC config served by `processes` child processes; see the module docstring.

    `host` is one address for every shard, or a sequence of one per shard (one address per
    interface of a host with several). `port`/`broadcast_port`, when given, are shard 0's;
    shard k uses port+k (on one address) so that the ports are predictable.

    Everything one SoftIOC takes works here too: `[ioc] prefix` (every shard serves under it,
    and so do the machine's control PVs), `audit` (every shard appends its lines to the one
    file, each line one O_APPEND write), `[ioc] control_from`/`write_from` (each shard and
    the machine's control PVs obey them), `allow_network`. Every start draws one `identity`,
    which every shard publishes in `softiocId` (a restarted shard keeps it).
    """

    def __init__(self, config: IOCConfig | Mapping[str, Any] | str | Path, *, processes: int | None = None,
                 host: str | Sequence[str] = "127.0.0.1", port: int = 0, broadcast_port: int = 0,
                 audit: str | Path | None = None, allow_network: bool | None = None,
                 start_timeout: float = 120.0, reply_timeout: float = 30.0, log_level: str = "WARNING") -> None:
        loaded = load_config(config)
        changes: dict[str, Any] = {}
        if audit is not None:
            changes["audit"] = str(audit)
        if allow_network is not None:
            changes["allow_network"] = bool(allow_network)
        # the shards read these from the config they are given
        self.config = dataclasses.replace(loaded, ioc=dataclasses.replace(loaded.ioc, **changes)) if changes else loaded
        self.prefix = self.config.ioc.prefix
        self.allow_network = self.config.ioc.allow_network
        self.identity = ""  # drawn by start()
        if self.config.ioc.audit is not None:  # AuditFileError now, as a SoftIOC's, not from a shard
            Audit(self.config.ioc.audit).close()
        # 0 is refused, not read as "the config's number"
        self.processes = self.config.ioc.processes if processes is None else processes
        if not 1 <= self.processes <= MAX_PROCESSES:
            raise ValueError(f"processes must be within [1, {MAX_PROCESSES}], got {self.processes}")
        # the config was checked for its own number of processes; this many must keep up too
        check_load(self.config.source, len(self.config.pv_names()),
                   dataclasses.replace(self.config.ioc, processes=self.processes))
        hosts = [host] * self.processes if isinstance(host, str) else list(host)
        if len(hosts) != self.processes:
            raise ValueError(f"host: give one address or {self.processes} (one per shard), got {len(hosts)}")
        self.hosts, self.port, self.broadcast_port = hosts, port, broadcast_port
        self.host = hosts[0]
        self.start_timeout, self.reply_timeout, self.log_level = start_timeout, reply_timeout, log_level
        self.where = assign(self.config, self.processes)
        self.shards: list[ShardProcess] = []
        # the control writes the machine's own control PVs refused (the shards audit every other put)
        self.control_audit = Audit()
        self.audit = MachineAudit(self)
        self.faults = MachineFaults(self)
        self._surface: Any = None
        self._control_ports: tuple[int, int] | None = None
        self._folder: Path | None = None
        self._watch: threading.Thread | None = None
        self._stop = threading.Event()
        self._dead: dict[int, int | None] = {}  # shard -> exit status, for shards found dead
        self._restart_lock = threading.Lock()
        self._check_lock = threading.Lock()

    def __enter__(self) -> Machine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Machine {self.config.source} {self.processes} shards {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        return self._watch is not None

    # life cycle ----------------------------------------------------------------------------
    def _ports(self) -> list[tuple[int, int]]:
        if self.port or self.broadcast_port:
            if not (self.port and self.broadcast_port):
                raise ValueError("give both port and broadcast_port, or neither")
            same = len(set(self.hosts)) == 1
            return [(self.port + (k if same else 0), self.broadcast_port + (k if same else 0))
                    for k in range(self.processes)]
        # TCP 0: each shard binds a free port itself (a port chosen here could be taken before
        # the shard binds it); clients find it by search, and a restart keeps the port it bound
        return [(0, free_port(h, socket.SOCK_DGRAM)) for h in self.hosts]

    def start(self) -> Machine:
        """Start every shard (in parallel), wait until all are ready, serve the control PVs."""
        if self.running:
            raise RuntimeError("this machine is already running")
        self._check_network()
        self.identity = uuid.uuid4().hex
        remove_stale()  # the folders of machines killed before their shards could remove them
        self._folder = make_folder()
        path = self._folder / "config.pickle"
        path.write_bytes(pickle.dumps(self.config))
        # a start after a stop keeps the ports (and so the clients' settings) of the first start
        ports = [(s.port, s.broadcast_port) for s in self.shards] or self._ports()
        control_host = self.hosts[0]
        control_ports = self._control_ports or (0, free_port(control_host, socket.SOCK_DGRAM))  # TCP: any
        self._control_ports = control_ports
        addresses = [f"{h}:{u}" for h, (_t, u) in zip(self.hosts, ports, strict=True)]
        self._addr_list = " ".join(addresses + [f"{control_host}:{control_ports[1]}"])
        links = " ".join(addresses)
        self.shards = [
            ShardProcess(k, [sys.executable, "-c", _CHILD, "--pickle", str(path), "--shard", str(k),
                             "--processes", str(self.processes), "--host", self.hosts[k],
                             "--links", links, "--log-level", self.log_level, "--identity", self.identity],
                         self.hosts[k], t, u, self.start_timeout, self.reply_timeout)
            for k, (t, u) in enumerate(ports)]
        self._dead, self._stop = {}, threading.Event()
        try:
            for shard in self.shards:
                shard.spawn()
            for shard in self.shards:
                shard.wait_ready()
            self.control_audit = Audit(self.config.ioc.audit)  # one file: each line one O_APPEND write
            self._surface = ControlSurface(self, control_host, *control_ports, self.control_audit).start()
        except BaseException:
            self._teardown()
            raise
        self._watch = threading.Thread(target=self._watch_shards, name="machine-watch", daemon=True)
        self._watch.start()
        _log.info("machine serving %d PVs in %d shards: %s", len(self.where), self.processes, self._addr_list)
        return self

    def _check_network(self) -> None:
        """Refuse, before any process starts, to serve beyond loopback unless allowed (as a SoftIOC does)."""
        beyond = list(dict.fromkeys(h for h in self.hosts if not is_loopback(h)))
        if not beyond or self.allow_network:
            return
        names = self.config.pv_names()
        shown = ", ".join(self.prefix + n for n in names[:3]) + (", ..." if len(names) > 3 else "")
        raise NetworkRefused(
            f"soft IOC machine: refusing to serve on {', '.join(beyond)}, which is not loopback: it would "
            f"answer for these PV names ({shown}) to every client on that network, shadowing any real IOC "
            "serving them there; pass --allow-network (Machine(allow_network=True), [ioc] allow_network "
            "= true) if that is meant, and consider --prefix")

    def stop(self) -> None:
        """Stop every shard and the control PVs; idempotent."""
        watch, self._watch = self._watch, None
        self._stop.set()
        if watch is not None:
            watch.join(5.0)
        self._teardown()

    def _teardown(self) -> None:
        if self._surface is not None:
            self._surface.stop()
            self._surface = None
        self.control_audit.close()  # its records stay, in memory
        threads = [threading.Thread(target=s.stop, daemon=True) for s in self.shards]  # in parallel
        for t in threads:
            t.start()
        for t in threads:
            t.join(30.0)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _watch_shards(self) -> None:
        """Report a shard that died, so the operator can restart it; polls at 5 Hz."""
        while not self._stop.wait(0.2):
            self._check_shards()

    def _check_shards(self) -> None:
        """Record (and log, once) every shard process found dead since the last look."""
        with self._check_lock:
            for shard in self.shards:
                proc = shard.proc
                if proc is None or shard.stopping or shard.index in self._dead:
                    continue
                code = proc.poll()
                if code is None:
                    continue
                self._dead[shard.index] = code
                count = sum(1 for k in self.where.values() if k == shard.index)
                _log.error("shard %d (pid %d) died with status %s: its %d PVs are unreachable; "
                           "restart it with restart_shard(%d) or the %sSHARD:RESTART PV", shard.index,
                           proc.pid, code, count, shard.index, self.config.ioc.control_prefix)
                if self._surface is not None:
                    self._surface.changed()

    def dead(self) -> dict[int, int | None]:
        """{shard index: exit status} of the shards found dead and not restarted since."""
        self._check_shards()
        return dict(self._dead)

    def restart_shard(self, index: int) -> None:
        """Start shard `index` again (a fresh process, same ports); the others keep serving."""
        if not 0 <= index < self.processes:
            raise ValueError(f"shard must be within [0, {self.processes - 1}], got {index}")
        with self._restart_lock:
            shard = self.shards[index]
            shard.stop(grace=2.0)
            shard.spawn()
            shard.wait_ready()
            self._dead.pop(index, None)
        _log.warning("shard %d restarted (pid %d)", index, shard.pid)
        if self._surface is not None:
            self._surface.changed()

    def restart(self, downtime: float = 0.0, wait: bool = True) -> None:
        """Take every shard's server off the network for `downtime` s (the simulations keep running)."""
        for shard in self.shards:
            if shard.alive:
                shard.call("restart", downtime)
        if wait:
            self._stop.wait(downtime)

    # what clients need -----------------------------------------------------------------------
    def client_conf(self) -> dict[str, str]:
        """The client settings reaching every shard and the control PVs (UDP search, listed)."""
        if not self.running:
            raise RuntimeError("start the machine before asking for its client configuration")
        return {"EPICS_PVA_ADDR_LIST": self._addr_list, "EPICS_PVA_AUTO_ADDR_LIST": "NO"}

    def interface_settings(self) -> dict[str, str]:
        """The EPICS_PVA_INTERFACE_* settings a rehearsing client needs: the machine's one id (and prefix)."""
        if not self.running:
            raise RuntimeError("start the machine before asking for its identity")
        settings = {"EPICS_PVA_INTERFACE_REHEARSAL_ID": self.identity}
        if self.prefix:
            settings["EPICS_PVA_INTERFACE_PREFIX"] = self.prefix
        return settings

    def describe_address(self) -> str:
        """Every shard's host, TCP and UDP ports, for logs and the banner."""
        return ", ".join(f"shard {s.index} {s.host} tcp:{s.port} udp:{s.broadcast_port}" for s in self.shards)

    def shard_for(self, pv: str) -> ShardProcess:
        """The shard serving `pv`; ValueError naming the PV when the machine has none such."""
        try:
            return self.shards[self.where[pv]]
        except KeyError:
            raise ValueError(f"{pv!r} is not served by this machine") from None

    def pv_names(self, control: bool = False) -> list[str]:
        """Simulated PV names in config order (and the machine's control PVs with control=True)."""
        names = self.config.pv_names()
        if control and self._surface is not None:
            names += list(self._surface.pvs)
        return names

    @property
    def sim_time(self) -> float:
        """Simulated seconds since start of the earliest-started running shard."""
        times = [s.call("status")["time"] for s in self.shards if s.alive]
        return max(times, default=0.0)

    def status(self) -> list[dict[str, Any]]:
        """Per shard: index, pid, address, alive, PV count, and its status when alive."""
        rows = []
        for s in self.shards:
            row: dict[str, Any] = {"shard": s.index, "pid": s.pid, "address": s.address, "alive": s.alive,
                                   "pvs": sum(1 for k in self.where.values() if k == s.index)}
            if s.alive:
                try:
                    row.update(s.call("status"))
                except ShardError as exc:
                    row["error"] = str(exc)
            rows.append(row)
        return rows

    @property
    def stats(self) -> MachineStats:
        """Update-loop health summed over the running shards (steps: the fewest of any shard)."""
        rows = [s.call("status") for s in self.shards if s.alive]
        return MachineStats(steps=min((r["steps"] for r in rows), default=0),
                     late_steps=sum(r["late_steps"] for r in rows),
                     max_lateness=max((r["max_lateness"] for r in rows), default=0.0),
                     busy=sum(r["busy_s"] for r in rows), posts=sum(r["posts"] for r in rows),
                     cpu=sum(r["loop_cpu_s"] for r in rows))

    def snapshot(self) -> list[dict[str, Any]]:
        """Every running shard's live-view rows, in shard order."""
        return [row for s in self.shards if s.alive for row in s.call("snapshot")]


def serve(config: IOCConfig | Mapping[str, Any] | str | Path, *, processes: int | None = None,
          audit: str | Path | None = None, allow_network: bool | None = None, **options: Any) -> SoftIOC | Machine:
    """What `config` asks for, not started: a SoftIOC, or with processes=N > 1 (else `[ioc]
    processes = N`) a Machine of N shard processes. `audit`, `allow_network` and `options` go
    to the one chosen (host, port, broadcast_port; a Machine's timeouts)."""
    loaded = load_config(config)
    count = loaded.ioc.processes if processes is None else processes
    if count == 1:
        return SoftIOC(loaded, audit=audit, allow_network=allow_network, **options)
    if count < 1:
        raise ValueError(f"processes must be >= 1, got {count!r}")
    return Machine(loaded, processes=count, audit=audit, allow_network=allow_network, **options)
