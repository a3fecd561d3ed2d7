"""The soft IOC's put path: check a put to a setpoint, let faults act on it, apply it, audit it.

`PutHandling` is a base of `softioc.server.SoftIOC`, whose start() hands `_on_put` (a
setpoint) and `_refuse_put` (any other PV) to softioc.channels: its PVs' handlers call them
on the p4p work queue.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .access import peer_of
from .audit import ACCEPTED, REJECTED, TIMED_OUT, PutRecord
from .channels import plain
from .errors import PutRefused
from .server_views import ServerViews

if TYPE_CHECKING:
    from .access import AccessRule
    from .audit import Audit

_log = logging.getLogger("softioc.server")  # the server's messages, wherever their code lives


class PutHandling(ServerViews):
    """The write side of a SoftIOC: every put a client sends, from the wire to the audit."""

    # set up by SoftIOC.__init__ and start()
    audit: Audit
    _write_rule: AccessRule | None

    # puts -------------------------------------------------------------------------------
    def _record(self, pv: str, value: Any, outcome: str, message: str = "", fault: str | None = None,
                peer: str = "", applied: Any = None) -> None:
        self.audit.record_put(PutRecord(pv, value, time.time(), self.sim_time, outcome, message, fault, peer,
                                        applied))
        if self._control is not None:
            self._control.update_puts()  # at once, so a script reading PUTS right after its put sees it

    def _overdue_steps(self) -> int:
        """Update steps due by now that a late loop has yet to run (0 when it keeps time, or is so
        late it will resynchronise): a put's effect on the readback waits for them."""
        if self._stepped_due is None:
            return 0
        period = 1.0 / self.config.ioc.update_rate
        behind = time.monotonic() - self._stepped_due
        return int(behind / period) if behind <= 1.0 + period else 0

    @staticmethod
    def _peer(op: Any) -> str:
        try:
            return str(op.peer())
        except Exception:  # noqa: BLE001 - the peer is informative only
            return ""

    def _refuse_put(self, name: str, op: Any) -> None:
        message = f"{name} is read-only (not a setpoint)"
        try:
            value = plain(op.value())
        except ValueError:
            value = None
        self._record(name, value, REJECTED, message, peer=self._peer(op))
        _log.info("put refused: %s", message)
        op.done(error=message)

    def _on_put(self, name: str, op: Any) -> None:
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
        refusal = rule.refusal(name, *peer_of(op)) if rule is not None and rule.entries is not None else None
        if refusal is not None:
            self._record(name, value, REJECTED, refusal, peer=peer)
            _log.warning("%s", refusal)
            op.done(error=refusal)
            return
        with self._lock:
            if self.faults.closing:
                self._record(name, value, REJECTED, "soft IOC is stopping", peer=peer)
                op.done(error=f"{name}: soft IOC is stopping")
                return
            assert self._sim is not None  # puts are served only once started
            try:
                coerced = self._sim.devices[name].coerce(value)
            except PutRefused as exc:
                self._record(name, value, REJECTED, str(exc), peer=peer)
                op.done(error=str(exc))
                return
            faulted = self.faults.take_put(name, coerced)
            if faulted is not None:
                kind, effect = faulted
                if effect.reject is not None:
                    self._record(name, value, REJECTED, effect.reject, kind, peer)
                    self.faults.report_fired(name, kind, value, effect)
                    op.done(error=effect.reject)
                    return
                if effect.hold:
                    self._record(name, value, TIMED_OUT, "held by fault injection", kind, peer,
                                 coerced if effect.apply else None)
                    self.faults.report_fired(name, kind, value, effect)
                    if effect.apply:
                        self._apply(name, coerced)
                    self.faults.hold(name, op, coerced, effect)
                    return
            self._apply(name, coerced)
            self._record(name, value, ACCEPTED, peer=peer, applied=coerced)
            if self._sim.devices[name].numeric and not _same(coerced, value):
                _log.info("put to %s: %r clamped to %r (its limits)", name, value, coerced)
        op.done()

    def _apply(self, name: str, value: Any) -> None:
        assert self._sim is not None  # puts are served only once started
        self._sim.apply(name, value, self._overdue_steps())
        channel = self._channels[name]
        alarm = self._alarm_of(name, self.faults.alarms(time.monotonic()))
        if channel.open:
            channel.post(value, time.time(), alarm)
        else:
            channel.last, channel.alarm = value, alarm


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
