"""Control PVs: arm, clear and watch faults over the wire (pvput, CI scripts, operators).

Names under the IOC's control prefix (default 'SOFTIOC:'):
  FAULT:ARM     string  put "PV KIND key=value ...", e.g. "DEMO:Q1:SET put_timeout count=2"
  FAULT:CLEAR   string  put a PV name to clear its faults, or "" to clear every fault
  FAULT:ACTIVE  string  JSON list of the faults armed now (read-only)
  FAULT:FIRED   int     how many faults fired since start (read-only)
  FAULT:LAST    string  JSON of the last fault event (read-only)
  PUTS          int     puts received by simulated PVs since start, and refused control writes (read-only)
  RESTART       double  put a downtime in seconds: the whole server goes away and comes back
  TIME          double  simulated seconds since start (read-only)
  ID            string  this machine's id, also in every PV's `softiocId` field (read-only)

Writable control PVs obey the `control_from` access rule (`_access`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from p4p.nt import NTScalar
from p4p.server.thread import SharedPV

from ._access import AccessRule, peer_of
from ._audit import REJECTED, Audit, PutRecord
from ._channels import IDENTITY, IDENTITY_FIELD
from ._fault_control import FaultControl

__all__ = ["CONTROL_PVS", "MAX_TEXT", "ControlPVs", "ReadOnly", "WriteHandler", "audit_refusal", "check_text",
           "control_pvs", "parse_fault_spec"]

_log = logging.getLogger(__name__)


# the longest text a control PV takes (characters): a fault spec is a line, not a document
MAX_TEXT = 10_000


def check_text(text: str, what: str) -> str:
    """`text` itself, or ValueError if it is longer than MAX_TEXT or holds a control character."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"{what} is {len(text):,} characters long; the limit is {MAX_TEXT:,} "
                         f"(it begins {text!r:.40})")
    bad = next((c for c in text if (ord(c) < 32 and c not in " \t\r\n") or c == "\x7f"
                or 0xD800 <= ord(c) <= 0xDFFF), None)
    if bad is not None:
        raise ValueError(f"{what} contains the character {bad!r}, got {text!r:.200}")
    return text


def parse_fault_spec(text: str) -> dict[str, Any]:
    """Parse "PV KIND key=value ..." (values as JSON literals, else strings) into a fault dict.

    A plain-text form because PVAccess tools read a JSON object put as a structure assignment.
    A key given twice is refused: silently taking the last would hide a typo.
    """
    check_text(text, "a fault spec")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot parse {text!r}: {exc}") from None
    if len(words) < 2:
        raise ValueError(f"expected 'PV KIND key=value ...', e.g. 'DEMO:Q1:SET put_timeout count=2', got {text!r}")
    spec: dict[str, Any] = {"pv": words[0], "kind": words[1]}
    for word in words[2:]:
        key, sep, raw = word.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {word!r} in {text!r:.200}")
        if key in spec:
            where = "is the first word" if key == "pv" else "is the second word" if key == "kind" else "is given twice"
            raise ValueError(f"key {key!r} {where} in {text!r:.200}")
        try:
            spec[key] = json.loads(raw)
        except json.JSONDecodeError:
            spec[key] = raw
    return spec


CONTROL_PVS: tuple[tuple[str, str, Any], ...] = (
    ("FAULT:ARM", "s", ""),
    ("FAULT:CLEAR", "s", ""),
    ("FAULT:ACTIVE", "s", "[]"),
    ("FAULT:FIRED", "l", 0),
    ("FAULT:LAST", "s", ""),
    ("PUTS", "l", 0),
    ("RESTART", "d", 0.0),
    ("TIME", "d", 0.0),
)
"""The control PVs one soft IOC and a whole machine (softioc.machine's control surface) both serve, in order:
name after the control prefix, NT scalar type code, initial value."""


def control_pvs(prefix: str, table: Iterable[tuple[str, str, Any]],
                make: Callable[[str, Any, Any], SharedPV], handlers: Mapping[str, Any]) -> dict[str, SharedPV]:
    """{prefix + name: make(code, initial, handler)} for each row of `table`, in its order; the
    written PVs' handlers come from `handlers` by name, every other PV gets None (read-only)."""
    rows = list(table)
    unknown = set(handlers) - {name for name, _code, _initial in rows}
    if unknown:
        raise ValueError(f"handlers for control PVs not in the table: {sorted(unknown)}")
    return {prefix + name: make(code, initial, handlers.get(name)) for name, code, initial in rows}


def audit_refusal(audit: Audit, name: str, op: Any, message: str, sim_time: float) -> None:
    """Record a control PV write the access rule refused (outcome rejected, with the rule's
    message; counted in PUTS) and log it: one soft IOC and a machine's control surface alike."""
    try:
        value = op.value().raw["value"]
    except (KeyError, TypeError, ValueError):
        value = None
    try:
        peer = str(op.peer())
    except Exception:  # noqa: BLE001 - the peer is informative only
        peer = ""
    audit.record_put(PutRecord(name, value, time.time(), sim_time, REJECTED, message, peer=peer))
    _log.warning("%s", message)


class WriteHandler:
    """Runs `action(value)` for a client `rule` allows; a callable it returns runs after the put is completed."""

    def __init__(self, action: Callable[[Any], Any], rule: AccessRule, refused: Callable[[str, Any, str], None]) -> None:
        self._action, self._rule, self._refused = action, rule, refused

    def put(self, pv: SharedPV, op: Any) -> None:
        account, host = peer_of(op)
        message = self._rule.refusal(op.name(), account, host)
        if message is not None:
            self._refused(op.name(), op, message)
            op.done(error=message)
            return
        try:
            then = self._action(op.value().raw["value"])
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            op.done(error=f"{op.name()}: {exc}")
            return
        op.done()
        if then is not None:
            then()


class ReadOnly:
    """The handler of a control PV no client may write."""

    def put(self, pv: SharedPV, op: Any) -> None:
        op.done(error=f"{op.name()} is read-only")


class ControlPVs:
    """The control PVs of one IOC; `update()` is called by the update loop after each step."""

    def __init__(
        self, prefix: str, queue: Any, *, faults: FaultControl, audit: Audit,
        clock: Callable[[], float], restart: Callable[[float], None], identity: str = "",
        rule: AccessRule | None = None,
    ) -> None:
        self._faults, self._audit, self._clock, self._restart_server = faults, audit, clock, restart
        rule = rule if rule is not None else AccessRule.build("control_from", None)
        self._dirty = threading.Event()
        self._dirty.set()
        self._published: dict[str, Any] = {}
        self._post_lock = threading.Lock()  # the update loop and put handlers both publish
        types = {code: NTScalar(code, extra=IDENTITY) for code in "sld"}

        def pv(code: str, initial: Any, handler: Any = None) -> SharedPV:
            return SharedPV(nt=types[code], initial={"value": initial, IDENTITY_FIELD: identity},
                            handler=handler or ReadOnly(), queue=queue)

        def writable(action: Callable[[Any], Any]) -> WriteHandler:
            return WriteHandler(action, rule, self._refused)

        self.pvs: dict[str, SharedPV] = control_pvs(prefix, (*CONTROL_PVS, ("ID", "s", identity)), pv, {
            "FAULT:ARM": writable(self._arm), "FAULT:CLEAR": writable(self._clear),
            "RESTART": writable(self._restart)})
        self._prefix = prefix

    def _refused(self, name: str, op: Any, message: str) -> None:
        """Audit a write the access rule refused (outcome rejected, with the rule's message)."""
        audit_refusal(self._audit, name, op, message, self._clock())

    def _arm(self, value: Any) -> Callable[[], None]:
        armed = self._faults.arm_from_dict(parse_fault_spec(str(value)), fire=False)
        _log.info("fault armed over the wire on %s: %s", armed.pv, armed.fault)
        self.publish_faults()  # before the put completes: a script reading FAULT:ACTIVE next sees it
        # fire after the put completes: an outage of the whole server would otherwise stop the
        # server under the pending put, which the client then re-sends once it reconnects
        return lambda: self._faults.fire(armed)

    def _clear(self, value: Any) -> None:
        target = check_text(str(value), "a PV name to clear").strip()
        count = self._faults.clear(target or None)
        _log.info("cleared %d fault(s) over the wire (%s)", count, target or "all PVs")
        self.publish_faults()

    def _restart(self, value: Any) -> Callable[[], None]:
        downtime = float(value)
        if not 0.0 <= downtime <= 3600.0:
            raise ValueError(f"downtime must be within [0, 3600] s, got {downtime}")
        # after the put completes: stopping the server first would leave the client's put hanging
        return lambda: self._restart_server(downtime)

    def changed(self) -> None:
        """Mark fault state as changed so the next update republishes it."""
        self._dirty.set()

    def update(self) -> None:
        """Publish what changed: simulated time and puts every step, faults when they change."""
        p = self._prefix
        self._post(f"{p}TIME", round(self._clock(), 6))
        self.update_puts()
        if self._dirty.is_set():
            self.publish_faults()

    def publish_faults(self) -> None:
        """Publish the armed faults, the count fired and the latest fault event."""
        p = self._prefix
        self._dirty.clear()
        active = [armed.to_dict() for armed in self._faults.active()]
        self._post(f"{p}FAULT:ACTIVE", json.dumps(active))
        fired = self._audit.faults(event="fired")
        self._post(f"{p}FAULT:FIRED", len(fired))
        events = self._audit.faults(event=None)
        if events:
            self._post(f"{p}FAULT:LAST", json.dumps(dataclasses.asdict(events[-1]), default=str))

    def update_puts(self) -> None:
        """Publish the number of puts received so far."""
        with self._post_lock:  # count and post together, so a stale count never overwrites a newer one
            count = self._audit.put_count()  # no copy of the whole audit every step
            if self._published.get("puts") != count:
                self._published["puts"] = count
                self.pvs[f"{self._prefix}PUTS"].post(count)

    def _post(self, name: str, value: Any) -> None:
        with self._post_lock:
            if self._published.get(name) != value:
                self._published[name] = value
                self.pvs[name].post(value)

    def close(self) -> None:
        for pv in self.pvs.values():
            pv.close(destroy=True)
