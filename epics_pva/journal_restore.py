"""What the journal says was done: one record per call and PV, and the plan to put PVs back.

No file access here: these work on the entries journal_read.read_journal gives.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .journal_format import BEFORE, OUTCOME, PUT, READ_ONLY, VALIDATION
from .journal_read import Entry

__all__ = ["CallRecord", "PvRecord", "RestoreStep", "group_calls", "restore_plan"]

_MISSING = object()


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
        return self.last_put is not None


@dataclass
class CallRecord:
    """One set_values call as the journal saw it: when, which process, and each PV."""

    call: str
    time: float
    pid: int
    pvs: dict[str, PvRecord] = field(default_factory=dict)

    @property
    def read_only(self) -> bool:
        return bool(self.pvs) and all(r.read_only for r in self.pvs.values())


def group_calls(entries: Iterable[Entry]) -> list[CallRecord]:
    """Gather entries into one CallRecord per call, ordered by the call's first line time."""
    calls: dict[str, CallRecord] = {}
    for e in entries:
        record = calls.get(e.call)
        if record is None:
            record = calls[e.call] = CallRecord(e.call, e.time, e.pid)
        record.time = min(record.time, e.time)
        if e.pv is None:
            continue
        pv = record.pvs.setdefault(e.pv, PvRecord(e.pv))
        if e.event == BEFORE:
            if e.has_value:
                pv.before = e.value
            else:
                pv.before_error = e.error or "no value recorded"
        elif e.event == PUT:
            pv.requested = e.value
            pv.last_put = e.time
            pv.attempts.append((e.attempt or 0, None, None))
        elif e.event == OUTCOME:
            _set_outcome(pv.attempts, e.attempt or 0, e.outcome, e.reason)
        elif e.event == VALIDATION:
            pv.validation = e
        elif e.event == READ_ONLY:
            pv.requested, pv.read_only = e.value, True
    return sorted(calls.values(), key=lambda c: c.time)


def _set_outcome(attempts: list[tuple[int, str | None, str | None]], attempt: int,
                 outcome: str | None, reason: str | None) -> None:
    for i in range(len(attempts) - 1, -1, -1):
        if attempts[i][0] == attempt and attempts[i][1] is None:
            attempts[i] = (attempt, outcome, reason)
            return
    attempts.append((attempt, outcome, reason))  # an outcome whose put line was lost


@dataclass(frozen=True)
class RestoreStep:
    """One PV to put back: its `value` before the window's first change, and its last put time."""

    pv: str
    value: Any
    last_put: float
    call: str


def restore_plan(calls: Sequence[CallRecord]) -> tuple[list[RestoreStep], dict[str, str]]:
    """The PVs to put back, newest change first, and {pv: why not} for those that cannot be.

    Each PV put in `calls` goes back to its `before` value in the earliest call that put it.
    """
    first: dict[str, tuple[CallRecord, PvRecord]] = {}
    last_put: dict[str, float] = {}
    for call in sorted(calls, key=lambda c: c.time):
        for pv, rec in call.pvs.items():
            if not rec.was_put:
                continue
            first.setdefault(pv, (call, rec))
            last_put[pv] = max(last_put.get(pv, -math.inf), rec.last_put or -math.inf)
    steps: list[RestoreStep] = []
    unrestorable: dict[str, str] = {}
    for pv, (call, rec) in first.items():
        if rec.has_before:
            steps.append(RestoreStep(pv, rec.before, last_put[pv], call.call))
        else:
            why = rec.before_error or "no before value in the journal"
            unrestorable[pv] = f"call {call.call}: {why}"
    steps.sort(key=lambda s: s.last_put, reverse=True)
    return steps, unrestorable
