"""Section 3: set_values with readback validation, serial and parallel, against the ideal.

Every call flips its setpoints between 0 and STEP, so each readback ramps for its designed
settle time. The ideal is the slowest PV alone with raw p4p: from just before its put to the
IOC's post of its first readback inside tolerance (no client overhead at all).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from p4p.client.thread import Context

from epics_pva import Interface, wait_for_readback

from .machine import STEP, settle_names
from .naive import naive_set
from .observer import Observer
from .timing import interleaved, median, ms, ratio

_log = logging.getLogger(__name__)

TOLERANCE = 0.01
"""Readback tolerance: 1 % of the step."""
COUNT_DOWN = 5.0
"""Seconds wait_for_readback waits before declaring a set failed."""
TIMEOUT = 5.0
"""Seconds allowed for any one network operation."""
TRACED_PVS = 6
"""How many readback traces of a traced set are kept for the picture."""
NAIVE_UP_TO = 10
"""The naive reference is measured for validated sets of this many PVs at most."""


def subset(pairs: Sequence[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """`n` pairs spread evenly over `pairs`, always including the last (slowest) one."""
    count = len(pairs)
    return [pairs[round((i + 1) * count / n) - 1] for i in range(n)]


class Bench:
    """The settle machine's pairs, their current setpoints, and the clients that set them."""

    def __init__(self, conf: Mapping[str, str], times: Sequence[float], observer: Observer,
                 wide_workers: int) -> None:
        self.pairs = settle_names(len(times))
        self.times = dict(zip((sp for sp, _ in self.pairs), times, strict=True))
        self.readback = dict(self.pairs)
        self.state = {sp: 0.0 for sp, _ in self.pairs}
        self.observer = observer
        self.conf = dict(conf)
        self.ctx = Context("pva", conf=dict(conf), useenv=False)
        self.serial = Interface(conf=conf, timeout=TIMEOUT, parallel=False)
        self.parallel = Interface(conf=conf, timeout=TIMEOUT)  # the defaults, as Badger builds it
        self.wide = Interface(conf=conf, timeout=TIMEOUT, max_workers=wide_workers)

    def close(self) -> None:
        """Close every client."""
        for client in (self.serial, self.parallel, self.wide, self.ctx):
            client.close()

    def flip(self, setpoints: Sequence[str]) -> dict[str, float]:
        """New targets: every setpoint moves by STEP (0 -> STEP or STEP -> 0)."""
        return {sp: STEP - self.state[sp] for sp in setpoints}

    def configs(self, setpoints: Sequence[str]) -> dict[str, Callable[..., Any]]:
        """wait_for_readback for each setpoint, as a Badger routine would configure it."""
        return {sp: partial(wait_for_readback, readback_pv=self.readback[sp], tolerance=TOLERANCE,
                            count_down=COUNT_DOWN, offset=0.0) for sp in setpoints}

    def validated_set(self, client: Interface, setpoints: Sequence[str],
                      configs: Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
        """One validated set_values of `setpoints` moving each by STEP; returns the results."""
        targets = self.flip(setpoints)
        results = client.set_values(targets, configs)
        self.state.update(targets)
        return results

    def case(self, client: Interface, setpoints: Sequence[str],
             configs: Mapping[str, Callable[..., Any]]) -> Callable[[int], Any]:
        """A benchmark case (called with the round number): one validated set of `setpoints`."""
        return lambda _round: self.validated_set(client, setpoints, configs)

    def raw_validated(self, setpoints: Sequence[str]) -> None:
        """What a raw p4p script would do: monitor the readbacks, put all, wait until all are in tolerance."""
        targets = self.flip(setpoints)
        goal = {self.readback[sp]: value for sp, value in targets.items()}
        arrived: set[str] = set()
        reached: set[str] = set()
        cond = threading.Condition()

        def on_update(name: str, value: Any) -> None:
            with cond:
                arrived.add(name)
                if not isinstance(value, Exception) and abs(float(value) - goal[name]) <= TOLERANCE:
                    reached.add(name)
                cond.notify_all()

        subs = [self.ctx.monitor(rb, partial(on_update, rb)) for rb in goal]
        try:
            with cond:  # the first update is the value before the put
                if not cond.wait_for(lambda: len(arrived) == len(goal), TIMEOUT):
                    raise TimeoutError("raw p4p: readback monitors sent no first value")
                reached.clear()
            self.ctx.put(list(targets), list(targets.values()), timeout=TIMEOUT)
            with cond:
                if not cond.wait_for(lambda: len(reached) == len(goal), COUNT_DOWN):
                    raise TimeoutError(f"raw p4p: {len(goal) - len(reached)} readbacks not in tolerance")
        finally:
            for sub in subs:
                sub.close()
        self.state.update(targets)

    def naive_validated(self, setpoints: Sequence[str]) -> None:
        """The naive reference: a context per call, puts in turn, each readback polled every 0.1 s."""
        targets = self.flip(setpoints)
        naive_set(self.conf, targets, TIMEOUT, self.readback, TOLERANCE, COUNT_DOWN)
        self.state.update(targets)

    def raw_settle(self, setpoint: str) -> float:
        """Put one setpoint with raw p4p; seconds from before the put to the in-tolerance post."""
        readback = self.readback[setpoint]
        target = self.flip([setpoint])[setpoint]
        mark = self.observer.mark(readback)
        start = time.time()
        self.ctx.put(setpoint, target, timeout=TIMEOUT)
        stamp = self.observer.reached(readback, target, TOLERANCE, mark, COUNT_DOWN)
        self.state[setpoint] = target
        return stamp - start


def measure_validated(bench: Bench, sizes: Sequence[int], repeats: int, warmup: int,
                      between: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Serial, parallel (16 workers) and wide parallel validated sets of N PVs vs the ideal."""
    slowest = bench.pairs[-1][0]
    bench.observer.watch([bench.readback[slowest]])
    ideals: list[float] = []

    def ideal(round_: int) -> None:
        settle = bench.raw_settle(slowest)
        if round_ >= 0:
            ideals.append(settle)

    cases: dict[str, Callable[[int], Any]] = {"ideal": ideal}
    for n in sizes:
        setpoints = [sp for sp, _ in subset(bench.pairs, n)]
        configs = bench.configs(setpoints)
        clients = {"serial": bench.serial, "parallel": bench.parallel}
        if n > bench.parallel.max_workers:
            clients["wide"] = bench.wide
        for mode, client in clients.items():
            cases[f"{mode}_{n}"] = bench.case(client, setpoints, configs)
        cases[f"raw_{n}"] = lambda _round, setpoints=setpoints: bench.raw_validated(setpoints)
        if n <= NAIVE_UP_TO:  # beyond, one naive round takes many seconds
            cases[f"naive_{n}"] = lambda _round, setpoints=setpoints: bench.naive_validated(setpoints)
    samples = interleaved(cases, repeats, warmup, between)
    ideal_s = median(ideals)
    rows = []
    for n in sizes:
        raw = median(samples[f"raw_{n}"])
        row: dict[str, Any] = {"n": n, "repeats": repeats, "raw_ms": ms(raw)}
        if f"naive_{n}" in samples:
            row["naive_ms"] = ms(median(samples[f"naive_{n}"]))
        for mode in ("serial", "parallel", "wide"):
            if f"{mode}_{n}" not in samples:
                continue
            wall = median(samples[f"{mode}_{n}"])
            row[f"{mode}_ms"] = ms(wall)
            row[f"{mode}_over_ideal"] = ratio(wall, ideal_s)
            row[f"{mode}_minus_ideal_ms"] = ms(wall - ideal_s)
            row[f"{mode}_minus_raw_ms"] = ms(wall - raw)  # raw p4p doing the same with monitors
        rows.append(row)
        _log.info("validated set of %d PVs: %s", n, row)
    return {
        "ideal_ms": ms(ideal_s),
        "ideal_samples_ms": [ms(s) for s in ideals],
        "raw_put_and_monitor_ms": ms(median(samples["ideal"])),
        "slowest_designed_ms": ms(bench.times[slowest]),
        "parallel_workers": bench.parallel.max_workers,
        "wide_workers": bench.wide.max_workers,
        "tolerance": TOLERANCE,
        "step": STEP,
        "rows": rows,
    }


def traced_set(bench: Bench, client: Interface, n: int, label: str) -> dict[str, Any]:
    """One validated set with every PV's put and wait timed, its readbacks recorded.

    Per PV (seconds from the call): `start` its task began, `put_done` its put completed (its
    wait began), `validated` wait_for_readback returned, `posted` the IOC posted the first
    readback inside tolerance; `latency_ms` is returned minus posted (wall clock).
    """
    pairs = subset(bench.pairs, n)
    setpoints = [sp for sp, _ in pairs]
    readbacks = [rb for _, rb in pairs]
    new = bench.observer.watch(readbacks)
    marks = {rb: bench.observer.mark(rb) for rb in readbacks}
    before = {rb: bench.observer.value(rb) for rb in readbacks}
    times: dict[str, tuple[float, float, float]] = {}

    def timed(sp: str) -> Callable[..., Any]:
        def validate(**kwargs: Any) -> Any:
            began = time.monotonic()
            value = wait_for_readback(readback_pv=bench.readback[sp], tolerance=TOLERANCE,
                                      count_down=COUNT_DOWN, offset=0.0, **kwargs)
            times[sp] = (began, time.monotonic(), time.time())
            return value
        return validate

    targets = bench.flip(setpoints)
    t0, wall0 = time.monotonic(), time.time()
    results = client.set_values(targets, {sp: timed(sp) for sp in setpoints})
    total = time.monotonic() - t0
    bench.state.update(targets)
    bars, latencies = [], []
    for sp, rb in pairs:
        began, returned, returned_wall = times[sp]
        posted = bench.observer.reached(rb, targets[sp], TOLERANCE, marks[rb], TIMEOUT)
        latencies.append(returned_wall - posted)
        bars.append({
            "pv": sp, "designed_settle_s": bench.times[sp],
            # elapsed ends when the Interface made the result, a little after `returned` (the
            # validation's own end), so this lower bound can fall before t0: the put cannot
            "start": round(max(returned - results[sp].elapsed - t0, 0.0), 6),
            "put_done": round(began - t0, 6), "validated": round(returned - t0, 6),
            "posted": round(posted - wall0, 6), "latency_ms": ms(returned_wall - posted),
        })
    keep = subset(pairs, min(TRACED_PVS, n))
    traces = {
        rb: {"designed_settle_s": bench.times[sp],
             "points": [[0.0, before[rb]]] + [[round(stamp - wall0, 6), value]
                                              for stamp, value in bench.observer.updates(rb, marks[rb])]}
        for sp, rb in keep
    }
    bench.observer.unwatch(new)  # its callbacks would load the timed runs that follow
    return {"label": label, "n": n, "workers": client.max_workers if client.parallel else 1,
            "parallel": client.parallel, "wall_s": round(total, 6), "bars": bars,
            "traces": traces, "latencies_s": latencies}
