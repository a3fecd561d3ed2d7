"""Fault injection on a served IOC: arming and clearing, held puts, outages, expiry.

`FaultControl` owns the fault book and everything faults do at the wire. It reaches the server
only through the callables it is given (`Wire`), so it never imports the server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import IOCConfig
from ..faults import (
    SERVER,
    ArmedFault,
    Fault,
    FaultBook,
    PutEffect,
    ReadbackEffect,
    check_target,
    describe,
    fault_from_dict,
)
from ..model import AlarmState
from ._audit import Audit, FaultRecord
from ._channels import Channel

__all__ = ["ABANDON_AFTER", "FaultControl", "HeldPut", "Wire"]

_log = logging.getLogger(__name__)

ABANDON_AFTER = 60.0
"""Seconds after which a put held without `complete_after` is abandoned with an error."""


@dataclass(frozen=True)
class Wire:
    """What fault injection may ask of the server: apply a value, take the server down, bring it back."""

    apply: Callable[[str, Any], None]  # (setpoint, coerced value): set the device and post it
    take_down: Callable[[float], None]  # the whole server off the network for s, back by itself
    bring_back: Callable[[], None]
    clock: Callable[[], float]  # simulated seconds since start
    changed: Callable[[], None]  # fault state changed (republish it)


@dataclass
class HeldPut:
    """A put kept open by a fault until `deadline` (monotonic s)."""

    pv: str
    op: Any
    value: Any  # applied when it completes; None when it was applied on arrival
    deadline: float
    complete: bool  # True: complete normally (late); False: abandon with an error


class FaultControl:
    """Arm, inspect and clear faults on a running (or not yet started) IOC."""

    def __init__(self, config: IOCConfig, audit: Audit, lock: threading.RLock, wire: Wire) -> None:
        self._config, self._audit, self._lock, self._wire = config, audit, lock, wire
        self._setpoints = {sp.name for sp in config.setpoints}
        self._served = set(config.pv_names())
        self._observables = {ob.name for ob in config.observables}
        self._book = FaultBook(config.ioc.seed)
        self._channels: dict[str, Channel] = {}
        self._held: list[HeldPut] = []
        self._scheduled: list[tuple[float, str, Fault]] = []
        self._serving = False
        self._closing = False

    # public --------------------------------------------------------------------------------
    def arm(self, pv: str, fault: Fault, *, fire: bool = True) -> ArmedFault:
        """Arm `fault` on `pv` ('*' for the whole server); fire=False leaves an outage to `fire()`."""
        check_target(type(fault), pv, self._setpoints, self._served, self._observables)
        armed = self._book.arm(pv, fault, time.monotonic())
        self._record(pv, fault.kind, "armed", describe(fault))
        _log.info("fault armed on %s: %s", pv, describe(fault))
        if fire:
            self.fire(armed)
        return armed

    def arm_from_dict(self, spec: Mapping[str, Any], *, fire: bool = True) -> ArmedFault:
        """Arm from data such as {"pv": "X:SET", "kind": "put_timeout", "count": 2}."""
        params = dict(spec)
        try:
            pv, kind = params.pop("pv"), params.pop("kind")
        except KeyError as exc:
            raise ValueError(f"a fault needs 'pv' and 'kind'; {exc.args[0]!r} is missing") from None
        return self.arm(pv, fault_from_dict(kind, params), fire=fire)

    def fire(self, armed: ArmedFault) -> None:
        """Take the target of an armed outage off the network now, if the IOC is serving."""
        downtime = armed.fault.downtime()
        if downtime is None or not self._serving or armed.fired:
            return
        armed.fired += 1
        self._record(armed.pv, armed.fault.kind, "fired", {"duration": downtime})
        if armed.pv == SERVER:
            self._wire.take_down(downtime)
            return
        with self._lock:
            for channel in self._related(armed.pv):
                channel.close()

    def clear(self, pv: str | None = None) -> int:
        """Disarm faults on `pv` (all when None), release puts they hold; returns how many.

        ValueError for a `pv` that is neither served here nor '*': a typo must not pass as "none armed".
        """
        if pv is not None and pv != SERVER and pv not in self._served:
            raise ValueError(f"cannot clear faults on {pv!r:.200}: not a PV of this IOC")
        removed = self._book.clear(pv)
        for armed in removed:
            self._retire(armed, "cleared")
        with self._lock:
            release = [h for h in self._held if pv is None or h.pv == pv]
            self._held = [h for h in self._held if h not in release]
        for put in release:
            self._finish(put, error=f"{put.pv}: put abandoned (fault cleared)")
        return len(removed)

    def active(self, pv: str | None = None) -> list[ArmedFault]:
        """Faults armed now, in arming order."""
        return self._book.active(pv)

    def alarms(self, now: float) -> dict[str, AlarmState]:
        """The alarm each PV with an alarm fault armed publishes at monotonic time `now`."""
        return self._book.alarms(now)

    def held(self) -> list[str]:
        """The PVs of the puts held open now, in arrival order."""
        with self._lock:
            return [h.pv for h in self._held]

    # the server's side -----------------------------------------------------------------------
    def start(self, channels: dict[str, Channel]) -> None:
        """Bind a fresh set of channels; arm the config's faults (outages of single PVs fire now)."""
        self._channels, self._closing, self._serving = channels, False, True
        for scheduled in self._config.faults:
            if scheduled.at is None:
                self.arm(scheduled.pv, scheduled.fault, fire=False)
            else:
                self._scheduled.append((scheduled.at, scheduled.pv, scheduled.fault))
        self._scheduled.sort(key=lambda item: item[0])
        # a PV's outage before the server is up, so no client ever sees it; the server's once it is up
        for armed in self._book.active():
            if armed.pv != SERVER:
                self.fire(armed)

    def serving(self) -> None:
        """The server is up: fire whole-server outages armed before it was."""
        for armed in self._book.active(SERVER):
            self.fire(armed)

    def stop(self) -> None:
        """Release every held put with an error and disarm everything (the IOC is stopping)."""
        with self._lock:
            self._closing, self._serving = True, False
            held, self._held = self._held, []
            self._scheduled.clear()
        for put in held:
            self._finish(put, error="soft IOC stopped before completing this put")
        self._book.clear()

    def take_put(self, pv: str, value: Any) -> tuple[str, PutEffect] | None:
        """(fault kind, effect) when an armed fault fires on this put to `pv`, else None."""
        armed = self._book.take_put_fault(pv, time.monotonic())
        if armed is None:
            return None
        effect = armed.fault.put_effect(value)
        return None if effect is None else (armed.fault.kind, effect)

    def report_fired(self, pv: str, kind: str, value: Any, effect: PutEffect) -> None:
        """Record in the audit that a put fault of `kind` fired on a put of `value` to `pv`."""
        detail = {"message": effect.reject} if effect.reject is not None else {"apply": effect.apply}
        self._record(pv, kind, "fired", {"value": _jsonable(value), **detail})

    def hold(self, pv: str, op: Any, value: Any, effect: PutEffect) -> None:
        """Keep `op` open as `effect` says; `value` is applied on completion unless already applied."""
        late = effect.complete_after is not None
        delay = effect.complete_after if effect.complete_after is not None else ABANDON_AFTER
        with self._lock:
            self._held.append(HeldPut(pv, op, None if effect.apply else value, time.monotonic() + delay, late))

    @property
    def closing(self) -> bool:
        """True once stop() began: no put may be held any more."""
        return self._closing

    def tick(self, now: float) -> dict[str, ReadbackEffect]:
        """One update step: expire faults, arm scheduled ones, finish late puts; the readback effects."""
        # a put handler takes a fault's last shot and audits it as fired under this lock; expiring
        # outside it could audit "expired" before that "fired", and FAULT:LAST would end on "fired"
        with self._lock:
            spent = self._book.expire(now)
        for armed in spent:
            self._retire(armed, "expired")
        with self._lock:
            late = [h for h in self._held if h.deadline <= now]
            self._held = [h for h in self._held if h.deadline > now]
            due = []
            while self._scheduled and self._scheduled[0][0] <= self._wire.clock():
                due.append(self._scheduled.pop(0))
        for _, pv, fault in due:
            self.arm(pv, fault)
        for put in late:
            self._finish(put, None if put.complete else f"{put.pv}: put abandoned after {ABANDON_AFTER:.0f} s")
        return self._book.readback_effects(now)

    # inside ----------------------------------------------------------------------------------
    def _record(self, pv: str, kind: str, event: str, detail: dict[str, Any] | None = None) -> None:
        self._audit.record_fault(FaultRecord(pv, kind, event, time.time(), self._wire.clock(), detail or {}))
        self._wire.changed()

    def _related(self, pv: str) -> list[Channel]:
        """A setpoint goes away with its readback; any other PV goes away alone."""
        channel = self._channels[pv]
        if channel.device == pv:
            return [c for c in self._channels.values() if c.device == pv]
        return [channel]

    def _retire(self, armed: ArmedFault, event: str) -> None:
        self._record(armed.pv, armed.fault.kind, event, {"fired": armed.fired})
        if armed.fault.downtime() is None or not self._channels:
            return
        if armed.pv == SERVER:
            self._wire.bring_back()
            return
        with self._lock:
            for channel in self._related(armed.pv):
                channel.reopen()

    def _finish(self, put: HeldPut, error: str | None) -> None:
        if error is None and put.value is not None:
            with self._lock:
                self._wire.apply(put.pv, put.value)
        try:
            put.op.done(error=error) if error else put.op.done()
        except Exception:  # noqa: BLE001 - the client may be long gone
            _log.debug("could not complete a held put to %s", put.pv, exc_info=True)


def _jsonable(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value
