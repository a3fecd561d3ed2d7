"""Matching what the Interface reported against what the soft IOC's audit saw (no network here).

For each PV of a cycle, the Interface's outcome implies the exact puts the IOC must have
logged: a PV set on its second attempt means one timed-out put then one accepted put; a
rejected put means one rejected put (and nothing after it). The audit's records of that PV in
that cycle must be exactly those. A faulted put the Interface did not report is *lost*; a
failure the Interface reported that the IOC did not inject is *invented* (a false timeout).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from epics_pva import PutError, PutTimeoutError, SetResult, ValidationError

__all__ = ["CycleMatch", "PvMatch", "expected_puts", "match_cycle", "observed_puts"]

TIMED_OUT, ACCEPTED, REJECTED = "timed_out", "accepted", "rejected"
REFUSED_BY_IOC = "refused_by_ioc"  # rejected by the IOC's own checks, not by an injected fault
UNKNOWN = "unknown"  # a failure whose effect on the IOC the Interface cannot know (disconnect...)
REJECTION = "put rejected by the server"


def expected_puts(result: SetResult) -> list[str]:
    """The audit outcomes, oldest first, that one PV's reported outcome implies."""
    retries = [TIMED_OUT] * max(result.attempts - 1, 0)
    if result.status in ("not_attempted", "read_only"):
        return []
    if result.status == "set" or isinstance(result.error, ValidationError):
        return [*retries, ACCEPTED]  # a validation failure follows an accepted put
    if isinstance(result.error, PutTimeoutError):
        return [TIMED_OUT] * result.attempts
    if isinstance(result.error, PutError) and result.error.reason.startswith(REJECTION):
        return [*retries, REJECTED]
    return [*retries, UNKNOWN]


def observed_puts(records: Iterable[Any], pv: str) -> list[str]:
    """The outcomes of the audit's put records for `pv`, telling injected rejections apart."""
    outcomes = []
    for record in records:
        if record.pv != pv:
            continue
        if record.outcome == REJECTED and record.fault is None:
            outcomes.append(REFUSED_BY_IOC)
        else:
            outcomes.append(record.outcome)
    return outcomes


@dataclass
class PvMatch:
    """One PV in one cycle: what the Interface implied, what the IOC logged, and the tally."""

    pv: str
    expected: list[str]
    observed: list[str]
    injected: Counter = field(default_factory=Counter)  # faulted puts the IOC logged, by outcome
    reported: Counter = field(default_factory=Counter)  # failed attempts the Interface reported

    @property
    def ok(self) -> bool:
        return self.expected == self.observed

    @property
    def surfaced(self) -> int:
        """Injected faults the Interface reported as such."""
        return sum(min(self.injected[k], self.reported[k]) for k in (TIMED_OUT, REJECTED))

    @property
    def lost(self) -> int:
        return sum(self.injected.values()) - self.surfaced

    @property
    def invented(self) -> int:
        return sum(self.reported.values()) - self.surfaced

    @property
    def false_timeouts(self) -> int:
        """Attempts reported as timed out with no injected timeout behind them."""
        return max(self.reported[TIMED_OUT] - self.injected[TIMED_OUT], 0)


@dataclass
class CycleMatch:
    """Every PV of one cycle, plus puts the IOC logged for PVs the cycle did not report on."""

    pvs: dict[str, PvMatch]
    strays: list[str]  # PVs with audit records but no reported outcome in this cycle

    @property
    def ok(self) -> bool:
        return not self.strays and all(m.ok for m in self.pvs.values())

    def total(self, name: str) -> int:
        return sum(getattr(m, name) for m in self.pvs.values())

    def mismatches(self) -> list[dict[str, Any]]:
        rows = [{"pv": m.pv, "expected": m.expected, "observed": m.observed}
                for m in self.pvs.values() if not m.ok]
        rows += [{"pv": pv, "expected": [], "observed": ["stray put"]} for pv in self.strays]
        return rows


def match_cycle(results: Mapping[str, SetResult] | None, records: Sequence[Any],
                offline: Iterable[str] = ()) -> CycleMatch:
    """Match a cycle's per-PV outcomes (None: the call was refused, nothing sent) with its audit slice.

    `offline`: PVs under an outage the soak armed. A put to one that timed out and that the
    audit never saw went to a channel the IOC had already dropped: the client had not yet
    heard of the disconnect (on a loaded machine it hears late), so the put never arrived.
    It is the outage's effect, not a false timeout; anything else about such a PV still counts.
    """
    matches: dict[str, PvMatch] = {}
    offline = set(offline)
    for pv, result in (results or {}).items():
        expected = expected_puts(result)
        observed = observed_puts(records, pv)
        if pv in offline and not observed and expected and set(expected) == {TIMED_OUT}:
            expected = []
        injected = Counter(r.outcome for r in records if r.pv == pv and r.fault is not None)
        reported = Counter(o for o in expected if o in (TIMED_OUT, REJECTED))
        matches[pv] = PvMatch(pv, expected, observed, injected, reported)
    strays = sorted({r.pv for r in records} - set(matches))
    return CycleMatch(matches, strays)
