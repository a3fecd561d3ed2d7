"""Step-response fitting: a readback's lag model, dead time and offset after setpoint changes.

The lag models a fit chooses from live in one table, ``LAG_MODELS``: adding one is adding a
row. Pure functions returning dataclasses (numpy only, no network); re-exported by
`epics_pva.tools.calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .traces import _as_arrays, noise_sigma, update_rate

__all__ = [
    "LAG_MODELS",
    "LagModel",
    "ModelFit",
    "StepFit",
    "combine_step_fits",
    "fit_response",
    "fit_step",
]


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
