"""The interface's journal against the soft IOC's audit file: did both sides see the same puts?

Per PV, in order:

- the values the journal says were accepted are the values the audit file accepted, and the
  same for rejected puts;
- every put the audit file received (any outcome) has a journal `put` line with that value
  (a put the journal calls timed out may or may not have reached the server: an outage drops
  it, a held put is audited as timed_out).

`in_flight` forgives that many differences at the end of a PV's sequences: a process killed
between the server's reply and the journal's outcome line (or before the audit's line) leaves
one put known to one side only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epics_pva.journal import decode_value, group_calls, read_journal
from softioc import read_audit_file

__all__ = ["CrossCheck", "cross_check", "journal_puts", "audit_puts"]


@dataclass
class CrossCheck:
    """What differs between the two files; `ok` when nothing beyond the forgiven in-flight puts."""

    journal_lines: int = 0
    audit_lines: int = 0
    accepted: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def detail(self) -> str:
        head = (f"{self.accepted} accepted put(s) in both; journal {self.journal_lines} line(s), "
                f"audit file {self.audit_lines} line(s)")
        if self.ok:
            return head
        return f"{head}; {len(self.mismatches)} mismatch(es): " + "; ".join(self.mismatches[:10])


def journal_puts(path: str | Path) -> dict[str, list[tuple[Any, str | None]]]:
    """{pv: [(value, outcome of that attempt or None if none was written), ...]} in journal order."""
    puts: dict[str, list[tuple[Any, str | None]]] = defaultdict(list)
    for call in group_calls(read_journal(path)):
        for rec in call.pvs.values():
            for _attempt, outcome, _reason in rec.attempts:
                puts[rec.pv].append((rec.requested, outcome))
    return dict(puts)


def audit_puts(lines: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[Any, str]]]:
    """{pv: [(requested value, outcome), ...]} of the put lines of an audit file, in order."""
    puts: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    for line in lines:
        if line.get("type") == "put":
            puts[line["pv"]].append((decode_value(line["value"]), line["outcome"]))
    return dict(puts)


def _compare(pv: str, what: str, mine: list[Any], theirs: list[Any], in_flight: int,
             out: list[str]) -> None:
    shorter = min(len(mine), len(theirs))
    if mine[:shorter] != theirs[:shorter]:
        first = next(i for i in range(shorter) if mine[i] != theirs[i])
        out.append(f"{pv}: {what} put #{first + 1} is {mine[first]!r} in the journal, "
                   f"{theirs[first]!r} in the audit file")
    elif abs(len(mine) - len(theirs)) > in_flight:
        out.append(f"{pv}: {len(mine)} {what} put(s) in the journal, {len(theirs)} in the audit file")


def cross_check(journal: str | Path, audit: str | Path, in_flight: int = 0) -> CrossCheck:
    """Compare a journal with an audit file of the same run (see the module doc)."""
    entries = read_journal(journal)
    lines = read_audit_file(audit)
    result = CrossCheck(journal_lines=len(entries), audit_lines=len(lines))
    mine, theirs = journal_puts(journal), audit_puts(lines)
    for pv in sorted(set(mine) | set(theirs)):
        sent, received = mine.get(pv, []), theirs.get(pv, [])
        for outcome in ("accepted", "rejected"):
            a = [v for v, o in sent if o == outcome]
            b = [v for v, o in received if o == outcome]
            _compare(pv, outcome, a, b, in_flight, result.mismatches)
            if outcome == "accepted":
                result.accepted += min(len(a), len(b))
        missing = Counter(repr(v) for v, _ in received) - Counter(repr(v) for v, _ in sent)
        if sum(missing.values()) > 0:
            result.mismatches.append(f"{pv}: audit file received value(s) {sorted(missing)} with "
                                     "no put line in the journal")
    return result
