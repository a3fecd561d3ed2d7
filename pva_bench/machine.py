"""The simulated machines the benchmark measures against, and a runner serving one of them.

By default the soft IOC runs in a spawned child process, as a real IOC would, so its update
loop and put handlers never compete with the client for this process's GIL.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

_log = logging.getLogger(__name__)

RW_PREFIX = "BENCH:RW:"
SETTLE_PREFIX = "BENCH:ST:"
LATENCY_SET, LATENCY_RBV = "BENCH:LAT:SET", "BENCH:LAT:RBV"
RETRY_PV = "BENCH:RETRY:SET"
SETTLE_RATE_HZ = 100.0
"""Readback update rate of the settle machine: settle times are quantised to 1/100 s."""
STEP = 1.0
"""Every validated set moves a setpoint by this much (0 <-> 1), so settle time = STEP / rate."""

START_TIMEOUT = 120.0
REPLY_TIMEOUT = 30.0


def rw_names(count: int) -> list[str]:
    """Setpoint PV names of the read/write machine, in order."""
    return [f"{RW_PREFIX}{i:04d}" for i in range(count)]


def settle_names(count: int) -> list[tuple[str, str]]:
    """(setpoint, readback) PV names of the settle machine's pairs, in order."""
    return [(f"{SETTLE_PREFIX}{i:02d}:SET", f"{SETTLE_PREFIX}{i:02d}:RBV") for i in range(count)]


def settle_times(count: int, fastest: float, slowest: float) -> list[float]:
    """Designed settle time (s) of each pair: spread evenly from `fastest` to `slowest`."""
    if count == 1:
        return [slowest]
    return [fastest + (slowest - fastest) * i / (count - 1) for i in range(count)]


def rw_config(count: int) -> dict[str, Any]:
    """`count` plain setpoints with control limits (no readback, nothing posted by the loop)."""
    return {
        "ioc": {"seed": 1, "update_rate": 1.0},
        "setpoint": [{"name": name, "initial": 0.0, "limits": [-1000.0, 1000.0]}
                     for name in rw_names(count)]
        + [{"name": RETRY_PV, "initial": 0.0, "limits": [-1000.0, 1000.0]}],
    }


def settle_config(times: list[float], latency_time: float) -> dict[str, Any]:
    """Pairs whose readbacks ramp STEP in the given times (s), plus one pair for latency."""
    pairs = [
        {"name": sp, "readback": rb, "initial": 0.0, "limits": [-10.0, 10.0],
         "lag": "rate", "rate": STEP / t}
        for (sp, rb), t in zip(settle_names(len(times)), times, strict=True)
    ]
    pairs.append({"name": LATENCY_SET, "readback": LATENCY_RBV, "initial": 0.0,
                  "limits": [-10.0, 10.0], "lag": "rate", "rate": STEP / latency_time})
    return {"ioc": {"seed": 1, "update_rate": SETTLE_RATE_HZ, "time_scale": 1.0}, "setpoint": pairs}


def _stats(ioc: Any) -> dict[str, Any]:
    s = ioc.stats
    return {"steps": s.steps, "late_steps": s.late_steps, "max_lateness_ms": s.max_lateness * 1e3,
            "busy_s": s.busy, "posts": s.posts}


def _handle(ioc: Any, command: str, argument: Any) -> Any:
    """Run one runner command against a started SoftIOC."""
    if command == "arm":
        return str(ioc.faults.arm_from_dict(argument).fault)
    if command == "clear_faults":
        return ioc.faults.clear(None)
    if command == "clear_audit":
        ioc.audit.clear()  # each put re-counts the whole audit: keep it short so puts cost alike
        return None
    if command == "stats":
        return _stats(ioc)
    raise ValueError(f"unknown command {command!r}")


def _serve(config: Mapping[str, Any], conn: Connection) -> None:
    """Child process: serve `config` and answer commands until told to stop or orphaned."""
    from softioc import SoftIOC

    with SoftIOC(config) as ioc:
        conn.send(("ok", ioc.client_conf()))
        while True:
            try:
                if not conn.poll(1.0):
                    continue
                command, argument = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if command == "stop":
                conn.send(("ok", None))
                return
            try:
                conn.send(("ok", _handle(ioc, command, argument)))
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


class Machine:
    """A soft IOC serving `config`, in a spawned child process or (in_process) in this one.

    `conf` is the p4p client configuration; `arm`, `clear_audit` and `stats` act on the IOC.
    Use as a context manager; every wait on the child has a timeout.
    """

    def __init__(self, config: Mapping[str, Any], in_process: bool = False) -> None:
        self.config = dict(config)
        self.in_process = in_process
        self.conf: dict[str, str] = {}
        self._ioc: Any = None
        self._proc: Any = None
        self._conn: Connection | None = None

    def __enter__(self) -> Machine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving; returns once clients can connect."""
        if self.in_process:
            from softioc import SoftIOC

            self._ioc = SoftIOC(self.config).start()
            self.conf = self._ioc.client_conf()
            return
        mp = multiprocessing.get_context("spawn")  # never fork a process holding p4p contexts
        self._conn, child = mp.Pipe()
        self._proc = mp.Process(target=_serve, args=(self.config, child), daemon=True,
                                name="pva-bench-ioc")
        self._proc.start()
        child.close()
        try:
            self.conf = self._call_reply(START_TIMEOUT, "starting the soft IOC")
        except BaseException:
            self.stop()
            raise
        _log.debug("soft IOC child %d serving on %s", self._proc.pid, self.conf)

    def _call_reply(self, timeout: float, what: str) -> Any:
        assert self._conn is not None
        try:
            if not self._conn.poll(timeout):
                raise TimeoutError(f"soft IOC process: no reply within {timeout:g} s ({what})")
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            raise RuntimeError(f"soft IOC process exited ({what}); see its output above") from None
        if status != "ok":
            raise RuntimeError(f"soft IOC process: {what} failed: {payload}")
        return payload

    def call(self, command: str, argument: Any = None) -> Any:
        """Run a command (arm, clear_faults, clear_audit, stats) on the IOC and return its result."""
        if self._ioc is not None:
            return _handle(self._ioc, command, argument)
        if self._conn is None:
            raise RuntimeError("the soft IOC is not running")
        self._conn.send((command, argument))
        return self._call_reply(REPLY_TIMEOUT, command)

    def arm(self, spec: Mapping[str, Any]) -> str:
        """Arm a fault given as data, e.g. {"pv": ..., "kind": "put_timeout", "count": 1}."""
        return self.call("arm", dict(spec))

    def clear_audit(self) -> None:
        """Empty the IOC's audit, which otherwise grows with every put."""
        self.call("clear_audit")

    def stats(self) -> dict[str, Any]:
        """The IOC update loop's counters: steps, late steps, busy seconds, posts."""
        return self.call("stats")

    def stop(self) -> None:
        """Stop serving; the child is killed if it does not exit within a few seconds."""
        if self._ioc is not None:
            self._ioc.stop()
            self._ioc = None
        if self._proc is None:
            return
        try:
            if self._proc.is_alive():
                self.call("stop")
        except (TimeoutError, RuntimeError, OSError):
            _log.warning("soft IOC process did not acknowledge stop; killing it")
        self._proc.join(10.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5.0)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None
