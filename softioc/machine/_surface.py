"""The machine's control PVs, served by the parent and routed to the shards.

The same names as one soft IOC's (softioc.server.CONTROL_PVS), under the machine's control prefix, so a
script cannot tell one process from N: FAULT:ARM goes to the shard serving the PV (every
shard for '*'), FAULT:CLEAR to its shard (every shard for ""), FAULT:ACTIVE merges the lists,
FAULT:FIRED and PUTS sum the counts (PUTS also the control writes refused here, which the
machine audits itself), FAULT:LAST is the latest event of any shard, RESTART
takes every shard's server away, TIME is the simulated time. Two more:
  SHARDS          string  JSON list: per shard its index, pid, address, alive, PV count (read-only)
  SHARD:RESTART   int     put a shard index: start that shard again (e.g. after it died)
Counts are polled from the shards at 10 Hz, so they lag a put by up to ~0.1 s.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from p4p.nt import NTScalar
from p4p.server import Server, StaticProvider
from p4p.server.thread import SharedPV
from p4p.util import ThreadedWorkQueue

from ..errors import SoftIOCError
from ..server import (
    CONTROL_PVS,
    IDENTITY,
    IDENTITY_FIELD,
    AccessRule,
    Audit,
    ReadOnly,
    WriteHandler,
    audit_refusal,
    check_text,
    control_pvs,
    owner,
    parse_fault_spec,
)

_log = logging.getLogger(__name__)

POLL_PERIOD = 0.1
"""Seconds between status polls of the shards (what PUTS, FAULT:* and TIME lag by at most)."""


class ControlSurface:
    """Control PVs for a whole machine on their own p4p server (host, TCP port, UDP port)."""

    def __init__(self, machine: Any, host: str, port: int, broadcast_port: int, audit: Audit) -> None:
        """`audit` records the control writes refused here (the shards audit everything else)."""
        self._machine = machine
        self._audit = audit
        self.host, self.port, self.broadcast_port = host, port, broadcast_port
        ioc = machine.config.ioc
        self.prefix = p = ioc.control_prefix
        self.served_prefix = ioc.prefix  # every PV is served under the machine's prefix, as one soft IOC's
        self._queue = ThreadedWorkQueue(name="machine-control", workers=2, daemon=True, maxsize=0)
        types = {code: NTScalar(code, extra=IDENTITY) for code in "sld"}  # each carries the machine's id

        # the machine's control PVs obey control_from (default: their owner), as one soft IOC's do
        rule = AccessRule.build("control_from", ioc.control_from if ioc.control_from is not None else (owner(),))

        def control(action: Any) -> WriteHandler:
            return WriteHandler(action, rule, self._refused)

        def pv(code: str, initial: Any, handler: Any = None) -> SharedPV:
            return SharedPV(nt=types[code], initial={"value": initial, IDENTITY_FIELD: machine.identity},
                            handler=handler or ReadOnly(), queue=self._queue)

        # one soft IOC's control PVs, and the shards' two
        table = (*CONTROL_PVS, ("ID", "s", machine.identity), ("SHARDS", "s", "[]"), ("SHARD:RESTART", "l", 0))
        self.pvs: dict[str, SharedPV] = control_pvs(p, table, pv, {
            "FAULT:ARM": control(self._arm), "FAULT:CLEAR": control(self._clear),
            "RESTART": control(self._restart), "SHARD:RESTART": control(self._restart_shard)})
        self._published: dict[str, Any] = {}
        self._update_lock = threading.Lock()  # one poll at a time; it also guards _published
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def _refused(self, name: str, op: Any, message: str) -> None:
        """A control PV write the rule refused: audited and counted in PUTS, as one soft IOC does."""
        audit_refusal(self._audit, name, op, message, float(self._published.get(f"{self.prefix}TIME", 0.0)))
        self.changed()

    def start(self) -> ControlSurface:
        self._queue.start()
        try:  # the first poll before serving: a client never reads a SHARDS that lists no shard
            self.update()
        except Exception:  # noqa: BLE001 - the poll thread publishes it soon
            _log.exception("machine control update failed")
        provider = StaticProvider("softioc-machine-control")
        for name, pv in self.pvs.items():
            provider.add(self.served_prefix + name, pv)
        conf = {
            "EPICS_PVAS_INTF_ADDR_LIST": self.host, "EPICS_PVAS_BEACON_ADDR_LIST": self.host,
            "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO", "EPICS_PVAS_SERVER_PORT": str(self.port),
            "EPICS_PVAS_BROADCAST_PORT": str(self.broadcast_port),
        }
        self._server = Server(providers=[provider], conf=conf, useenv=False)
        self._thread = threading.Thread(target=self._run, name="machine-control-poll", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._server is not None:
            self._server.stop()
            self._server = None
        for pv in self.pvs.values():
            pv.close(destroy=True)
        self._queue.stop()

    def changed(self) -> None:
        """Poll the shards now (a fault was armed or cleared, a shard died or came back)."""
        self._wake.set()

    # handlers (on the work queue) ----------------------------------------------------------
    def _arm(self, value: Any) -> None:
        armed = self._machine.faults.arm_from_dict(parse_fault_spec(str(value)))
        _log.info("fault armed over the wire: %s", armed)
        self._publish_now()

    def _clear(self, value: Any) -> None:
        target = check_text(str(value), "a PV name to clear").strip()  # a huge one is cut short in the error
        self._machine.faults.clear(target or None)
        self._publish_now()

    def _publish_now(self) -> None:
        """Publish the shards' state before an ARM or CLEAR put completes, so a script reading
        FAULT:ACTIVE right after its put sees its change (as one soft IOC's control PVs do)."""
        try:
            self.update()
        except Exception:  # noqa: BLE001 - the put did its work; the poll publishes it soon
            _log.exception("machine control update after a fault change failed")
            self.changed()

    def _restart(self, value: Any) -> Callable[[], None]:
        downtime = float(value)
        if not 0.0 <= downtime <= 3600.0:
            raise ValueError(f"downtime must be within [0, 3600] s, got {downtime}")
        return lambda: self._machine.restart(downtime, wait=False)

    def _restart_shard(self, value: Any) -> Callable[[], None]:
        index = int(value)
        if not 0 <= index < self._machine.processes:
            raise ValueError(f"shard must be within [0, {self._machine.processes - 1}], got {index}")
        # in a thread of its own: a start takes seconds, and the put should not wait for it
        return lambda: threading.Thread(target=self._restart_quietly, args=(index,), daemon=True).start()

    def _restart_quietly(self, index: int) -> None:
        try:
            self._machine.restart_shard(index)
        except SoftIOCError:
            _log.exception("shard %d could not be restarted", index)

    # publishing ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.update()
            except Exception:  # noqa: BLE001 - a shard dying mid-poll must not stop the surface
                _log.exception("machine control update failed")
            self._wake.wait(POLL_PERIOD)
            self._wake.clear()

    def update(self) -> None:
        """Poll every running shard once and publish the sums and merged lists (one poll at a
        time, so an older poll never publishes over a newer one)."""
        with self._update_lock:
            self._update()

    def _update(self) -> None:
        statuses, rows = [], []
        for shard in self._machine.shards:
            row = {"shard": shard.index, "pid": shard.pid, "address": shard.address, "alive": shard.alive}
            if shard.alive:
                try:
                    statuses.append(shard.call("status"))
                except SoftIOCError:  # a shard that died mid-poll (ShardError)
                    row["alive"] = False
            rows.append(row)
        p = self.prefix
        self._post(f"{p}SHARDS", json.dumps(rows))
        self._post(f"{p}PUTS", sum(s["puts"] for s in statuses) + self._audit.put_count())
        self._post(f"{p}FAULT:FIRED", sum(s["fired"] for s in statuses))
        self._post(f"{p}FAULT:ACTIVE", json.dumps([a for s in statuses for a in s["active"]]))
        events = [s["last"] for s in statuses if s["last"]]
        if events:
            self._post(f"{p}FAULT:LAST", json.dumps(max(events, key=lambda e: e["wall_time"]), default=str))
        self._post(f"{p}TIME", round(max((s["time"] for s in statuses), default=0.0), 6))

    def _post(self, name: str, value: Any) -> None:
        if self._published.get(name) != value:
            self._published[name] = value
            self.pvs[name].post(value, timestamp=time.time())
