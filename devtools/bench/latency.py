"""Section 4: settle detection latency, wait_for_readback beside a 0.1 s polling loop.

Latency is the time from the soft IOC's post of the first readback inside tolerance (its
PVAccess timestamp, taken from time.time() when posting) to the moment the waiter returns
(time.time() again, same host clock).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from p4p.client.thread import Context

from epics_pva import Interface, wait_for_readback

from .machine import LATENCY_RBV, LATENCY_SET, STEP
from .observer import Observer
from .settle import COUNT_DOWN, TIMEOUT, TOLERANCE
from .timing import interleaved, summary

POLL_PERIOD = 0.1
"""Seconds between reads of the polling loop it is compared with."""


def poll_until(ctx: Context, readback: str, target: float, tolerance: float, limit: float) -> float:
    """Read `readback` every POLL_PERIOD s until within tolerance of `target`; return the value."""
    deadline = time.monotonic() + limit
    while True:
        value = float(ctx.get(readback, timeout=TIMEOUT))
        if abs(value - target) <= tolerance:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{readback} = {value:g} did not reach {target:g} within {limit:g} s")
        time.sleep(POLL_PERIOD)


def measure_latency(conf: Mapping[str, str], observer: Observer, samples: int, warmup: int,
                    under_load: Sequence[float] = ()) -> dict[str, Any]:
    """Median and p99 latency (ms) of both waiters on the latency pair, interleaved.

    `under_load` adds latencies (seconds) gathered by traced parallel sets, summarised apart.
    """
    observer.watch([LATENCY_RBV])
    state = {"value": observer.value(LATENCY_RBV)}
    latencies: dict[str, list[float]] = {"wait_for_readback": [], "poll_0.1s": []}

    def one(round_: int, method: str, itf: Interface, ctx: Context) -> None:
        target = STEP if abs(state["value"]) <= TOLERANCE else 0.0
        mark = observer.mark(LATENCY_RBV)
        if method == "wait_for_readback":
            returned: list[float] = []

            def validate(**kwargs: Any) -> Any:
                value = wait_for_readback(readback_pv=LATENCY_RBV, tolerance=TOLERANCE,
                                          count_down=COUNT_DOWN, offset=0.0, **kwargs)
                returned.append(time.time())
                return value

            itf.set_value(LATENCY_SET, target, validate)
            done = returned[0]
        else:
            ctx.put(LATENCY_SET, target, timeout=TIMEOUT)
            poll_until(ctx, LATENCY_RBV, target, TOLERANCE, COUNT_DOWN)
            done = time.time()
        state["value"] = target
        posted = observer.reached(LATENCY_RBV, target, TOLERANCE, mark, TIMEOUT)
        if round_ >= 0:
            latencies[method].append(done - posted)

    with Interface(conf=conf, timeout=TIMEOUT) as itf, Context("pva", conf=dict(conf), useenv=False) as ctx:
        interleaved(
            {method: (lambda r, m=method: one(r, m, itf, ctx)) for method in latencies},
            samples, warmup)
    result = {method: summary(values, keep=True) for method, values in latencies.items()}
    if under_load:
        result["parallel_sets"] = summary(list(under_load), keep=True)
    return result
