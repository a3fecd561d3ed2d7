"""The soft IOC's put path: check a put to a setpoint, let faults act on it, apply it, audit it.

SoftIOC.start() builds one `PutPath` per run and routes its channels' put handlers (`_channels`,
run on the p4p work queue) to `on_put` (a setpoint) and `refuse` (any other PV); fault
injection completes a held put through `apply`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import PutRefused
from ._access import peer_of
from ._audit import ACCEPTED, REJECTED, TIMED_OUT, PutRecord
from ._channels import plain

if TYPE_CHECKING:
    from ..model import Simulation
    from ._access import AccessRule
    from ._audit import Audit
    from ._control import ControlPVs
    from ._fault_control import FaultControl
    from ._views import Views

_log = logging.getLogger(__name__)

__all__ = ["PutPath"]


class PutPath:
    """The write side of one run of a SoftIOC: every put a client sends, from the wire to the audit.

    `clock` gives simulated seconds (for the audit), `overdue` the update steps due by now that
    a late update loop has yet to run (a put's effect on the readback waits for them).
    """

    def __init__(self, *, sim: Simulation, views: Views, faults: FaultControl, audit: Audit,
                 control: ControlPVs, lock: threading.RLock, write_rule: AccessRule,
                 clock: Callable[[], float], overdue: Callable[[], int]) -> None:
        self._sim, self._views, self._faults, self._audit = sim, views, faults, audit
        self._control, self._lock, self._write_rule = control, lock, write_rule
        self._clock, self._overdue = clock, overdue

    def _record(self, pv: str, value: Any, outcome: str, message: str = "", fault: str | None = None,
                peer: str = "", applied: Any = None) -> None:
        self._audit.record_put(PutRecord(pv, value, time.time(), self._clock(), outcome, message, fault, peer,
                                         applied))
        self._control.update_puts()  # at once, so a script reading PUTS right after its put sees it

    @staticmethod
    def _peer(op: Any) -> str:
        try:
            return str(op.peer())
        except Exception:  # noqa: BLE001 - the peer is informative only
            return ""

    def refuse(self, name: str, op: Any) -> None:
        """Refuse a put to a PV that is not a setpoint, and audit it."""
        message = f"{name} is read-only (not a setpoint)"
        try:
            value = plain(op.value())
        except ValueError:
            value = None
        self._record(name, value, REJECTED, message, peer=self._peer(op))
        _log.info("put refused: %s", message)
        op.done(error=message)

    def on_put(self, name: str, op: Any) -> None:
        """Handle a put to a setpoint: check it, let faults act, apply it, audit it."""
        peer = self._peer(op)
        try:
            value = _requested(op)
        except ValueError as exc:
            self._record(name, None, REJECTED, str(exc), peer=peer)
            op.done(error=f"{name}: {exc}")
            return
        rule = self._write_rule
        # an open rule (the default) lets everyone write: no account or address to look up
        refusal = rule.refusal(name, *peer_of(op)) if rule.entries is not None else None
        if refusal is not None:
            self._record(name, value, REJECTED, refusal, peer=peer)
            _log.warning("%s", refusal)
            op.done(error=refusal)
            return
        faults = self._faults
        with self._lock:
            if faults.closing:
                self._record(name, value, REJECTED, "soft IOC is stopping", peer=peer)
                op.done(error=f"{name}: soft IOC is stopping")
                return
            try:
                coerced = self._sim.devices[name].coerce(value)
            except PutRefused as exc:
                self._record(name, value, REJECTED, str(exc), peer=peer)
                op.done(error=str(exc))
                return
            faulted = faults.take_put(name, coerced)
            if faulted is not None:
                kind, effect = faulted
                if effect.reject is not None:
                    self._record(name, value, REJECTED, effect.reject, kind, peer)
                    faults.report_fired(name, kind, value, effect)
                    op.done(error=effect.reject)
                    return
                if effect.hold:
                    self._record(name, value, TIMED_OUT, "held by fault injection", kind, peer,
                                 coerced if effect.apply else None)
                    faults.report_fired(name, kind, value, effect)
                    if effect.apply:
                        self.apply(name, coerced)
                    faults.hold(name, op, coerced, effect)
                    return
            self.apply(name, coerced)
            self._record(name, value, ACCEPTED, peer=peer, applied=coerced)
            if self._sim.devices[name].numeric and not _same(coerced, value):
                _log.info("put to %s: %r clamped to %r (its limits)", name, value, coerced)
        op.done()

    def apply(self, name: str, value: Any) -> None:
        """Set setpoint `name` to an accepted (coerced) `value` in the model and publish it."""
        self._sim.apply(name, value, self._overdue())
        self._views.post(name, value)


def _requested(op: Any) -> Any:
    """What a put asks for, as plain Python: a channel's op.value() is the Value as sent
    (channels.build_channels gives each SharedPV an unwrap that leaves it so)."""
    raw = op.value()
    try:
        if "NTEnum" in raw.getID():
            return int(raw["value.index"])
        return plain(raw["value"])
    except KeyError as exc:
        raise ValueError(f"the put carries no {exc}") from None


_SCALARS = (float, int, str, bool)


def _same(a: Any, b: Any) -> bool:
    """True when a put's applied value is the requested one (no clamping)."""
    if type(a) is type(b) and type(a) in _SCALARS:  # the usual case, without numpy
        return bool(a == b)
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return False
