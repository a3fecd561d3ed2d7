"""Calibration numerics: what a recorded PV trace says about the machine (numpy only, no network).

A trace is a sequence of ``(server timestamp in s, value)``. From one taken at rest this module
measures the update rate, the mean and the noise; from one around a setpoint step it fits the
readback's lag model, dead time and offset. It also says which ``wait_for_readback`` settings
cannot work with what was measured. Everything here is a pure function returning dataclasses.

Lag models live in one table, ``LAG_MODELS``: adding one is adding a row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "AlarmSummary",
    "LAG_MODELS",
    "ModelFit",
    "StepFit",
    "TraceStats",
    "alarm_summary",
    "check_wait_config",
    "combine_step_fits",
    "fit_response",
    "fit_step",
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


# ---------------------------------------------------------------------------------------
# traces at rest
# ---------------------------------------------------------------------------------------
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
# step response
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LagModel:
    """A lag model: its parameter's name and how the readback moves after a setpoint change.

    `respond(t, x0, target, p)` is the readback (without offset) `t` s (>= 0) after it started
    moving from `x0` toward `target`, with parameter `p`; arrays broadcast. `bounds(delta,
    duration, period)` is the (low, high) range searched for p (log-spaced), None for no p.
    """

    parameter: str | None
    respond: Callable[[np.ndarray, np.ndarray, float, np.ndarray], np.ndarray]
    bounds: Callable[[float, float, float], tuple[float, float]] | None = None


def _none_respond(t: np.ndarray, x0: np.ndarray, target: float, p: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(target, dtype=float), np.broadcast_shapes(np.shape(t), np.shape(x0),
                                                                             np.shape(p)))


def _first_order_respond(t: np.ndarray, x0: np.ndarray, target: float, tau: np.ndarray) -> np.ndarray:
    response: np.ndarray = target + (x0 - target) * np.exp(-t / tau)
    return response


def _rate_respond(t: np.ndarray, x0: np.ndarray, target: float, rate: np.ndarray) -> np.ndarray:
    return x0 + np.clip(target - x0, -rate * t, rate * t)


LAG_MODELS: dict[str, LagModel] = {
    "none": LagModel(None, _none_respond),
    "first_order": LagModel(
        "tau_s", _first_order_respond,
        lambda delta, duration, period: (period / 10.0, 10.0 * duration)),
    "rate": LagModel(
        "rate_per_s", _rate_respond,
        lambda delta, duration, period: (abs(delta) / (10.0 * duration), 10.0 * abs(delta) / period)),
}
"""The lag models a fit chooses from, by the name the soft IOC's config uses."""


@dataclass(frozen=True)
class ModelFit:
    """One lag model fitted to one step: parameter, dead time (s), offset, and how well it fits."""

    lag: str
    parameter: float | None
    dead_time_s: float
    offset: float
    rms_residual: float
    r_squared: float
    bic: float
    samples: int

    @property
    def tau_s(self) -> float | None:
        return self.parameter if LAG_MODELS[self.lag].parameter == "tau_s" else None

    @property
    def rate_per_s(self) -> float | None:
        return self.parameter if LAG_MODELS[self.lag].parameter == "rate_per_s" else None

    def as_dict(self) -> dict[str, object]:
        return {
            "lag": self.lag, "tau_s": self.tau_s, "rate_per_s": self.rate_per_s,
            "dead_time_s": self.dead_time_s, "offset": self.offset,
            "rms_residual": self.rms_residual, "r_squared": self.r_squared, "bic": self.bic,
            "samples": self.samples,
        }


@dataclass(frozen=True)
class StepFit:
    """Every lag model fitted to a step (or several), the best one, and its quality figure.

    `rms_over_noise` is the best fit's rms residual divided by the noise sigma: about 1 when
    the model explains everything but the noise, well above 1 when it misses the shape.
    """

    best: ModelFit
    fits: dict[str, ModelFit]
    noise_sigma: float | None
    steps: int = 1
    per_step: tuple[ModelFit, ...] = field(default=())

    @property
    def rms_over_noise(self) -> float | None:
        if not self.noise_sigma:
            return None
        return self.best.rms_residual / self.noise_sigma

    def fit_quality(self) -> dict[str, float | None]:
        return {"r_squared": self.best.r_squared, "rms_residual": self.best.rms_residual,
                "noise_sigma": self.noise_sigma, "rms_over_noise": self.rms_over_noise}


def _response(model: LagModel, t: np.ndarray, initial: float, steps: Sequence[tuple[float, float]],
              dead: np.ndarray, param: np.ndarray) -> np.ndarray:
    """The model's readback (no offset) at times `t` for setpoint `steps` [(time s, value)].

    Shapes: `t` (n,), `dead` (D,), `param` (P,) -> (D, P, n). Each change starts `dead` s after
    its time from wherever the previous one had got to, so an unfinished move carries over.
    """
    t3, d3, p3 = t[None, None, :], dead[:, None, None], param[None, :, None]
    out = np.full(np.broadcast_shapes(t3.shape, d3.shape, p3.shape), float(initial))
    state: np.ndarray = np.asarray(float(initial))
    for j, (when, target) in enumerate(steps):
        start = when + d3
        local = t3 - start
        following = steps[j + 1][0] if j + 1 < len(steps) else math.inf
        inside = (local >= 0) & (t3 < following + d3)
        out = np.where(inside, model.respond(np.maximum(local, 0.0), state, float(target), p3), out)
        if j + 1 < len(steps):  # where it had got to when the next change began (dead time cancels)
            state = model.respond(np.asarray(following - when), state, float(target), p3)
    return out


def _fit_model(name: str, t: np.ndarray, y: np.ndarray, initial: float, steps: Sequence[tuple[float, float]],
               period: float, max_dead: float) -> ModelFit:
    """Least-squares fit of one lag model by a grid search that zooms in four times.

    The offset enters linearly, so for each (dead time, parameter) candidate it is solved
    exactly (the mean residual); the grid covers the other two.
    """
    model = LAG_MODELS[name]
    first = steps[0][0]
    duration = max(float(t.max()) - first, period)
    delta = max(abs(b - a) for a, b in zip([initial, *(v for _, v in steps)], (v for _, v in steps),
                                           strict=False))
    d_lo, d_hi = -period, max(max_dead, 0.0)
    if model.bounds is not None:
        p_lo, p_hi = (math.log(b) for b in model.bounds(delta, duration, period))
    else:
        p_lo = p_hi = 0.0
    best = (math.inf, 0.0, 0.0, 0.0)  # ssr, dead, log p, offset
    for _ in range(5):
        dead = np.linspace(d_lo, d_hi, 41)
        logp = np.linspace(p_lo, p_hi, 41) if model.bounds is not None else np.zeros(1)
        residual = y[None, None, :] - _response(model, t, initial, steps, dead, np.exp(logp))
        offset = residual.mean(axis=2)
        centred = residual - offset[:, :, None]
        ssr = np.einsum("ijk,ijk->ij", centred, centred)
        i, j = np.unravel_index(int(np.argmin(ssr)), ssr.shape)
        if ssr[i, j] <= best[0]:
            best = (float(ssr[i, j]), float(dead[i]), float(logp[j]), float(offset[i, j]))
        d_step = (d_hi - d_lo) / 40.0
        d_lo, d_hi = best[1] - 2 * d_step, best[1] + 2 * d_step
        if model.bounds is not None:
            p_step = (p_hi - p_lo) / 40.0
            p_lo, p_hi = best[2] - 2 * p_step, best[2] + 2 * p_step
    ssr_best, dead_best, logp_best, offset_best = best
    n = y.size
    sst = float(np.sum((y - y.mean()) ** 2))
    k = 2 if model.bounds is None else 3
    bic = n * math.log(max(ssr_best, 1e-300) / n) + k * math.log(n)
    return ModelFit(
        lag=name,
        parameter=math.exp(logp_best) if model.bounds is not None else None,
        # a sampled readback can appear to start moving up to one period before the put's
        # timestamp; the mirror wants a delay, so none is reported as zero
        dead_time_s=max(dead_best, 0.0),
        offset=offset_best,
        rms_residual=math.sqrt(ssr_best / n),
        r_squared=1.0 - ssr_best / sst if sst > 0 else 1.0,
        bic=bic,
        samples=n,
    )


def fit_response(initial: float, steps: Sequence[tuple[float, float]], trace: Iterable[tuple[float, float]],
                 noise: float | None = None, period: float | None = None,
                 models: Sequence[str] | None = None) -> StepFit:
    """Fit every lag model to a readback's response to setpoint changes; choose the best.

    `initial` is the setpoint before the first change, `steps` the changes [(time s, new
    setpoint)] on the same clock as the trace's server timestamps, `trace` the readback
    (s, value) from some rest before the first change on. Each model gives readback = its
    response to the setpoint + offset, each change starting after a dead time, a change that
    comes before the last one finished carrying on from where that got to. The best model is
    the lowest BIC (the parameter of first_order or rate must pay for itself against `none`).
    `noise` (sigma) is measured from the trace before the first change when not given;
    `period` (s) from its timestamps.
    """
    t, y = _as_arrays(trace)
    keep = np.isfinite(y)
    t, y = t[keep], y[keep]
    steps = sorted((float(when), float(value)) for when, value in steps)
    if not steps:
        raise ValueError("a response fit needs at least one setpoint change")
    levels = [float(initial), *(v for _, v in steps)]
    if not all(math.isfinite(v) for v in levels) or all(v == levels[0] for v in levels):
        raise ValueError(f"a response fit needs finite setpoints that change, got {levels}")
    after = int(np.count_nonzero(t > steps[0][0]))
    if after < 3:
        raise ValueError(f"a response fit needs at least 3 readback updates after the step, got {after}")
    if period is None:
        rate = update_rate(t)
        period = 1.0 / rate if rate else (float(t.max()) - steps[0][0]) / 10.0
    if noise is None:
        noise = noise_sigma(t[t < steps[0][0]], y[t < steps[0][0]])
    ends = [*(when for when, _ in steps[1:]), float(t.max())]
    max_dead = min(end - when for (when, _), end in zip(steps, ends, strict=True)) / 2.0
    names = list(models) if models is not None else list(LAG_MODELS)
    unknown = [m for m in names if m not in LAG_MODELS]
    if unknown:
        raise ValueError(f"unknown lag model(s) {unknown}; known: {list(LAG_MODELS)}")
    fits = {m: _fit_model(m, t, y, float(initial), steps, period, max_dead) for m in names}
    best = min(fits.values(), key=lambda f: f.bic)
    return StepFit(best, fits, noise, len(steps), (best,))


def fit_step(step_time: float, before: float, after: float, trace: Iterable[tuple[float, float]],
             noise: float | None = None, period: float | None = None,
             models: Sequence[str] | None = None) -> StepFit:
    """Fit every lag model to the response to one setpoint step `before` -> `after` at `step_time` (s).

    The same as ``fit_response(before, [(step_time, after)], trace, ...)``.
    """
    if not (math.isfinite(float(after) - float(before)) and after != before):
        raise ValueError(f"a step fit needs a finite non-zero step, got {before!r} -> {after!r}")
    return fit_response(before, [(step_time, after)], trace, noise, period, models)


def combine_step_fits(fits: Sequence[StepFit]) -> StepFit:
    """One result for several steps of the same pair (e.g. up and back down).

    The model chosen is the one with the lowest BIC summed over the steps; its parameter,
    dead time and offset are averaged over them; the quality figures are the worst step's.
    """
    if not fits:
        raise ValueError("no step fits to combine")
    names = [m for m in fits[0].fits if all(m in f.fits for f in fits)]
    total = {m: sum(f.fits[m].bic for f in fits) for m in names}
    chosen = min(names, key=total.__getitem__)
    per = [f.fits[chosen] for f in fits]
    sigmas = [f.noise_sigma for f in fits if f.noise_sigma]
    merged = {}
    for m in names:
        group = [f.fits[m] for f in fits]
        ps = [g.parameter for g in group if g.parameter is not None]
        merged[m] = ModelFit(
            lag=m,
            parameter=float(np.mean(ps)) if ps else None,
            dead_time_s=float(np.mean([g.dead_time_s for g in group])),
            offset=float(np.mean([g.offset for g in group])),
            rms_residual=max(g.rms_residual for g in group),
            r_squared=min(g.r_squared for g in group),
            bic=total[m],
            samples=sum(g.samples for g in group),
        )
    return StepFit(merged[chosen], merged, float(np.mean(sigmas)) if sigmas else None, len(fits), tuple(per))


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
