"""Section 5: the cost of one put timeout, against timeout + retry_delay + one put."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from epics_pva import Interface

from .machine import RETRY_PV
from .timing import median, ms, ratio

_log = logging.getLogger(__name__)


def measure_retry(
    conf: Mapping[str, str], arm: Callable[[Mapping[str, Any]], Any], repeats: int, warmup: int,
    timeout: float = 0.5, retry_delay: float = 0.25,
) -> dict[str, Any]:
    """Time set_value with one injected put timeout (armed by `arm`) and without, interleaved."""
    plain: list[float] = []
    retried: list[float] = []
    with Interface(conf=conf, timeout=timeout, retry_delay=retry_delay, put_attempts=2) as itf:
        for round_ in range(-warmup, repeats):
            value = float(round_ % 50)
            start = time.perf_counter()
            itf.set_value(RETRY_PV, value)
            one = time.perf_counter() - start
            arm({"pv": RETRY_PV, "kind": "put_timeout", "count": 1})
            start = time.perf_counter()
            result = itf.set_value(RETRY_PV, value + 0.5)
            two = time.perf_counter() - start
            if result.attempts != 2:
                raise RuntimeError(f"expected 2 put attempts with one injected timeout, got {result.attempts}")
            if round_ >= 0:
                plain.append(one)
                retried.append(two)
    expected = timeout + retry_delay + median(plain)
    measured = median(retried)
    _log.info("retry: measured %.1f ms, expected %.1f ms", measured * 1e3, expected * 1e3)
    return {
        "timeout_s": timeout, "retry_delay_s": retry_delay, "repeats": repeats,
        "one_put_ms": ms(median(plain)), "measured_ms": ms(measured), "expected_ms": ms(expected),
        "overhead_ms": ms(measured - expected), "ratio": ratio(measured, expected),
    }
