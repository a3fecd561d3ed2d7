"""How clients find the shards of a machine: connect and reconnect times of two discovery forms.

    python -m devtools.bench.discovery [--shards 3] [--trials 5]

(a) "shared": every shard binds the same UDP search port on 127.0.0.1; clients list that one
    address:port. (b) "listed": each shard has its own UDP port; clients list every shard's
    address:port in EPICS_PVA_ADDR_LIST (what softioc.machine does).
For each form: the time a fresh client context takes to get one PV of every shard, and, after
a shard is killed and started again on the same ports (timed from its `# ready`), the time the
same context takes to read that shard's PV again. The load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from softioc.child_process import ChildProcess, free_port


class _Shard(ChildProcess):
    """`python -m softioc PATH` on the given ports, as a shard of a machine would be served."""

    answers = False  # the command line prints its banner and serves; it takes no commands

    def __init__(self, path: Path, port: int, udp: int) -> None:
        super().__init__(f"soft IOC {path.name}", reply_timeout=10.0)
        self.argv = [sys.executable, "-m", "softioc", str(path), "--port", str(port),
                     "--broadcast-port", str(udp), "-q"]

    def start(self) -> _Shard:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}
        self._spawn(self.argv, env=env)
        self._await_ready(60.0)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would; start() serves again on the same ports."""
        if self._proc is not None:
            self._proc.kill()
            self._end(10.0)


def _spawn(path: Path, port: int, udp: int) -> _Shard:
    return _Shard(path, port, udp).start()


def measure(form: str, shards: int, trials: int) -> dict[str, Any]:
    """Connect and reconnect times (s) of one discovery form."""
    from p4p.client.thread import Context

    folder = tempfile.mkdtemp(prefix="discovery-")
    paths = []
    for k in range(shards):
        path = Path(folder, f"shard{k}.toml")
        path.write_text(f'[ioc]\ncontrol_prefix = "C{k}:"\n[[setpoint]]\nname = "S{k}:SET"\nreadback = "S{k}:RBV"\n')
        paths.append(path)
    tcp = [free_port("127.0.0.1", socket.SOCK_STREAM) for _ in range(shards)]
    if form == "shared":
        udp = [free_port("127.0.0.1", socket.SOCK_DGRAM)] * shards
        addr = f"127.0.0.1:{udp[0]}"
    else:
        udp = [free_port("127.0.0.1", socket.SOCK_DGRAM) for _ in range(shards)]
        addr = " ".join(f"127.0.0.1:{u}" for u in udp)
    procs = [_spawn(paths[k], tcp[k], udp[k]) for k in range(shards)]
    conf = {"EPICS_PVA_ADDR_LIST": addr, "EPICS_PVA_AUTO_ADDR_LIST": "NO"}
    names = [f"S{k}:RBV" for k in range(shards)]
    connect, reconnect, failures = [], [], 0
    try:
        for _ in range(trials):
            ctx = Context("pva", conf=conf, useenv=False)
            began = time.monotonic()
            try:
                ctx.get(names, timeout=10.0)
                connect.append(time.monotonic() - began)
            except TimeoutError:
                failures += 1
            ctx.close()
        ctx = Context("pva", conf=conf, useenv=False)
        ctx.get(names, timeout=10.0)
        victim = 1 % shards
        for _ in range(trials):
            procs[victim].kill()
            procs[victim] = _spawn(paths[victim], tcp[victim], udp[victim])
            began = time.monotonic()
            while True:
                try:
                    ctx.get(names[victim], timeout=0.5)
                    reconnect.append(time.monotonic() - began)
                    break
                except TimeoutError:
                    if time.monotonic() - began > 30.0:
                        failures += 1
                        break
        ctx.close()
    finally:
        for proc in procs:
            proc.kill()

    def summary(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3)}

    return {"form": form, "shards": shards, "trials": trials, "connect": summary(connect),
            "reconnect_after_restart": summary(reconnect), "failures": failures,
            "load_average_1min": round(os.getloadavg()[0], 2)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.discovery", description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    rows = [measure(form, args.shards, args.trials) for form in ("shared", "listed")]
    for r in rows:
        print(f"{r['form']:>7}: connect {r['connect']}  reconnect after a shard restart "
              f"{r['reconnect_after_restart']}  failures {r['failures']}  (load average {r['load_average_1min']})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
