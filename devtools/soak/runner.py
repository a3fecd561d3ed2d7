"""The soak loop: validated set_values/get_values against a soft IOC with seeded random faults.

Each cycle sets every PV to a new random value (validated with wait_for_readback), reads them
back, then drains the IOC's audit and matches it against the Interface's per-PV outcomes
(see ledger). Outages are armed between cycles; every failure must be explained by an
injected put fault or by a PV being down or coming back. Resource probes are taken after a
warm-up (p4p and the thread pool start their threads lazily) and at the end.
"""

from __future__ import annotations

import logging
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any

from epics_pva import (
    Interface,
    InvalidInputError,
    ReadError,
    SetValuesError,
    ValidationError,
    wait_for_readback,
)

from . import probes
from .crosscheck import cross_check
from .ledger import match_cycle
from .machine import SoakIOC, machine_config

__all__ = ["SoakSettings", "run_soak", "verdict"]

_log = logging.getLogger(__name__)
SERVER = "*"
CONNECT_LIMIT = 30.0  # s the PVs may take to answer a first read, before the cycles begin
MAX_LISTED = 50  # mismatches and unexplained failures kept in the report
BLOCK = 1000  # cycles per block of the per-block figures


@dataclass(frozen=True)
class SoakSettings:
    """What to soak and how hard; durations in seconds, probabilities per put (per cycle for outages)."""

    cycles: int | None = 1000
    duration: float | None = None
    seed: int = 1
    pvs: int = 3
    parallel: bool = True
    timeout: float = 0.1
    put_attempts: int = 2
    retry_delay: float = 0.0
    tolerance: float = 0.01
    count_down: float = 2.0
    update_rate: float = 100.0
    p_timeout: float = 0.05
    p_reject: float = 0.02
    p_outage: float = 0.002
    outage_every: int | None = None  # instead of p_outage: one every N cycles, PV and server in turn
    outage_duration: float = 0.5
    server_outage_share: float = 0.25
    warmup: int = 100
    recovery_limit: float = 60.0
    max_rss_growth_mb: float = 20.0
    progress_every: int = 0
    journal: str | None = None  # the Interface's journal file, cross-checked with `audit`
    audit: str | None = None  # the soft IOC's audit file
    processes: int = 1  # soft IOC processes serving the PVs (a machine of shards when > 1)

    def __post_init__(self) -> None:
        problems = []
        if self.cycles is None and self.duration is None:
            problems.append("give a number of cycles, a duration, or both")
        if self.cycles is not None and self.cycles < 1:
            problems.append(f"cycles must be >= 1, not {self.cycles}")
        if self.duration is not None and not self.duration > 0:
            problems.append(f"duration must be > 0 s, not {self.duration}")
        if self.pvs < 1:
            problems.append(f"pvs must be >= 1, not {self.pvs}")
        for name in ("timeout", "count_down", "update_rate", "outage_duration"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, not {getattr(self, name)}")
        for name in ("p_timeout", "p_reject", "p_outage", "server_outage_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be within [0, 1], not {getattr(self, name)}")
        if self.outage_duration < 2 * self.timeout:  # else a read can wait an outage out, unseen
            problems.append(f"outage_duration ({self.outage_duration:g} s) must be at least twice "
                            f"the timeout ({self.timeout:g} s)")
        if self.outage_every is not None and self.outage_every < 1:
            problems.append(f"outage_every must be >= 1, not {self.outage_every}")
        if not 1 <= self.processes <= 64:
            problems.append(f"processes must be within [1, 64], not {self.processes}")
        if self.warmup < 0 or self.retry_delay < 0 or self.put_attempts < 1:
            problems.append("warmup and retry_delay must be >= 0, put_attempts >= 1")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class _Outage:
    """An outage armed by the soak, followed until every PV it took is set and read again."""

    pv: str
    pvs: frozenset[str]
    duration: float
    armed_cycle: int
    armed_wall: float
    ended_wall: float | None = None  # when the IOC logged it expired
    cycles_affected: int = 0
    surfaced: bool = False
    recovered_wall: float | None = None
    pending: set[str] | None = None

    def report(self) -> dict[str, Any]:
        recovery = None
        if self.recovered_wall is not None and self.ended_wall is not None:
            recovery = round(max(self.recovered_wall - self.ended_wall, 0.0), 3)
        return {"pv": self.pv, "duration_s": self.duration, "armed_cycle": self.armed_cycle,
                "cycles_affected": self.cycles_affected, "surfaced": self.surfaced,
                "recovery_s": recovery}


class _LostUpdates(logging.Handler):
    """Counts p4p's 'Lost Subscription update' errors (a monitor that may have stalled)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Lost Subscription update" in record.getMessage():
            self.count += 1


def _quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"median": round(statistics.median(ordered), 4), "p99": round(p99, 4),
            "max": round(ordered[-1], 4), "count": len(ordered)}


class _Soak:
    def __init__(self, settings: SoakSettings) -> None:
        self.s = settings
        self.rng = random.Random(settings.seed)
        self.setpoints = [f"SOAK:{n}:SET" for n in range(settings.pvs)]
        self.readbacks = {pv: pv.replace(":SET", ":RBV") for pv in self.setpoints}
        self.configs = {
            pv: partial(wait_for_readback, readback_pv=self.readbacks[pv], tolerance=settings.tolerance,
                        count_down=settings.count_down, offset=0.0)
            for pv in self.setpoints
        }
        self.cycles = 0
        self.calls: Counter = Counter()  # ok / failed / refused / error
        self.pv_outcomes: Counter = Counter()  # set / failed / not_attempted / refused
        self.errors: Counter = Counter()  # per-PV error class names
        self.reads: Counter = Counter()
        self.audit: Counter = Counter()  # put outcomes the IOC logged
        self.fired: Counter = Counter()  # fault events 'fired' by kind (server outage apart)
        self.tally: Counter = Counter()  # injected / surfaced / lost / invented / false_timeouts
        self.mismatches: list[dict[str, Any]] = []
        self.mismatched_cycles = 0
        self.false_timeouts_by_block: Counter = Counter()  # per BLOCK cycles: are they clustered?
        self.unexplained: list[dict[str, Any]] = []
        self.unexplained_count = 0
        self.unexpected: list[str] = []
        self.outages: list[_Outage] = []
        self.active: list[_Outage] = []
        self.latency: list[float] = []
        self.rss_samples: list[tuple[int, int]] = []
        self.max_workers = 0
        self.load_samples: list[tuple[int, float]] = []  # (cycle, 1-minute load average)

    # -- faults -----------------------------------------------------------------------------
    def arm_put_faults(self, ioc: SoakIOC) -> None:
        for pv in self.setpoints:  # the timeout is drawn first, then the rejection
            if self.s.p_timeout > 0:
                ioc.arm(pv, "put_timeout", count=None, probability=self.s.p_timeout)
            if self.s.p_reject > 0:
                ioc.arm(pv, "put_reject", count=None, probability=self.s.p_reject)

    def maybe_outage(self, ioc: SoakIOC) -> None:
        if self.s.outage_every is not None:
            since = self.cycles - self.s.warmup
            if since <= 0 or since % self.s.outage_every or self.active:
                return
            server = (since // self.s.outage_every) % 2 == 0  # a PV outage first, then the server
        elif self.active or self.rng.random() >= self.s.p_outage:
            return
        else:
            server = self.rng.random() < self.s.server_outage_share
        pv = SERVER if server else self.rng.choice(self.setpoints)
        pvs = frozenset(self.setpoints) if server else frozenset({pv})
        ioc.arm(pv, "outage", duration=self.s.outage_duration)
        outage = _Outage(pv, pvs, self.s.outage_duration, self.cycles, time.time(), pending=set(pvs))
        self.outages.append(outage)
        self.active.append(outage)

    def disrupted(self) -> set[str]:
        return {pv for o in self.active for pv in o.pvs}

    def connect(self, itf: Interface) -> float:
        """Read every PV until all answer, at most CONNECT_LIMIT s; the seconds it took.

        The cycles measure the steady state: a first search on a loaded machine can outlast
        the short timeout a soak uses, and would be taken for a failure of the first cycles.
        """
        names = [*self.setpoints, *self.readbacks.values()]
        begin = time.monotonic()
        while True:
            try:
                itf.get_values(names)
                return time.monotonic() - begin
            except ReadError as exc:
                if time.monotonic() - begin >= CONNECT_LIMIT:
                    raise TimeoutError(f"the soft IOC's PVs did not all answer within {CONNECT_LIMIT:g} s: "
                                       f"{exc}") from None
                time.sleep(0.1)  # a refusal can come at once (a PV known to be down): no spin

    # -- one cycle --------------------------------------------------------------------------
    def cycle(self, itf: Interface, ioc: SoakIOC) -> None:
        inputs = {pv: round(self.rng.uniform(-5.0, 5.0), 3) for pv in self.setpoints}
        disrupted = self.disrupted()
        results = None
        failures: dict[str, str] = {}  # PV -> why, for every PV that did not make it this cycle
        start = time.monotonic()
        try:
            results = itf.set_values(inputs, configs=self.configs)
            self.calls["ok"] += 1
            self.latency.append(time.monotonic() - start)
        except SetValuesError as exc:
            results = exc.results
            self.calls["failed"] += 1
            # refused before any put (a PV unreachable): each refused PV needs an explanation,
            # the others of the call were held back for it
            failures.update({pv: f"not attempted: {why}" for pv, why in getattr(exc, "problems", {}).items()})
        except InvalidInputError as exc:
            self.calls["refused"] += 1
            self.pv_outcomes["refused"] += len(inputs)
            failures.update({pv: f"refused: {why}" for pv, why in exc.problems.items()})
        except Exception as exc:  # noqa: BLE001 - anything else is a finding of the soak
            self.calls["error"] += 1
            self._unexpected(f"cycle {self.cycles}: set_values raised {type(exc).__name__}: {exc}")
        for result in (results or {}).values():
            self.pv_outcomes[result.status] += 1
            if result.error is not None:
                self.errors[type(result.error).__name__] += 1
        try:
            itf.get_values([*self.setpoints, *self.readbacks.values()])
            self.reads["ok"] += 1
        except ReadError as exc:
            self.reads["failed"] += 1
            for name, why in exc.failures.items():
                failures.setdefault(name.replace(":RBV", ":SET"), f"read: {why}")
        except Exception as exc:  # noqa: BLE001
            self.reads["error"] += 1
            self._unexpected(f"cycle {self.cycles}: get_values raised {type(exc).__name__}: {exc}")
        ended = time.time()

        records, events = ioc.drain()
        self.audit.update(r.outcome for r in records)
        for event in events:
            if event.event == "fired":
                self.fired["server_outage" if event.pv == SERVER else event.kind] += 1
            elif event.event == "expired" and event.kind == "outage":
                for outage in self.active:
                    if outage.pv == event.pv and outage.ended_wall is None:
                        outage.ended_wall = event.wall_time

        match = match_cycle(results, records, offline=disrupted)
        for name in ("surfaced", "lost", "invented", "false_timeouts"):
            self.tally[name] += match.total(name)
        self.tally["injected"] += sum(1 for r in records if r.fault is not None)
        if match.total("false_timeouts"):
            self.false_timeouts_by_block[self.cycles // BLOCK] += match.total("false_timeouts")
        if not match.ok:
            self.mismatched_cycles += 1
            if len(self.mismatches) < MAX_LISTED:
                self.mismatches.append({"cycle": self.cycles, "pvs": match.mismatches()})

        # a put fault the audit confirms explains its PV's failure; anything else needs an outage
        for pv, result in (results or {}).items():
            if result.status != "failed":
                continue
            pv_match = match.pvs[pv]
            injected_failure = pv_match.ok and pv_match.surfaced and not isinstance(result.error, ValidationError)
            if not injected_failure:
                failures[pv] = str(result.error)
        for outage in self.active:
            hit = outage.pvs & set(failures)
            if hit:
                outage.cycles_affected += 1
                outage.surfaced = True
        for pv, why in failures.items():
            if pv not in disrupted and pv not in self.disrupted():
                self.unexplained_count += 1
                if len(self.unexplained) < MAX_LISTED:
                    self.unexplained.append({"cycle": self.cycles, "pv": pv, "why": why})
        # an outage is over once it expired and each of its PVs was set and read in one cycle
        healthy = {pv for pv, r in (results or {}).items() if r.status == "set"} - set(failures)
        for outage in list(self.active):
            if outage.ended_wall is None:
                continue
            outage.pending -= healthy
            if not outage.pending:
                outage.recovered_wall = ended
                self.active.remove(outage)
        self.cycles += 1

    def _unexpected(self, text: str) -> None:
        _log.error("%s", text)
        if len(self.unexpected) < MAX_LISTED:
            self.unexpected.append(text)

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        s = self.s
        lost_updates = _LostUpdates()
        logging.getLogger("p4p").addHandler(lost_updates)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        config = machine_config(s.pvs, s.seed, s.update_rate, s.processes)
        with SoakIOC(config, audit=s.audit) as ioc:
            ioc_start = ioc.stats()
            self.arm_put_faults(ioc)
            itf = Interface(conf=ioc.client_conf, timeout=s.timeout, put_attempts=s.put_attempts,
                            retry_delay=s.retry_delay, parallel=s.parallel, journal=s.journal)
            self.max_workers = itf.max_workers
            connect_s = self.connect(itf)
            baseline: dict[str, Any] | None = None
            self.load_samples.append((0, os.getloadavg()[0]))
            begin = time.monotonic()
            deadline = None if s.duration is None else begin + s.duration
            try:
                while (s.cycles is None or self.cycles < s.cycles) and (deadline is None or time.monotonic() < deadline):
                    if self.cycles == s.warmup:
                        baseline = probes.snapshot()
                        self.rss_samples.append((self.cycles, baseline["rss_kb"]))
                    if self.cycles >= s.warmup:
                        self.maybe_outage(ioc)
                    self.cycle(itf, ioc)
                    if s.progress_every and self.cycles % s.progress_every == 0:
                        self.rss_samples.append((self.cycles, probes.status_field("VmRSS")))
                        self.load_samples.append((self.cycles, os.getloadavg()[0]))
                        _log.warning("cycle %d: %.0f s, %s", self.cycles, time.monotonic() - begin,
                                     dict(self.calls))
                main_cycles = self.cycles
                limit = time.monotonic() + s.recovery_limit
                while self.active and time.monotonic() < limit:  # let the last outage end and heal
                    self.cycle(itf, ioc)
                if baseline is None:  # shorter than the warm-up: compare with the first probe
                    baseline = probes.snapshot()
                elapsed = time.monotonic() - begin
                end = probes.snapshot()
                self.rss_samples.append((self.cycles, end["rss_kb"]))
                self.load_samples.append((self.cycles, os.getloadavg()[0]))
            finally:
                itf.close()
            for thread in probes.python_threads():  # the pool's threads end once idle
                if thread.name.startswith(probes.POOL_PREFIX):
                    thread.join(10)
            closed = probes.snapshot()
            ioc_end = ioc.stats()
        logging.getLogger("p4p").removeHandler(lost_updates)
        if s.journal is not None and s.audit is not None:  # the IOC has stopped: its file is whole
            self.crosscheck = cross_check(s.journal, s.audit)
        return self.report(started, elapsed, main_cycles, baseline, end, closed, ioc_start,
                           ioc_end, lost_updates.count, connect_s)

    def report(self, started, elapsed, main_cycles, baseline, end, closed, ioc_start, ioc_end,
               lost_updates, connect_s) -> dict[str, Any]:
        pv_recovery = [o.report()["recovery_s"] for o in self.outages if o.pv != SERVER]
        server_recovery = [o.report()["recovery_s"] for o in self.outages if o.pv == SERVER]
        injected = {"put_timeout": self.fired["put_timeout"], "put_reject": self.fired["put_reject"],
                    "pv_outage": self.fired["outage"], "server_outage": self.fired["server_outage"]}
        report: dict[str, Any] = {
            "started": started,
            "settings": asdict(self.s),
            "cycles": self.cycles,
            "cycles_after_main_loop": self.cycles - main_cycles,
            "connect_s": round(connect_s, 3),
            "duration_s": round(elapsed, 2),
            "cycles_per_s": round(self.cycles / elapsed, 2) if elapsed else None,
            "outcomes": {
                "calls": dict(self.calls), "pvs": dict(self.pv_outcomes), "errors": dict(self.errors),
                "reads": dict(self.reads),
            },
            "audit": dict(self.audit),
            "faults": {
                "injected": injected,
                "puts_faulted": self.tally["injected"],
                "surfaced": self.tally["surfaced"],
                "lost": self.tally["lost"],
                "invented": self.tally["invented"],
                "false_timeouts": self.tally["false_timeouts"],
                "outages_surfaced": sum(o.surfaced for o in self.outages),
            },
            "recovery_s": {"pv_outage": _quantiles([r for r in pv_recovery if r is not None]),
                           "server_outage": _quantiles([r for r in server_recovery if r is not None])},
            "outages": [o.report() for o in self.outages],
            "set_values_latency_s": _quantiles(self.latency),
            "resources": {"after_warmup": baseline, "end": end, "after_close": closed,
                          "max_workers": self.max_workers,
                          "rss_kb_samples": self.rss_samples},
            "ioc": {"start": ioc_start, "end": ioc_end},
            "p4p_lost_subscription_updates": lost_updates,
            "load_average_1min": self.load_samples,
            "false_timeouts_by_block": {f"{b * BLOCK}-{(b + 1) * BLOCK - 1}": n
                                        for b, n in sorted(self.false_timeouts_by_block.items())},
            "mismatched_cycles": self.mismatched_cycles,
            "mismatches": self.mismatches,
            "unexplained_failures": self.unexplained_count,
            "unexplained": self.unexplained,
            "unexpected_errors": self.unexpected,
        }
        check = getattr(self, "crosscheck", None)
        if check is not None:
            report["journal_vs_audit"] = {"ok": check.ok, "detail": check.detail(),
                                          "journal": self.s.journal, "audit": self.s.audit}
        report["checks"] = verdict(report)
        report["passed"] = all(check["ok"] for check in report["checks"].values())
        return report



def _own(snap: dict[str, Any]) -> int:
    """Python threads of a probe snapshot other than the validation and releaser threads."""
    return int(snap["py_threads"] - snap["pool_threads"] - snap["release_threads"])

def verdict(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each check of a soak report: {"ok": bool, "detail": str}."""
    faults, res = report["faults"], report["resources"]
    base, end, closed = res["after_warmup"], res["end"], res["after_close"]
    put_faults = faults["injected"]["put_timeout"] + faults["injected"]["put_reject"]
    growth_mb = (end["rss_kb"] - base["rss_kb"]) / 1024
    limit_mb = report["settings"]["max_rss_growth_mb"]
    outages = report["outages"]
    checks = {
        "audit_matches_outcomes": (
            report["mismatched_cycles"] == 0,
            f"{report['mismatched_cycles']} cycle(s) whose audit differs from the reported outcomes"),
        "no_fault_lost": (
            faults["lost"] == 0 and faults["surfaced"] == faults["puts_faulted"] == put_faults,
            f"{put_faults} put fault(s) fired, {faults['puts_faulted']} faulted put(s) audited, "
            f"{faults['surfaced']} surfaced, {faults['lost']} lost"),
        "no_fault_invented": (
            faults["invented"] == 0 and faults["false_timeouts"] == 0,
            f"{faults['invented']} reported failure(s) with no injected fault "
            f"({faults['false_timeouts']} false timeout(s))"),
        "every_failure_explained": (
            report["unexplained_failures"] == 0 and not report["unexpected_errors"],
            f"{report['unexplained_failures']} failure(s) not explained by a fault or an outage, "
            f"{len(report['unexpected_errors'])} unexpected error(s)"),
        "every_outage_surfaced_and_recovered": (
            all(o["surfaced"] and o["recovery_s"] is not None for o in outages)
            and len(outages) == faults["injected"]["pv_outage"] + faults["injected"]["server_outage"],
            f"{sum(o['surfaced'] for o in outages)} of {len(outages)} outage(s) surfaced, "
            f"{sum(o['recovery_s'] is not None for o in outages)} recovered"),
        "no_thread_leak": (
            # the validation threads may grow under load, up to max_workers, and the releaser
            # threads come and go (at most RELEASERS, each ending once idle: one that has
            # left Python may still be ending in the OS); anything else must hold steady, and
            # go with close()
            _own(end) <= _own(base)
            and end["pool_threads"] <= res["max_workers"] and end["release_threads"] <= probes.RELEASERS
            and end["os_threads"] - base["os_threads"]
            <= max(end["pool_threads"] - base["pool_threads"], 0) + probes.RELEASERS
            and closed["pool_threads"] == 0
            and closed["os_threads"] <= base["os_threads"] + probes.RELEASERS,
            f"Python threads {base['py_threads']} -> {end['py_threads']} (pool {base['pool_threads']} -> "
            f"{end['pool_threads']}, at most {res['max_workers']}; after close {closed['py_threads']}), "
            f"OS threads {base['os_threads']} -> {end['os_threads']} (after close {closed['os_threads']})"),
        "no_subscription_leak": (
            end["subscriptions"] <= base["subscriptions"] and closed["subscriptions"] == 0
            and end["operations"] <= base["operations"],
            f"live subscriptions {base['subscriptions']} -> {end['subscriptions']} "
            f"(after close {closed['subscriptions']}), operations {base['operations']} -> {end['operations']}"),
        "no_descriptor_leak": (
            end["fds"] <= base["fds"],
            f"open descriptors {base['fds']} -> {end['fds']}"),
        "rss_bounded": (
            growth_mb <= limit_mb,
            f"RSS {base['rss_kb'] / 1024:.1f} -> {end['rss_kb'] / 1024:.1f} MB "
            f"({growth_mb:+.1f} MB, limit {limit_mb:g} MB)"),
    }
    if "journal_vs_audit" in report:
        both = report["journal_vs_audit"]
        checks["journal_matches_audit"] = (both["ok"], both["detail"])
    return {name: {"ok": bool(ok), "detail": detail} for name, (ok, detail) in checks.items()}


def run_soak(settings: SoakSettings) -> dict[str, Any]:
    """Run a soak and return its report (a JSON-able dict; `report["passed"]` is the verdict)."""
    return _Soak(settings).run()
