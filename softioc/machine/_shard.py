"""One shard of a machine served by several processes: which PVs it serves, and its process.

A machine of N shards gives setpoint number j (in config order, ranges expanded) to shard
j mod N, with its readback: the same config and N always give the same assignment, and the
shards get equal shares. An observable goes to the shard serving its first input (so most
observables read local values); one with no inputs is dealt round-robin. An observable whose
inputs live on other shards reads them over PVAccess, by monitor, as an IOC's links do.

Each device's noise generator is seeded by (seed, PV name), so a PV reads the same values
whichever shard serves it.

    child_main(["--pickle", FILE, "--shard", K, "--processes", N, "--port", P, "--broadcast-port", U,
                "--links", ADDRS, "--identity", ID])

is the child the parent (`_machine`) starts in a fresh interpreter; `pva-softioc CONFIG --processes N --shard K`
serves shard K alone, for spreading a machine over several hosts. After printing its client
settings and `# ready` the child answers JSON commands, one per stdin line, and stops when
stdin closes: a parent that dies, even by SIGKILL, closes that pipe, so no shard outlives it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..child_process import serve_commands
from ..config import IOCConfig, load_config
from ..errors import UpdateLoopError
from ..model import Observable, Simulation, VectorSimulation
from ..server import SoftIOC
from ._folder import leave_if_orphaned
from ._sharding import links_of, share

__all__ = ["LinkedSimulation", "ShardCommands", "ShardIOC", "child_main"]

_log = logging.getLogger(__name__)


class LinkedSimulation(VectorSimulation):
    """A VectorSimulation whose observables may read inputs served elsewhere (NaN until first read)."""

    def __init__(self, config: IOCConfig, links: Sequence[str]) -> None:
        self.links: dict[str, float] = {name: math.nan for name in links}
        super().__init__(config)

    def _observe(self, observable: Observable) -> float:
        inputs: Mapping[str, str] = observable.config.inputs
        env = {var: self.readbacks[pv] if pv in self.readbacks else self.links[pv] for var, pv in inputs.items()}
        return observable.compute(env)


class ShardIOC(SoftIOC):
    """A SoftIOC whose observables may read other shards' PVs through a p4p client (`link_conf`)."""

    def __init__(self, config: IOCConfig, *, link_conf: Mapping[str, str] | None = None,
                 identity: str | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.machine_identity = identity
        self.links = links_of(self.config)
        self.link_conf = dict(link_conf or {})
        self._link_ctx: Any = None
        self._link_subs: list[Any] = []

    def _simulation(self) -> Simulation:
        return LinkedSimulation(self.config, self.links)

    def _new_identity(self) -> str:
        """The machine's id when given (every shard publishes the same one), else a new one."""
        return self.machine_identity or super()._new_identity()

    def start(self) -> ShardIOC:
        super().start()
        if self.links:
            if not self.link_conf:
                raise ValueError(f"{self.config.source}: observables read {self.links[:3]}... which other "
                                 "shards serve, but no link address list was given")
            from p4p.client.thread import Context

            self._link_ctx = Context("pva", conf=self.link_conf, useenv=False)
            # the other shards serve under the same prefix
            self._link_subs = [self._link_ctx.monitor(self.prefix + name, self._linked(name), notify_disconnect=True)
                               for name in self.links]
            _log.info("%s: linked %d input(s) on other shards", self.config.source, len(self.links))
        return self

    def _linked(self, name: str) -> Callable[[Any], None]:
        def update(value: Any) -> None:
            sim = self._sim
            if isinstance(sim, LinkedSimulation):
                # a disconnect (the other shard went away) reads NaN, as a broken link reads INVALID
                sim.links[name] = float(value) if not isinstance(value, Exception) else math.nan
        return update

    def stop(self) -> None:
        for sub in self._link_subs:
            sub.close()
        self._link_subs = []
        if self._link_ctx is not None:
            self._link_ctx.close()
            self._link_ctx = None
        super().stop()


# ---- the child process ------------------------------------------------------------------------

def _record(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record)


class ShardCommands:
    """The commands the machine sends a shard, each returning JSON-ready data."""

    def __init__(self, ioc: SoftIOC) -> None:
        self.ioc = ioc

    def __call__(self, command: str, argument: Any = None) -> Any:
        ioc = self.ioc
        if command == "status":
            events = ioc.audit.faults(event=None)
            return {
                "puts": ioc.audit.put_count(), "fired": len(ioc.audit.faults(event="fired")),
                "active": [a.to_dict() for a in ioc.faults.active()],
                "last": _record(events[-1]) if events else None, "time": ioc.sim_time,
                "steps": ioc.stats.steps, "posts": ioc.stats.posts, "busy_s": ioc.stats.busy,
                "late_steps": ioc.stats.late_steps, "max_lateness": ioc.stats.max_lateness, "cpu_s": time.process_time(),
                "loop_cpu_s": ioc.stats.cpu, "pid": os.getpid(),
            }
        if command == "arm":
            return ioc.faults.arm_from_dict(argument).to_dict()
        if command == "clear":
            return ioc.faults.clear(argument)
        if command == "active":
            return [a.to_dict() for a in ioc.faults.active(argument)]
        if command == "puts":
            return [_record(r) for r in ioc.audit.puts(**(argument or {}))]
        if command == "faults":
            return [_record(r) for r in ioc.audit.faults(**(argument or {}))]
        if command == "clear_audit":
            ioc.audit.clear()
            return None
        if command == "restart":
            ioc.restart(float(argument), wait=False)
            return None
        if command == "snapshot":
            return ioc.snapshot()
        raise ValueError(f"unknown shard command {command!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softioc shard", description="Serve one shard of a soft IOC machine.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="TOML config file of the whole machine")
    source.add_argument("--pickle", help="the machine's IOCConfig, pickled by the parent process")
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--broadcast-port", type=int, default=0)
    parser.add_argument("--links", default="", help="EPICS_PVA_ADDR_LIST reaching the other shards")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--identity", default=None, help="the machine's id, published by every shard")
    return parser


def child_main(argv: Sequence[str] | None = None) -> int:
    """Serve one shard; print client settings and `# ready`; answer commands until stdin closes."""
    args = build_parser().parse_args(argv)
    parent = os.getppid()  # the machine's process: when it dies unannounced, we clean up after it
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s shard{args.shard} %(levelname)s %(name)s: %(message)s")
    if args.pickle:
        with open(args.pickle, "rb") as fh:
            whole = pickle.load(fh)  # written by our own parent a moment ago, never a user's file
    else:
        whole = load_config(args.config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    link_conf = {"EPICS_PVA_ADDR_LIST": args.links, "EPICS_PVA_AUTO_ADDR_LIST": "NO"} if args.links else None
    try:
        ioc = ShardIOC(share(whole, args.processes, args.shard), link_conf=link_conf, identity=args.identity,
                       host=args.host, port=args.port, broadcast_port=args.broadcast_port).start()
    except Exception as exc:  # noqa: BLE001 - one line for the parent's error
        print(f"shard {args.shard}: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    asked: list[bool] = []  # how the commands ended: [True] the parent asked, [False] its pipe closed

    def commands() -> None:
        asked.append(serve_commands(ShardCommands(ioc), stop))

    try:
        for name, value in ioc.client_conf().items():
            print(f"{name}={value}")
        print("# ready", flush=True)
        threading.Thread(target=commands, daemon=True, name="shard-commands").start()
        while not stop.wait(1.0) and ioc.failure is None:  # timed, so a signal's handler runs promptly
            pass
    finally:
        status = 0
        try:
            ioc.stop()
        except UpdateLoopError as exc:  # the parent sees the shard die, with this as its last words
            print(f"shard {args.shard}: {exc}", file=sys.stderr, flush=True)
            status = 1
        if args.pickle and asked != [True]:  # asked to stop: the parent lives and removes the folder
            # a dying parent's pipe closes just before we are reparented: give the kernel a moment
            leave_if_orphaned(Path(args.pickle).parent, parent, grace=1.0 if asked == [False] else 0.0)
    sys.stdout.flush()
    os._exit(status)  # the command thread may sit in a read of stdin

