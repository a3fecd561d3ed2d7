"""A soft IOC in a child process, as a real IOC would run: the one runner bench and soak share.

    IOCProcess(config)  ->  sys.executable -m devtools.ioc_process CONFIG --host 127.0.0.1 ...

The child is the soft IOC command (`python -m softioc CONFIG`) with one addition: after the
banner's `# ready` it answers JSON commands on stdin (arm, clear_faults, clear_audit, drain,
stats, stop), because the soak reads the IOC's whole audit, which the control PVs do not
publish. The parent parses the client settings from the banner (NAME=value lines), waits
for `# ready` with a timeout, and stops the child by asking, then SIGTERM, then SIGKILL.
The child stops when its stdin closes, so it never outlives its parent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from softioc import child_process
from softioc.child_process import READY as READY  # the banner's last line, as before
from softioc.child_process import ChildProcess, serve_commands
from softioc.errors import ChildError

__all__ = ["Commands", "IOCProcess", "IOCProcessError", "parse_banner", "status_field"]

_log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
"""The checkout holding devtools/: the child runs from there so `-m devtools...` resolves."""


class IOCProcessError(ChildError):
    """The soft IOC process did not start, answer or stop as asked; says what and why."""


def status_field(name: str, path: str = "/proc/self/status") -> int:
    """An integer field of /proc/<pid>/status (VmRSS in kB, Threads...), -1 when unavailable."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return -1


def parse_banner(lines: Sequence[str]) -> dict[str, str]:
    """The client settings of a soft IOC banner; IOCProcessError for a line that is not NAME=value."""
    return child_process.parse_banner(lines, IOCProcessError)


# ---- the child side: commands on a running SoftIOC ----------------------------------------------

class Commands:
    """The commands a bench or soak sends to a running SoftIOC; also used in-process."""

    def __init__(self, ioc: Any) -> None:
        self.ioc = ioc
        self._seen_puts = self._seen_faults = 0

    def __call__(self, command: str, argument: Any = None) -> Any:
        """Run one command and return its JSON-ready result; ValueError for an unknown one."""
        ioc = self.ioc
        if command == "arm":
            armed = ioc.faults.arm_from_dict(argument)
            # a machine of shards arms on every shard serving the target: one dict per shard
            return armed[0] if isinstance(armed, list) else armed.to_dict()
        if command == "clear_faults":
            return ioc.faults.clear(argument)
        if command == "clear_audit":  # the audit is append-only: long runs keep it short
            ioc.audit.clear()
            self._seen_puts = self._seen_faults = 0
            return None
        if command == "drain":
            puts, faults = ioc.audit.puts(), ioc.audit.faults(event=None)
            new = ([dataclasses.asdict(r) for r in puts[self._seen_puts:]],
                   [dataclasses.asdict(r) for r in faults[self._seen_faults:]])
            self._seen_puts, self._seen_faults = len(puts), len(faults)
            return new
        if command == "stats":
            s = ioc.stats
            stats = {"steps": s.steps, "late_steps": s.late_steps, "max_lateness_s": s.max_lateness,
                     "busy_s": s.busy, "loop_cpu_s": s.cpu, "posts": s.posts, "cpu_s": time.process_time(),
                     "rss_kb": status_field("VmRSS"), "os_threads": status_field("Threads"),
                     "audit_puts": ioc.audit.put_count(), "active_faults": len(ioc.faults.active())}
            if argument == "reset_lateness":
                s.max_lateness = 0.0
            return stats
        raise ValueError(f"unknown command {command!r}")


def child_main(argv: Sequence[str] | None = None) -> int:
    """`python -m devtools.ioc_process CONFIG`: serve CONFIG (TOML, or JSON of the same shape)."""
    parser = argparse.ArgumentParser(prog="python -m devtools.ioc_process", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="TOML config file, or a .json file of the same shape")
    parser.add_argument("--host", default="127.0.0.1", help="interface address (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="TCP server port (default: a free port)")
    parser.add_argument("--broadcast-port", type=int, default=0, help="UDP search port (default: a free port)")
    parser.add_argument("--audit", default=None, metavar="FILE",
                        help="append every put and fault event to FILE (JSON Lines)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s ioc %(levelname)s %(name)s: %(message)s")
    from softioc import serve
    from softioc.cli import print_banner

    source: Any = args.config
    if source.endswith(".json"):
        with open(source) as fh:
            source = json.load(fh)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        # a Machine of shard processes when the config asks for several
        ioc = serve(source, host=args.host, port=args.port, broadcast_port=args.broadcast_port,
                    audit=args.audit).start()
    except Exception as exc:  # noqa: BLE001 - one line for the parent's error, not a traceback
        print(f"cannot start the soft IOC: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        print_banner(ioc, out=sys.stdout, export=False, quiet=True)
        threading.Thread(target=serve_commands, args=(Commands(ioc), stop), daemon=True,
                         name="ioc-commands").start()
        while not stop.wait(1.0):  # a timed wait, so SIGTERM's handler runs promptly
            pass
    finally:
        ioc.stop()
    sys.stdout.flush()
    os._exit(0)  # the command thread may still sit in a read of stdin


# ---- the parent side ----------------------------------------------------------------------------

class IOCProcess(ChildProcess):
    """A soft IOC serving `config` (a dict or a TOML path) in a child process on loopback.

    `client_conf` is what a p4p client needs (`Context('pva', conf=..., useenv=False)`);
    `call` runs a command in the child; `pid` is the child's. Use as a context manager.
    Every wait has a timeout (seconds): start, each reply, each step of stopping.
    """

    error = IOCProcessError
    logger = _log
    tail = 50

    def __init__(self, config: Mapping[str, Any] | str | Path, *, host: str = "127.0.0.1",
                 port: int = 0, broadcast_port: int = 0, log_level: str = "WARNING",
                 start_timeout: float = 120.0, reply_timeout: float = 60.0, stop_grace: float = 10.0,
                 audit: str | Path | None = None) -> None:
        super().__init__("soft IOC process", reply_timeout)
        self.config = config
        self.audit = None if audit is None else Path(audit).resolve()  # the child's --audit FILE
        self.host, self.port, self.broadcast_port = host, port, broadcast_port
        self.log_level = log_level
        self.start_timeout, self.stop_grace = start_timeout, stop_grace
        self.client_conf: dict[str, str] = {}
        self.banner: list[str] = []

    def __enter__(self) -> IOCProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> IOCProcess:
        """Start the child and return once its banner said `# ready`; IOCProcessError if not."""
        if self._proc is not None:
            raise IOCProcessError("the soft IOC process is already running")
        self.banner = []
        with tempfile.TemporaryDirectory(prefix="ioc-") as folder:
            if isinstance(self.config, Mapping):
                path = Path(folder, "config.json")
                path.write_text(json.dumps(self.config))
            else:
                path = Path(self.config).resolve()
            argv = [sys.executable, "-m", "devtools.ioc_process", str(path), "--host", self.host,
                    "--port", str(self.port), "--broadcast-port", str(self.broadcast_port),
                    "--log-level", self.log_level]
            if self.audit is not None:
                argv += ["--audit", str(self.audit)]
            proc = self._spawn(argv, cwd=ROOT)
            try:
                self._await_ready(self.start_timeout, self.banner)
            except BaseException:
                self.stop()
                raise
        self.client_conf = parse_banner(self.banner)
        _log.debug("soft IOC process %d serving on %s", proc.pid, self.client_conf)
        return self

    def stop(self) -> None:
        """Stop the child: ask, then SIGTERM, then SIGKILL, waiting `stop_grace` s for each."""
        try:
            self._end(self.stop_grace)
        finally:
            self._proc = None


if __name__ == "__main__":
    sys.exit(child_main())
