"""The soaked machine: a soft IOC in a child process (devtools.ioc_process), driven over a pipe.

A separate process keeps the soak's own memory and thread figures about the client alone
(the IOC's append-only audit grows by design), and puts the IOC on its own interpreter, as a
real one would be.
"""

from __future__ import annotations

from typing import Any

from softioc import FaultRecord, PutRecord

from ..ioc_process import IOCProcess

__all__ = ["SoakIOC", "machine_config"]


def machine_config(pvs: int, seed: int, update_rate: float) -> dict[str, Any]:
    """`pvs` setpoints SOAK:n:SET whose readbacks SOAK:n:RBV follow at the next update, exactly."""
    return {
        "ioc": {"seed": seed, "update_rate": update_rate, "time_scale": 1.0},
        "setpoint": [
            {"name": f"SOAK:{n}:SET", "readback": f"SOAK:{n}:RBV", "limits": [-10.0, 10.0],
             "lag": "none", "noise": 0.0}
            for n in range(pvs)
        ],
    }


class SoakIOC:
    """A soft IOC serving `config` in a child process; `client_conf` reaches it."""

    def __init__(self, config: dict[str, Any], log_level: str = "ERROR", timeout: float = 60.0,
                 audit: str | None = None) -> None:
        self._process = IOCProcess(config, log_level=log_level, start_timeout=timeout,
                                   reply_timeout=timeout, audit=audit).start()
        self.client_conf: dict[str, str] = self._process.client_conf

    def arm(self, pv: str, kind: str, **params: Any) -> dict[str, Any]:
        """Arm a fault ('*' for the whole server); returns the armed fault as a dict."""
        return self._process.call("arm", {"pv": pv, "kind": kind, **params})

    def drain(self) -> tuple[list[PutRecord], list[FaultRecord]]:
        """The put records and fault events the IOC logged since the last drain, oldest first."""
        puts, faults = self._process.call("drain")
        return [PutRecord(**r) for r in puts], [FaultRecord(**r) for r in faults]

    def stats(self) -> dict[str, Any]:
        """The IOC process's RSS (kB), threads, audit size and update-loop health."""
        s = self._process.call("stats")
        return {"rss_kb": s["rss_kb"], "os_threads": s["os_threads"], "audit_puts": s["audit_puts"],
                "steps": s["steps"], "late_steps": s["late_steps"],
                "max_lateness_s": round(s["max_lateness_s"], 4), "busy_s": round(s["busy_s"], 3),
                "active_faults": s["active_faults"]}

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def close(self) -> None:
        """Stop the IOC and its process (asked, then terminated, then killed)."""
        self._process.stop()

    def __enter__(self) -> SoakIOC:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
