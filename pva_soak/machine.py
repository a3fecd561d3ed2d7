"""The soaked machine: a soft IOC in a spawned child process, driven over a pipe.

A separate process keeps the soak's own memory and thread figures about the client alone
(the IOC's append-only audit grows by design), and puts the IOC on its own interpreter, as a
real one would be. The child stops when told to, or when the parent goes away.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from typing import Any

__all__ = ["SoakIOC", "machine_config"]

_log = logging.getLogger(__name__)


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


def _serve(conn: Any, config: dict[str, Any], log_level: int) -> None:
    """Child process: run the IOC and answer (command, *args) messages until 'stop' or EOF."""
    logging.basicConfig(level=log_level, format="%(asctime)s ioc %(levelname)s %(name)s: %(message)s")
    from softioc import SoftIOC

    from .probes import status_field

    ioc = SoftIOC(config).start()
    seen_puts = seen_faults = 0
    conn.send(("ok", ioc.client_conf()))
    try:
        while True:
            try:
                command, *args = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            try:
                if command == "arm":
                    reply: Any = ioc.faults.arm_from_dict(args[0]).to_dict()
                elif command == "drain":
                    puts, faults = ioc.audit.puts(), ioc.audit.faults(event=None)
                    reply = (puts[seen_puts:], faults[seen_faults:])
                    seen_puts, seen_faults = len(puts), len(faults)
                elif command == "stats":
                    stats = ioc.stats
                    reply = {
                        "rss_kb": status_field("VmRSS"), "os_threads": status_field("Threads"),
                        "audit_puts": len(ioc.audit.puts()), "steps": stats.steps,
                        "late_steps": stats.late_steps, "max_lateness_s": round(stats.max_lateness, 4),
                        "busy_s": round(stats.busy, 3), "active_faults": len(ioc.faults.active()),
                    }
                elif command == "stop":
                    conn.send(("ok", None))
                    return
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
                continue
            conn.send(("ok", reply))
    finally:
        ioc.stop()


class SoakIOC:
    """A soft IOC serving `config` in a spawned child process; `client_conf` reaches it."""

    def __init__(self, config: dict[str, Any], log_level: int = logging.ERROR, timeout: float = 60.0) -> None:
        context = multiprocessing.get_context("spawn")  # no p4p state is inherited
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, config, log_level),
                                        name="pva-soak-ioc", daemon=True)
        self._process.start()
        child.close()
        self.timeout = timeout
        self.client_conf: dict[str, str] = self._reply("start")

    def _reply(self, what: str) -> Any:
        if not self._conn.poll(self.timeout):
            raise RuntimeError(f"the soft IOC process did not answer {what!r} within {self.timeout:g} s")
        status, payload = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"soft IOC process: {what}: {payload}")
        return payload

    def _call(self, command: str, *args: Any) -> Any:
        self._conn.send((command, *args))
        return self._reply(command)

    def arm(self, pv: str, kind: str, **params: Any) -> dict[str, Any]:
        """Arm a fault ('*' for the whole server); returns the armed fault as a dict."""
        return self._call("arm", {"pv": pv, "kind": kind, **params})

    def drain(self) -> tuple[Sequence[Any], Sequence[Any]]:
        """The put records and fault events the IOC logged since the last drain, oldest first."""
        return self._call("drain")

    def stats(self) -> dict[str, Any]:
        """The IOC process's RSS (kB), threads, audit size and update-loop health."""
        return self._call("stats")

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def close(self) -> None:
        """Stop the IOC and its process (terminated if it does not exit within 10 s)."""
        if self._process.is_alive():
            try:
                self._call("stop")
            except (RuntimeError, OSError, EOFError) as exc:
                _log.warning("soft IOC process did not stop cleanly: %s", exc)
            self._process.join(10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(10)
        self._conn.close()

    def __enter__(self) -> SoakIOC:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
