"""Trace statistics at rest: update rate, mean, noise sigma and alarms of a recorded PV trace.

A trace is a sequence of ``(server timestamp in s, value)``. This module also says which
``wait_for_readback`` settings cannot work with what was measured. Pure functions returning
dataclasses (numpy only, no network); re-exported by `epics_pva.tools.calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AlarmSummary",
    "TraceStats",
    "alarm_summary",
    "check_wait_config",
    "noise_sigma",
    "trace_stats",
    "update_rate",
]

NOISE_WINDOW = 20
"""Samples per local linear fit of `noise_sigma`: long enough to be efficient, short enough
that a slow drift or the tail of a lag is straight within one window."""

SETTLE_SIGMAS = 3.0
"""A wait_for_readback tolerance below this many noise sigmas will rarely settle."""

MIN_UPDATE_PERIODS = 3.0
"""A wait_for_readback count_down shorter than this many update periods is too short."""


def _as_arrays(trace: Iterable[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of a trace as float arrays, sorted by time."""
    pairs = list(trace)
    if not pairs:
        return np.empty(0), np.empty(0)
    data = np.asarray(pairs, dtype=float)
    if data.ndim != 2 or data.shape[1] != 2:
        raise ValueError(f"a trace is a sequence of (timestamp, value) pairs, got shape {data.shape}")
    order = np.argsort(data[:, 0], kind="stable")
    return data[order, 0], data[order, 1]


def update_rate(times: Sequence[float] | np.ndarray) -> float | None:
    """Update rate (Hz) from server timestamps (s): 1 / the median interval between updates.

    The median ignores a missed update (one double interval) and scheduling jitter (a late
    update shortens the next interval as much as it lengthened its own); None with < 2 updates.
    """
    t = np.sort(np.asarray(times, dtype=float))
    intervals = np.diff(t)
    intervals = intervals[intervals > 0]  # repeated timestamps carry no rate information
    if intervals.size == 0:
        return None
    return float(1.0 / np.median(intervals))


def noise_sigma(times: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
                window: int = NOISE_WINDOW) -> float | None:
    """Standard deviation of the values around their local linear trend (value units).

    The trace is cut into consecutive windows of `window` samples and each is fitted with a
    straight line against time; sigma^2 = sum of squared residuals / (n - 2 * windows). For
    white noise on any linear trend (a ramp, a slow drift) that is exactly unbiased for sigma^2,
    because a line absorbs the trend and costs two degrees of freedom per window. It is more
    efficient than std(diff)/sqrt(2) (which is also unbiased on a ramp, but its differences are
    correlated: variance of sigma^2 3/n instead of about 2/n here). None with < 3 samples.
    """
    t = np.asarray(times, dtype=float)
    y = np.asarray(values, dtype=float)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    n = y.size
    if n < 3:
        return None
    window = max(3, int(window))
    count = max(1, n // window)
    ssr, dof = 0.0, 0
    for chunk_t, chunk_y in zip(np.array_split(t, count), np.array_split(y, count), strict=True):
        if chunk_y.size < 3:
            continue
        x = chunk_t - chunk_t.mean()
        if np.ptp(x) > 0:
            slope = float(np.dot(x, chunk_y - chunk_y.mean()) / np.dot(x, x))
            residual = chunk_y - chunk_y.mean() - slope * x
            dof += chunk_y.size - 2
        else:  # equal timestamps: no slope to fit
            residual = chunk_y - chunk_y.mean()
            dof += chunk_y.size - 1
        ssr += float(np.dot(residual, residual))
    if dof <= 0:
        return None
    return math.sqrt(ssr / dof)


@dataclass(frozen=True)
class AlarmSummary:
    """The worst alarm severity seen (0 none, 1 minor, 2 major, 3 invalid) and every message."""

    max_severity: int = 0
    messages: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"max_severity": self.max_severity, "messages": list(self.messages)}


def alarm_summary(alarms: Iterable[tuple[int, str]]) -> AlarmSummary:
    """Summarise (severity, message) pairs: the worst severity, distinct non-empty messages in order."""
    worst, messages = 0, []
    for severity, message in alarms:
        worst = max(worst, int(severity))
        if message and message not in messages:
            messages.append(str(message))
    return AlarmSummary(worst, tuple(messages))


@dataclass(frozen=True)
class TraceStats:
    """What a trace taken at rest says: updates counted, rate (Hz), mean and noise sigma."""

    samples: int
    update_rate_hz: float | None
    mean: float | None
    noise_sigma: float | None
    span_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "update_rate_hz": self.update_rate_hz,
            "mean": self.mean,
            "noise_sigma": self.noise_sigma,
            "span_s": self.span_s,
        }


def trace_stats(trace: Iterable[tuple[float, float]]) -> TraceStats:
    """Update rate, mean and noise of a trace of (server timestamp s, value) taken at rest."""
    t, y = _as_arrays(trace)
    finite = np.isfinite(y)
    mean = float(np.mean(y[finite])) if finite.any() else None
    span = float(t[-1] - t[0]) if t.size else 0.0
    return TraceStats(int(t.size), update_rate(t), mean, noise_sigma(t, y), span)


# ---------------------------------------------------------------------------------------
# wait_for_readback settings that cannot work
# ---------------------------------------------------------------------------------------
def check_wait_config(set_pv: str, readback_pv: str, tolerance: float | None, count_down: float | None,
                      stats: TraceStats | None, offset: float | None = None,
                      measured_offset: float | None = None) -> list[str]:
    """Warnings for a wait_for_readback config that cannot work with what was measured.

    Flags a readback that never updates (fewer than 2 updates seen), a tolerance below
    SETTLE_SIGMAS noise sigmas ("will rarely settle"), a count_down (s) shorter than
    MIN_UPDATE_PERIODS update periods, and a configured offset further than the tolerance
    from the measured one (the readback never comes within tolerance). Empty when it can work.
    """
    where = f"{set_pv} (readback {readback_pv})"
    if stats is None or stats.samples < 2 or stats.update_rate_hz is None:
        seen = 0 if stats is None else stats.samples
        return [f"{where}: the readback never updates ({seen} value(s) seen while measuring); "
                f"wait_for_readback can only time out"]
    warnings = []
    sigma = stats.noise_sigma
    if tolerance is not None and sigma is not None and tolerance < SETTLE_SIGMAS * sigma:
        warnings.append(
            f"{where}: tolerance {tolerance:g} is below {SETTLE_SIGMAS:g} sigma of the readback "
            f"noise (sigma {sigma:.3g}, {SETTLE_SIGMAS:g} sigma {SETTLE_SIGMAS * sigma:.3g}): "
            f"will rarely settle")
    period = 1.0 / stats.update_rate_hz
    if count_down is not None and count_down < MIN_UPDATE_PERIODS * period:
        warnings.append(
            f"{where}: count_down {count_down:g} s is shorter than {MIN_UPDATE_PERIODS:g} update "
            f"periods ({MIN_UPDATE_PERIODS * period:.3g} s at {stats.update_rate_hz:.3g} Hz)")
    if (tolerance is not None and offset is not None and measured_offset is not None
            and abs(measured_offset - offset) > tolerance):
        warnings.append(
            f"{where}: configured offset {offset:g} is {abs(measured_offset - offset):.3g} from the "
            f"measured offset {measured_offset:.6g}, more than the tolerance {tolerance:g}: "
            f"will never settle")
    return warnings
