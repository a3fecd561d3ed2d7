"""What the journal says was done: one record per call and PV, and the plan to put PVs back.

No file access here: these work on the entries the reader (_reader.py) gives.

A put counts for a restore only if it may have reached the machine: a put refused before it
was sent (outcome ``not_attempted`` or ``refused``) or rejected by the server changed
nothing; one that timed out may have been applied, and one with no outcome at all (the
process was killed or interrupted) may have been sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._format import BEFORE, INTERRUPTED, NOT_SENT, OUTCOME, PUT, READ_ONLY, REJECTED, VALIDATION
from ._lines import Entry

__all__ = ["CallGrouper", "CallRecord", "PvRecord", "ReadbackCheck", "RestoreStep", "Wire", "group_calls",
           "readback_check_of", "readback_checks", "restore_plan", "wire_of"]

_MISSING = object()

TIMED_OUT_NOTE = "timed out: may have been applied"
UNKNOWN_NOTE = "no outcome recorded (killed or interrupted): may have been applied"
FAILED_NOTE = "failed on the way: may have been applied"


@dataclass
class PvRecord:
    """What one call did to one PV: before -> requested, each attempt's outcome, validation."""

    pv: str
    before: Any = _MISSING
    before_error: str | None = None
    requested: Any = _MISSING
    read_only: bool = False
    attempts: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    validation: Entry | None = None
    last_put: float | None = None

    @property
    def has_before(self) -> bool:
        return self.before is not _MISSING

    @property
    def was_put(self) -> bool:
        """True when a put line was written (the put was then sent, or refused before sending)."""
        return self.last_put is not None

    @property
    def may_have_reached(self) -> bool:
        """True when a put of this call may have changed the PV: an attempt was accepted, timed
        out, failed on the way, or has no outcome; not when each was refused before sending
        or rejected by the server."""
        return self.was_put and any(outcome not in (*NOT_SENT, REJECTED) for _, outcome, _ in self.attempts)

    @property
    def accepted(self) -> bool:
        return any(outcome == "accepted" for _, outcome, _ in self.attempts)

    @property
    def uncertain(self) -> str:
        """Why a put that may have reached the PV is not known to have: "" when one was accepted."""
        if not self.may_have_reached or self.accepted:
            return ""
        outcomes = {outcome for _, outcome, _ in self.attempts}
        if "timed_out" in outcomes:
            return TIMED_OUT_NOTE
        if None in outcomes:
            return UNKNOWN_NOTE
        return FAILED_NOTE


@dataclass(frozen=True)
class Wire:
    """What a call's PV names meant on the wire: the Interface's prefix and rehearsal settings.

    `recorded` is False for a call of a journal written before these were recorded (its
    values are then the defaults: no prefix, no rehearsal).
    """

    prefix: str = ""
    rehearsal: bool = False
    rehearsal_id: str = ""
    recorded: bool = True

    def describe(self) -> str:
        """A short phrase for messages: "prefix 'X:', rehearsal against soft IOC <id>"."""
        text = f"prefix {self.prefix!r}" if self.prefix else "no prefix"
        text += f", rehearsal against soft IOC {self.rehearsal_id}" if self.rehearsal else ", not in rehearsal"
        return text if self.recorded else text + " (not recorded: the journal predates it)"

    def same_as(self, other: Wire) -> bool:
        return (self.prefix, self.rehearsal, self.rehearsal_id) == (other.prefix, other.rehearsal,
                                                                    other.rehearsal_id)


@dataclass
class CallRecord:
    """One set_values call as the journal saw it: when, which process, and each PV.

    `wire` is the Interface's prefix and rehearsal settings as the call's lines record them
    (None in journals written before they were); `interrupted` the line saying the call was
    broken off during its puts, if it was.
    """

    call: str
    time: float
    pid: int
    pvs: dict[str, PvRecord] = field(default_factory=dict)
    wire: Wire | None = None
    interrupted: Entry | None = None

    @property
    def read_only(self) -> bool:
        return bool(self.pvs) and all(r.read_only for r in self.pvs.values())


class CallGrouper:
    """Gathers entries, one at a time, into one CallRecord per call: what a reader streaming a
    window feeds, so that only the calls are held, not every line."""

    def __init__(self) -> None:
        self._calls: dict[str, CallRecord] = {}

    def add(self, e: Entry) -> None:
        record = self._calls.get(e.call)
        if record is None:
            record = self._calls[e.call] = CallRecord(e.call, e.time, e.pid)
        elif e.time < record.time:
            record.time = e.time
        event, fields = e.event, e.fields  # read directly: this runs for every line of a window
        if event == INTERRUPTED:
            record.interrupted = e
            return
        name = fields.get("pv")
        if name is None:
            return
        pv = record.pvs.get(name)
        if pv is None:
            pv = record.pvs[name] = PvRecord(name)
        if event == BEFORE or event == READ_ONLY:
            if record.wire is None:
                wire = e.wire
                if wire is not None:
                    record.wire = Wire(str(wire["prefix"]), bool(wire["rehearsal"]), str(wire["rehearsal_id"]))
            if event == READ_ONLY:
                pv.requested, pv.read_only = fields.get("value"), True
            elif "value" in fields:
                pv.before = fields["value"]
            else:
                pv.before_error = fields.get("error") or "no value recorded"
        elif event == PUT:
            pv.requested = fields.get("value")
            pv.last_put = e.time
            pv.attempts.append((fields.get("attempt") or 0, None, None))
        elif event == OUTCOME:
            _set_outcome(pv.attempts, fields.get("attempt") or 0, fields.get("outcome"), fields.get("reason"))
        elif event == VALIDATION:
            pv.validation = e

    def discard(self, calls: Iterable[str]) -> None:
        """Forget these calls (a window's reader learnt they began before it)."""
        for call in calls:
            self._calls.pop(call, None)

    def calls(self) -> list[CallRecord]:
        """The calls, ordered by their first line's time."""
        return sorted(self._calls.values(), key=lambda c: c.time)


def group_calls(entries: Iterable[Entry]) -> list[CallRecord]:
    """Gather entries into one CallRecord per call, ordered by the call's first line time."""
    grouper = CallGrouper()
    for entry in entries:
        grouper.add(entry)
    return grouper.calls()


def _set_outcome(attempts: list[tuple[int, str | None, str | None]], attempt: int,
                 outcome: str | None, reason: str | None) -> None:
    for i in range(len(attempts) - 1, -1, -1):
        if attempts[i][0] == attempt and attempts[i][1] is None:
            attempts[i] = (attempt, outcome, reason)
            return
    attempts.append((attempt, outcome, reason))  # an outcome whose put line was lost


@dataclass(frozen=True)
class RestoreStep:
    """One PV to put back: its `value` before the window's first change, and its last put time.

    `note` says why the change is not known to have been applied ("timed out: may have been
    applied"); empty when a put of it was accepted.
    """

    pv: str
    value: Any
    last_put: float
    call: str
    note: str = ""


def restore_plan(calls: Sequence[CallRecord]) -> tuple[list[RestoreStep], dict[str, str]]:
    """The PVs to put back, newest change first, and {pv: why not} for those that cannot be.

    Each PV whose put may have reached the machine in `calls` goes back to its `before`
    value in the earliest call that may have changed it. Puts refused before sending and
    puts the server rejected are left out; a PV none of whose puts is known to have been
    accepted keeps a `note` saying so.
    """
    first: dict[str, tuple[CallRecord, PvRecord]] = {}
    last_put: dict[str, float] = {}
    notes: dict[str, list[str]] = {}
    for call in sorted(calls, key=lambda c: c.time):
        for pv, rec in call.pvs.items():
            if not rec.may_have_reached:
                continue
            first.setdefault(pv, (call, rec))
            last_put[pv] = max(last_put.get(pv, -math.inf), rec.last_put or -math.inf)
            notes.setdefault(pv, []).append(rec.uncertain)
    steps: list[RestoreStep] = []
    unrestorable: dict[str, str] = {}
    for pv, (call, rec) in first.items():
        # known applied if any call's put of it was accepted; else the first doubt says why
        note = "" if "" in notes[pv] else notes[pv][0]
        if rec.has_before:
            steps.append(RestoreStep(pv, rec.before, last_put[pv], call.call, note))
        else:
            why = rec.before_error or "no before value in the journal"
            unrestorable[pv] = f"call {call.call}: {why}"
    steps.sort(key=lambda s: s.last_put, reverse=True)
    return steps, unrestorable


def wire_of(calls: Sequence[CallRecord]) -> tuple[Wire, str | None]:
    """The one Wire of the calls whose puts may have reached the machine, and None; or, when
    they differ, the first call's Wire and a message naming each setting and its calls.

    A call of a journal that does not record them counts as the defaults (no prefix, no
    rehearsal), marked not recorded.
    """
    seen: dict[tuple[str, bool, str], tuple[Wire, list[str]]] = {}
    for call in sorted(calls, key=lambda c: c.time):
        if not any(rec.may_have_reached for rec in call.pvs.values()):
            continue
        wire = call.wire if call.wire is not None else Wire(recorded=False)
        key = (wire.prefix, wire.rehearsal, wire.rehearsal_id)
        known, ids = seen.get(key, (wire, []))
        # one call that does not record them is enough to say so
        seen[key] = (known if known.recorded <= wire.recorded else wire, [*ids, call.call])
    if not seen:
        return Wire(recorded=False), None
    found = list(seen.values())
    if len(found) == 1:
        return found[0][0], None
    lines = [f"the calls in the window were made with {len(found)} different wire settings, so "
             "their PV names do not all mean the same PVs (narrow the window with --since/--until):"]
    for wire, ids in found:
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        lines.append(f"  {wire.describe()}: {len(ids)} call(s) ({shown})")
    return found[0][0], "\n".join(lines)


@dataclass(frozen=True)
class ReadbackCheck:
    """How a PV's put was validated, as its journal's validation line records it: the readback
    PV, and the wait_for_readback keywords (the readback should read value + offset, within
    tolerance, within count_down s)."""

    readback_pv: str
    tolerance: float
    offset: float
    count_down: float

    def describe(self) -> str:
        offset = f", offset {self.offset:g}" if self.offset else ""
        return f"readback {self.readback_pv} within {self.tolerance:g}{offset} in {self.count_down:g} s"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def readback_check_of(entry: Entry) -> ReadbackCheck | None:
    """The readback check a validation line records (its trace's readback and keywords), or None
    when it records none (no trace, or one written before the tolerance was recorded)."""
    trace = entry.trace
    if trace is None or not isinstance(trace.get("readback"), str) or not trace["readback"]:
        return None
    tolerance, offset, count_down = (_number(trace.get(k)) for k in ("tolerance", "offset", "count_down"))
    if tolerance is None or offset is None or count_down is None or tolerance < 0 or count_down <= 0:
        return None
    return ReadbackCheck(trace["readback"], tolerance, offset, count_down)


def readback_checks(calls: Iterable[CallRecord]) -> dict[str, ReadbackCheck]:
    """{setpoint PV: its ReadbackCheck} from the latest validation line of each PV that names a
    readback with its tolerance (any call: a readback belongs to the machine, not the window)."""
    found: dict[str, tuple[float, ReadbackCheck]] = {}
    for call in calls:
        for pv, rec in call.pvs.items():
            if rec.validation is None:
                continue
            check = readback_check_of(rec.validation)
            if check is not None and (pv not in found or rec.validation.time >= found[pv][0]):
                found[pv] = (rec.validation.time, check)
    return {pv: check for pv, (_, check) in found.items()}


def in_window(calls: Iterable[CallRecord], since: float | None, until: float | None) -> list[CallRecord]:
    """The calls whose first line is within [since, until] (None: unbounded), as read_journal keeps them."""
    low = -math.inf if since is None else since
    high = math.inf if until is None else until
    return [c for c in calls if low <= c.time <= high]

