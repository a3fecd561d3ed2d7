"""The simulated machines the benchmark measures against, and a runner serving one of them.

By default the soft IOC runs in a child process, as a real IOC would, so its update loop and
put handlers never compete with the client for this process's GIL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..ioc_process import Commands, IOCProcess

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


class Machine:
    """A soft IOC serving `config`, in a child process (devtools.ioc_process) or in this one.

    `conf` is the p4p client configuration; `arm`, `clear_audit` and `stats` act on the IOC.
    Use as a context manager; every wait on the child has a timeout.
    """

    def __init__(self, config: Mapping[str, Any], in_process: bool = False) -> None:
        self.config = dict(config)
        self.in_process = in_process
        self.conf: dict[str, str] = {}
        self._ioc: Any = None
        self._commands: Commands | None = None
        self._process: IOCProcess | None = None

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
            self._commands = Commands(self._ioc)
            self.conf = self._ioc.client_conf()
            return
        self._process = IOCProcess(self.config, start_timeout=START_TIMEOUT,
                                   reply_timeout=REPLY_TIMEOUT).start()
        self.conf = self._process.client_conf

    def call(self, command: str, argument: Any = None) -> Any:
        """Run a command (arm, clear_faults, clear_audit, stats) on the IOC and return its result."""
        if self._commands is not None:
            return self._commands(command, argument)
        if self._process is None:
            raise RuntimeError("the soft IOC is not running")
        return self._process.call(command, argument)

    def arm(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Arm a fault given as data, e.g. {"pv": ..., "kind": "put_timeout", "count": 1}."""
        return self.call("arm", dict(spec))

    def clear_audit(self) -> None:
        """Empty the IOC's audit, which otherwise grows with every put."""
        self.call("clear_audit")

    def stats(self) -> dict[str, Any]:
        """The IOC update loop's counters: steps, late steps, max lateness (ms), busy s, posts."""
        s = self.call("stats")
        return {"steps": s["steps"], "late_steps": s["late_steps"],
                "max_lateness_ms": s["max_lateness_s"] * 1e3, "busy_s": s["busy_s"], "posts": s["posts"]}

    def stop(self) -> None:
        """Stop serving; a child is asked, then terminated, then killed (each wait bounded)."""
        if self._ioc is not None:
            self._ioc.stop()
            self._ioc = self._commands = None
        if self._process is not None:
            self._process.stop()
            self._process = None
