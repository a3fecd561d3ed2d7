"""Runs every section against its own soft IOCs and gathers one results dict (the JSON)."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import platform
from dataclasses import dataclass
from typing import Any

import p4p

from .anchor import measure_anchor
from .capacity import measure_capacity
from .latency import measure_latency
from .machine import Machine, rw_config, settle_config, settle_times
from .observer import Observer
from .readwrite import measure_get, measure_set
from .retry import measure_retry
from .settle import Bench, measure_validated, traced_set
from .targets import evaluate

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """What to measure and how often; `quick()` gives a run of seconds for smoke tests."""

    rw_sizes: tuple[int, ...] = (10, 100, 1000)
    validated_sizes: tuple[int, ...] = (1, 10, 50)
    repeats: int = 20
    warmup: int = 2
    settle_fastest: float = 0.1
    settle_slowest: float = 0.2
    latency_settle: float = 0.05
    capacity_pairs: tuple[int, ...] = (500, 1000, 2000, 4000)
    capacity_rate: float = 10.0
    capacity_seconds: float = 3.0
    pvxs_sizes: tuple[int, ...] = (10, 100, 1000)
    ioc_in_process: bool = False

    @classmethod
    def quick(cls, **changes: Any) -> Options:
        """Tiny sizes and few repeats: every section runs, in seconds, figures not meaningful."""
        base = {"rw_sizes": (10,), "validated_sizes": (1, 4), "repeats": 3, "warmup": 1,
                "capacity_pairs": (20,), "capacity_seconds": 0.5, "pvxs_sizes": (10,)}
        return cls(**{**base, **changes})

    # rounds of the slower sections, derived from `repeats` (the get/set sections' rounds)
    @property
    def settle_repeats(self) -> int:
        return max(2, self.repeats // 4)

    @property
    def latency_samples(self) -> int:
        return max(5, self.repeats * 2)

    @property
    def retry_repeats(self) -> int:
        return max(1, self.repeats // 4)

    @property
    def traced_runs(self) -> int:
        return max(1, min(3, self.repeats // 5))


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _traced(bench: Bench, options: Options) -> tuple[dict[str, Any], list[float]]:
    """Traced sets for the picture, and settle latencies seen during parallel sets."""
    sizes = options.validated_sizes
    small = max([n for n in sizes if n <= 10] or [min(sizes)])
    runs = {
        "serial_small": traced_set(bench, bench.serial, small, f"in order, {small} PVs"),
        "parallel_small": traced_set(bench, bench.parallel, small, f"parallel, {small} PVs"),
    }
    large = max(sizes)
    under_load: list[float] = []
    if large > bench.parallel.max_workers:
        for _ in range(options.traced_runs):
            runs["parallel_large"] = traced_set(
                bench, bench.parallel, large,
                f"parallel, {large} PVs, {bench.parallel.max_workers} workers (default)")
            runs["wide_large"] = traced_set(
                bench, bench.wide, large, f"parallel, {large} PVs, {bench.wide.max_workers} workers")
            under_load += runs["parallel_large"]["latencies_s"] + runs["wide_large"]["latencies_s"]
    else:
        under_load += runs["parallel_small"]["latencies_s"]
    for run in runs.values():
        run.pop("latencies_s")
    return runs, under_load


def run_all(options: Options) -> dict[str, Any]:
    """Measure every section and return the results, targets included."""
    meta: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "p4p": str(getattr(p4p, "version", "?")),
        "cpus": os.cpu_count(), "load_before": _load(),
        "ioc": "this process" if options.ioc_in_process else "a separate process",
        "options": dataclasses.asdict(options),
    }
    results: dict[str, Any] = {"meta": meta}
    times = settle_times(max(options.validated_sizes), options.settle_fastest, options.settle_slowest)
    in_process = options.ioc_in_process
    with (
        Machine(rw_config(max(options.rw_sizes)), in_process) as rw,
        Machine(settle_config(times, options.latency_settle), in_process) as settle,
    ):
        _log.info("1/7 get_values against raw p4p")
        results["get_values"] = measure_get(rw.conf, options.rw_sizes, options.repeats, options.warmup)
        _log.info("2/7 set_values without validation against raw p4p")
        results["set_values"] = measure_set(rw.conf, options.rw_sizes, options.repeats,
                                            options.warmup, between=rw.clear_audit)
        with Observer(settle.conf) as observer:
            bench = Bench(settle.conf, times, observer, wide_workers=max(options.validated_sizes))
            try:
                _log.info("3/7 validated sets against the ideal")
                results["validated_set"] = measure_validated(
                    bench, options.validated_sizes, options.settle_repeats, options.warmup,
                    between=settle.clear_audit)
                traced, under_load = _traced(bench, options)
            finally:
                bench.close()
            _log.info("4/7 settle detection latency")
            results["settle_latency"] = measure_latency(
                settle.conf, observer, options.latency_samples, options.warmup, under_load)
        results["traced"] = traced
        _log.info("5/7 retry cost")
        results["retry"] = measure_retry(rw.conf, rw.arm, options.retry_repeats, 1)
        results["ioc_health"] = {"read_write_ioc": rw.stats(), "settle_ioc": settle.stats()}
    _log.info("6/7 soft IOC capacity (devtools.bench.capacity)")
    results["capacity"] = measure_capacity(options.capacity_pairs, options.capacity_rate,
                                           options.capacity_seconds)
    if options.pvxs_sizes:
        _log.info("7/7 EPICS base's softIoc: pvxs C++, raw p4p and ours (devtools.bench.anchor)")
        results["pvxs_anchor"] = measure_anchor(options.pvxs_sizes, options.repeats, options.warmup)
    else:
        results["pvxs_anchor"] = None
    meta["load_after"] = _load()
    results["targets"] = evaluate(results)
    return results
