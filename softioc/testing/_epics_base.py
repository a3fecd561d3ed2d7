"""EPICS base's own softIoc (with QSRV2) as a child process, bound to loopback on free ports.

The soft IOC of this package is a stand-in; this runs the original, so a client can be
tested against real records processed in C:

    with EpicsBaseIOC() as ioc:                        # the shipped examples/epics_base.db
        ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
        ctx.get("BASE:Q1:SET")

It runs `python -m pvxslibs.ioc` (EPICS base from the epicscorelibs wheel, QSRV2 from
pvxslibs; both come with p4p). The child gets an environment with no inherited EPICS_*
setting, serves PVAccess and Channel Access on 127.0.0.1 only, and dies with its parent:
on Linux the kernel kills it (PR_SET_PDEATHSIG) when the thread that started it ends, and
on any system its IOC shell exits when its stdin pipe closes.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from ..child_process import ChildProcess, free_port
from ..errors import EpicsBaseError, NotLoopbackError

__all__ = ["READY_LINE", "EpicsBaseError", "EpicsBaseIOC", "NotLoopbackError", "shipped_db_path", "sockets_of"]

_log = logging.getLogger(__name__)

READY_LINE = "iocRun: All initialization complete"  # printed by iocInit once every record is up


class _PortTaken(EpicsBaseError):
    """Another process took a port between its choice and the IOC's bind (start() retries)."""


def shipped_db_path() -> Path:
    """The .db of real records shipped with the package (macro P is the PV prefix)."""
    return Path(str(resources.files("softioc") / "examples" / "epics_base.db"))


def _decode_address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
    return str(ipaddress.IPv6Address(b"".join(words)))


def sockets_of(pid: int) -> list[tuple[str, str, int, bool]]:
    """The sockets process `pid` has bound, as (protocol, address, port, listening) (Linux /proc).

    `protocol` is tcp, udp, tcp6 or udp6; `listening` is True for a TCP socket in LISTEN and for
    every UDP socket (a UDP socket receives whatever reaches its address).
    """
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(match.group(1))
    found = []
    for protocol in ("tcp", "udp", "tcp6", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{protocol}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] not in inodes:
                continue
            address, port = fields[1].rsplit(":", 1)
            listening = protocol.startswith("udp") or fields[3] == "0A"  # 0A: TCP LISTEN
            found.append((protocol, _decode_address(address), int(port, 16), listening))
    return found


_EPICS_EPOCH = 631152000  # 1990-01-01 UTC: the time stamp of a record never processed


class EpicsBaseIOC(ChildProcess):
    """EPICS base's softIoc with QSRV2, serving the records of `db` on loopback with free ports.

    `db` is a .db file (default: the shipped one), `macros` its macro substitutions (default
    P=BASE: for the shipped db), `host` the bind address (loopback only: anything else raises
    NotLoopbackError before anything starts), `ready_pv` a record read over PVA to confirm
    readiness (None: the IOC shell's init-complete line is enough), `scanned_pv` a periodically
    scanned record whose first processing start() waits for, so no record of the scan reads
    its boot state (UDF) to a test that runs at once, `start_timeout` seconds
    allowed for start(). Ports are chosen once, so start() after stop() or kill() serves on the
    same ports again. Its output (stdout and stderr) is logged at DEBUG and kept in `output`.
    It runs as softioc.child_process runs every child: see there for how it is read and stopped.
    """

    error = EpicsBaseError
    logger = _log
    tail = 500
    output_level = logging.DEBUG
    answers: ClassVar[bool] = False  # an IOC shell: nothing to read once it is up

    def __init__(
        self,
        db: str | Path | None = None,
        macros: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        ready_pv: str | None = None,
        start_timeout: float = 30.0,
        scanned_pv: str | None = None,
    ) -> None:
        super().__init__("EPICS base IOC", reply_timeout=start_timeout)
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback or ipaddress.ip_address(host).version != 4:
            raise NotLoopbackError(
                f"EPICS base IOC host {host!r}: not an IPv4 loopback address; it serves on "
                "loopback only (127.0.0.0/8) so tests never reach beyond this machine")
        self.db = Path(db) if db is not None else shipped_db_path()
        if not self.db.is_file():
            raise EpicsBaseError(f"EPICS base IOC database {str(self.db)!r}: no such file")
        if macros is None:
            macros = {"P": "BASE:"} if db is None else {}
        self.macros = dict(macros)
        self.host = host
        if ready_pv is None and db is None:
            ready_pv = f"{self.macros.get('P', '')}Q1:SET"
        self.ready_pv = ready_pv
        if scanned_pv is None and db is None:
            scanned_pv = f"{self.macros.get('P', '')}DEAD:RBV"  # the last record of the scan list
        self.scanned_pv = scanned_pv
        self.start_timeout = float(start_timeout)
        self._choose_ports()
        self._served = False  # once it has served, a restart keeps its ports: clients know them
        self.start_seconds: float | None = None  # how long the last start() took

    def _choose_ports(self) -> None:
        tcp, udp = socket.SOCK_STREAM, socket.SOCK_DGRAM
        host = self.host
        try:
            self.pva_server_port = free_port(host, tcp)
            self.pva_broadcast_port = free_port(host, udp)
            self.ca_server_port = free_port(host, tcp, udp)  # CA serves TCP and UDP on one port
            self.ca_repeater_port = free_port(host, udp)
        except OSError as exc:
            raise EpicsBaseError(f"EPICS base IOC: {exc}") from None

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return (f"EpicsBaseIOC({str(self.db)!r}, {self.host} tcp:{self.pva_server_port} "
                f"udp:{self.pva_broadcast_port}, {state})")

    @property
    def output(self) -> collections.deque[str]:
        """The last lines (at most 500) the IOC wrote since its last start, stdout and stderr."""
        return self._output

    @property
    def running(self) -> bool:
        """True while the IOC process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def environment(self) -> dict[str, str]:
        """The child's environment: ours without any EPICS_* setting, plus loopback and our ports."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}
        host = self.host
        env.update({
            "EPICS_PVAS_INTF_ADDR_LIST": host,
            "EPICS_PVAS_SERVER_PORT": str(self.pva_server_port),
            "EPICS_PVAS_BROADCAST_PORT": str(self.pva_broadcast_port),
            "EPICS_PVAS_BEACON_ADDR_LIST": host,
            "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
            # the IOC's own PVA client (links) searches loopback only
            "EPICS_PVA_ADDR_LIST": f"{host}:{self.pva_broadcast_port}",
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_SERVER_PORT": str(self.pva_server_port),
            "EPICS_PVA_BROADCAST_PORT": str(self.pva_broadcast_port),
            "EPICS_CAS_INTF_ADDR_LIST": host,
            "EPICS_CAS_SERVER_PORT": str(self.ca_server_port),
            "EPICS_CAS_BEACON_ADDR_LIST": host,
            "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
            "EPICS_CAS_BEACON_PORT": str(self.ca_repeater_port),
            "EPICS_CA_ADDR_LIST": host,
            "EPICS_CA_AUTO_ADDR_LIST": "NO",
            "EPICS_CA_SERVER_PORT": str(self.ca_server_port),
            "EPICS_CA_REPEATER_PORT": str(self.ca_repeater_port),
        })
        return env

    def command(self) -> list[str]:
        """The command line that runs the IOC (-m must precede the -d it applies to)."""
        cmd = [sys.executable, "-m", "pvxslibs.ioc"]
        if self.macros:
            cmd += ["-m", ",".join(f"{k}={v}" for k, v in self.macros.items())]
        return cmd + ["-d", str(self.db)]

    def client_conf(self) -> dict[str, str]:
        """The p4p client configuration: `Context('pva', conf=ioc.client_conf(), useenv=False)`."""
        return {
            "EPICS_PVA_ADDR_LIST": f"{self.host}:{self.pva_broadcast_port}",
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_SERVER_PORT": str(self.pva_server_port),
            "EPICS_PVA_BROADCAST_PORT": str(self.pva_broadcast_port),
        }

    def _failure(self, why: str) -> EpicsBaseError:
        tail = "\n".join(list(self.output)[-40:])
        return EpicsBaseError(f"EPICS base IOC ({' '.join(self.command())}): {why}; its output:\n{tail}")

    def start(self) -> EpicsBaseIOC:
        """Start the IOC and wait until it serves; EpicsBaseError with its output if it cannot.

        Returns self. Raises if the IOC exits or is not ready within `start_timeout` seconds,
        or if it did not bind the PVA port it was given (another process took it). A port
        is free when chosen but can be taken before the IOC binds it: a first start then
        tries again on new ports (three times in all); a restart keeps its ports and raises.
        """
        if self.running:
            raise EpicsBaseError(f"EPICS base IOC already running ({self!r})")
        for attempt in range(1, 4):
            try:
                self._start()
            except _PortTaken as exc:
                if self._served or attempt == 3:
                    raise EpicsBaseError(str(exc)) from None
                _log.warning("EPICS base IOC: port taken before it bound it; new ports (attempt %d)", attempt + 1)
                self._choose_ports()
                continue
            self._served = True
            return self
        raise AssertionError("unreachable")  # the loop returns or raises

    def _is_ready(self, line: str) -> bool:
        return READY_LINE in line

    def _start(self) -> None:
        started = time.monotonic()
        # stdin stays open: the IOC shell reads it and exits at end of input
        process = self._spawn(self.command(), env=self.environment(), merge_output=True, die_with_parent=True)
        deadline = started + self.start_timeout
        try:
            try:
                self._await_ready(self.start_timeout)
            except EpicsBaseError:
                raise self._failure(
                    f"exited with code {process.poll()}" if process.poll() is not None
                    else f"not initialised within {self.start_timeout:g} s") from None
            if self.ready_pv is not None:
                self._wait_pv(self.ready_pv, deadline)
            if self.scanned_pv is not None:
                self._wait_pv(self.scanned_pv, deadline, processed=True)
            if sys.platform.startswith("linux"):
                bound = {(p, a, port) for p, a, port, _ in sockets_of(process.pid)}
                if ("tcp", self.host, self.pva_server_port) not in bound:
                    raise _PortTaken(str(self._failure(
                        f"not listening on {self.host} tcp:{self.pva_server_port} (port taken?); "
                        f"bound: {sorted(bound)}")))
        except BaseException:
            self._halt()
            raise
        self.start_seconds = time.monotonic() - started
        _log.info("EPICS base IOC pid %d serving %s on %s tcp:%d udp:%d (CA %d), ready in %.2f s",
                  process.pid, self.db.name, self.host, self.pva_server_port,
                  self.pva_broadcast_port, self.ca_server_port, self.start_seconds)

    def _wait_pv(self, name: str, deadline: float, processed: bool = False) -> None:
        """Read `name` over PVA until it answers (with processed=True: until its time stamp
        shows it was processed since boot) or `deadline` (monotonic seconds) passes."""
        from p4p.client.thread import Context  # imported here: only start() needs a client

        with Context("pva", conf=self.client_conf(), useenv=False) as ctx:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._failure(f"{name} not readable over PVA within {self.start_timeout:g} s")
                try:
                    value = ctx.get(name, timeout=min(remaining, 2.0))
                    if not processed or value.raw["timeStamp.secondsPastEpoch"] != _EPICS_EPOCH:
                        return
                    time.sleep(0.02)  # scanned every 0.1 s: a few more reads at most
                except TimeoutError:
                    if self._proc is None or self._proc.poll() is not None:
                        raise self._failure("exited while starting") from None

    def _ask_to_stop(self, grace: float) -> None:
        """`exit()` on its IOC shell (end_process then closes stdin, which ends it too)."""
        stdin = self._proc.stdin if self._proc is not None else None
        if stdin is not None and not stdin.closed:
            try:
                stdin.write("exit()\n")
                stdin.flush()
            except OSError:
                pass

    def _halt(self, timeout: float = 5.0) -> None:
        """End the IOC: `exit()` on its shell, then SIGTERM, then SIGKILL, `timeout` s each."""
        self._end(timeout)
        process = self._proc
        if process is not None and process.poll() is None:
            raise self._failure(f"pid {process.pid} did not exit after SIGKILL")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the IOC cleanly (`exit()` on its shell), escalating to SIGTERM and SIGKILL."""
        process = self._proc
        if process is None:
            return
        running = process.poll() is None
        self._halt(timeout)
        if running:
            _log.info("EPICS base IOC pid %d stopped (exit code %s)", process.pid, process.returncode)

    def kill(self, timeout: float = 5.0) -> None:
        """Kill the IOC at once (SIGKILL), as a crash would; start() serves again on the same ports."""
        process = self._proc
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout)
        self._end(timeout)  # closes its stdin and reads its output to the end
        _log.info("EPICS base IOC pid %d killed", process.pid)

    def __enter__(self) -> EpicsBaseIOC:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
