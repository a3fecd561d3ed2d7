"""Timing helpers: interleaved repeats after warm-up, medians and percentiles."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any


def median(samples: Sequence[float]) -> float:
    """The median of the samples (NaN for none)."""
    return percentile(samples, 50.0)


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linearly interpolated; NaN for no samples."""
    data = sorted(samples)
    if not data:
        return math.nan
    position = (len(data) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)


def interleaved(
    cases: Mapping[str, Callable[[int], Any]],
    repeats: int,
    warmup: int = 1,
    between: Callable[[], Any] | None = None,
    self_timed: Collection[str] = (),
) -> dict[str, list[float]]:
    """Time each case `repeats` times (seconds), taking turns so drift hits every case alike.

    Each case is called with its round number (warm-up rounds are negative and not timed);
    the order alternates forwards and backwards between rounds; `between` runs untimed
    before every call (e.g. to reset the server). A case named in `self_timed` measures
    itself: its return value (seconds) is its sample instead of the time around the call
    (a client in another process, whose own clock leaves out the pipe that drives it).
    """
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(-warmup, repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            if between is not None:
                between()
            start = time.perf_counter()
            returned = cases[name](round_)
            elapsed = time.perf_counter() - start
            if round_ >= 0:
                samples[name].append(float(returned) if name in self_timed else elapsed)
    return samples


def ms(seconds: float) -> float | None:
    """Seconds to milliseconds, rounded to a microsecond for the JSON (None for NaN)."""
    return None if math.isnan(seconds) else round(seconds * 1e3, 3)


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator rounded to 3 decimals; None when undefined."""
    if not denominator or math.isnan(numerator) or math.isnan(denominator):
        return None
    return round(numerator / denominator, 3)


def summary(samples: Sequence[float], keep: bool = False) -> dict[str, Any]:
    """Median, p99, min and max in ms, and the sample count (and the samples with `keep`)."""
    out = {
        "median_ms": ms(median(samples)),
        "p99_ms": ms(percentile(samples, 99.0)),
        "min_ms": ms(min(samples, default=math.nan)),
        "max_ms": ms(max(samples, default=math.nan)),
        "samples": len(samples),
    }
    if keep:
        out["samples_ms"] = [ms(s) for s in samples]
    return out
