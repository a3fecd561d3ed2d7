"""Calibration numerics on synthetic traces with seeded noise: rates, noise, step fits, warnings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from epics_pva.tools.calibration import (
    LAG_MODELS,
    TraceStats,
    alarm_summary,
    check_wait_config,
    combine_step_fits,
    fit_response,
    fit_step,
    noise_sigma,
    trace_stats,
    update_rate,
)
from epics_pva.tools.measure import step_test

SEEDS = [1, 2, 3, 4, 5]


def sampled(rate_hz: float, seconds: float, seed: int, jitter: float = 0.0, start: float = 1.7e9) -> np.ndarray:
    """Timestamps of a readback posted at `rate_hz`, each late by up to `jitter` s (scheduler)."""
    rng = np.random.default_rng(seed)
    t = start + np.arange(int(seconds * rate_hz)) / rate_hz
    return t + rng.uniform(0.0, jitter, t.size)


def response(lag: str, t: np.ndarray, delta: float, param: float | None, dead: float) -> np.ndarray:
    """The ideal readback displacement of each lag model, `dead` s after the step at t = 0."""
    s = np.maximum(t - dead, 0.0)
    if lag == "first_order":
        return np.where(t >= dead, delta * (1 - np.exp(-s / param)), 0.0)
    if lag == "rate":
        return np.sign(delta) * np.minimum(param * s, abs(delta))
    return np.where(t >= dead, delta, 0.0)


def step_trace(lag: str, param: float | None, *, seed: int, sigma: float = 0.02, offset: float = 0.3,
               before: float = 1.0, after: float = 3.0, dead: float = 0.0, rate_hz: float = 50.0,
               pre: float = 1.0, post: float = 3.0) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    t = np.arange(-pre, post, 1.0 / rate_hz) + rng.uniform(0, 1.0 / rate_hz)
    y = before + offset + response(lag, t, after - before, param, dead) + rng.normal(0, sigma, t.size)
    return list(zip(t.tolist(), y.tolist(), strict=True))


# --- update rate --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_update_rate_within_5_percent_with_jitter_and_missed_updates(seed):
    t = sampled(20.0, 5.0, seed, jitter=0.01)
    dropped = np.delete(t, np.arange(3, t.size, 7))  # every 7th update missed
    assert update_rate(dropped) == pytest.approx(20.0, rel=0.05)
    # the naive count / span would be 14 % low
    assert (dropped.size - 1) / (dropped[-1] - dropped[0]) < 0.9 * 20.0


def test_update_rate_needs_two_distinct_timestamps():
    assert update_rate([]) is None
    assert update_rate([5.0]) is None
    assert update_rate([5.0, 5.0]) is None
    assert update_rate([5.0, 5.5]) == pytest.approx(2.0)


# --- noise ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_noise_sigma_on_a_steep_ramp_is_the_white_noise_sigma(seed):
    t = sampled(100.0, 4.0, seed, jitter=0.002)
    rng = np.random.default_rng(100 + seed)
    y = 5.0 + 3.0 * (t - t[0]) + rng.normal(0, 0.05, t.size)
    assert np.std(y) > 20 * 0.05  # the trend dwarfs the noise: a plain std would be useless
    assert noise_sigma(t, y) == pytest.approx(0.05, rel=0.15)


@pytest.mark.parametrize("seed", SEEDS)
def test_noise_sigma_ignores_a_slow_drift_and_the_tail_of_a_lag(seed):
    t = sampled(50.0, 6.0, seed)
    rng = np.random.default_rng(200 + seed)
    s = t - t[0]
    y = 2.0 + 0.5 * np.sin(2 * np.pi * s / 6.0) + 1.0 * np.exp(-s / 1.0) + rng.normal(0, 0.01, t.size)
    assert noise_sigma(t, y) == pytest.approx(0.01, rel=0.15)


def test_noise_sigma_is_unbiased_for_white_noise_on_a_ramp():
    """Averaged over many seeded traces, sigma^2 comes out at the true value (within 2 %)."""
    estimates = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        t = np.arange(97) / 20.0  # not a multiple of the window: the last window is longer
        y = -4.0 * t + rng.normal(0, 0.1, t.size)
        estimates.append(noise_sigma(t, y) ** 2)
    assert np.mean(estimates) == pytest.approx(0.01, rel=0.02)


def test_noise_sigma_needs_three_samples():
    assert noise_sigma([0.0, 1.0], [1.0, 2.0]) is None
    assert noise_sigma([0.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(0.0)


def test_trace_stats_of_a_noisy_reading_at_rest():
    t = sampled(10.0, 20.0, 7, jitter=0.005)
    y = 4.2 + np.random.default_rng(7).normal(0, 0.2, t.size)
    stats = trace_stats(zip(t, y, strict=True))
    assert stats.samples == t.size
    assert stats.update_rate_hz == pytest.approx(10.0, rel=0.05)
    assert stats.mean == pytest.approx(4.2, abs=3 * 0.2 / math.sqrt(t.size))
    assert stats.noise_sigma == pytest.approx(0.2, rel=0.15)
    assert stats.span_s == pytest.approx(t[-1] - t[0])


def test_trace_stats_of_a_reading_that_never_updates():
    stats = trace_stats([(1.7e9, 3.0)])
    assert (stats.samples, stats.update_rate_hz, stats.mean, stats.noise_sigma) == (1, None, 3.0, None)


def test_trace_refuses_a_shape_that_is_not_pairs():
    with pytest.raises(ValueError, match="pairs"):
        trace_stats([(1.0, 2.0, 3.0)])


def test_alarm_summary_keeps_the_worst_severity_and_each_message_once():
    summary = alarm_summary([(0, ""), (1, "LOW"), (2, "HIHI"), (1, "LOW"), (0, "")])
    assert summary.max_severity == 2
    assert summary.messages == ("LOW", "HIHI")
    assert alarm_summary([]).as_dict() == {"max_severity": 0, "messages": []}


# --- step response ------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("lag", "param", "dead"), [
    ("first_order", 0.4, 0.0), ("first_order", 0.8, 0.15), ("rate", 2.0, 0.0), ("rate", 0.9, 0.1),
])
def test_fit_step_recovers_the_lag_model_its_parameter_dead_time_and_offset(seed, lag, param, dead):
    trace = step_trace(lag, param, seed=seed, dead=dead, post=4.0)
    fit = fit_step(0.0, 1.0, 3.0, trace)
    assert fit.best.lag == lag
    assert fit.best.parameter == pytest.approx(param, rel=0.15)
    name = LAG_MODELS[lag].parameter
    assert getattr(fit.best, name) == fit.best.parameter
    assert fit.best.dead_time_s == pytest.approx(dead, abs=0.03)
    assert fit.best.offset == pytest.approx(0.3, rel=0.2)
    assert fit.noise_sigma == pytest.approx(0.02, rel=0.3)  # from the 1 s before the step
    assert fit.rms_over_noise == pytest.approx(1.0, abs=0.15)
    assert fit.best.r_squared > 0.99
    # the other models fit worse: their residual is well above the noise
    for other, model_fit in fit.fits.items():
        if other != lag:
            assert model_fit.rms_residual > 1.5 * fit.best.rms_residual


@pytest.mark.parametrize("seed", SEEDS)
def test_fit_step_of_an_immediate_readback_chooses_none(seed):
    trace = step_trace("none", None, seed=seed, dead=0.05)
    fit = fit_step(0.0, 1.0, 3.0, trace)
    assert fit.best.lag == "none"
    assert (fit.best.tau_s, fit.best.rate_per_s) == (None, None)
    assert fit.best.dead_time_s == pytest.approx(0.05, abs=0.025)
    assert fit.best.offset == pytest.approx(0.3, rel=0.2)


def test_fit_step_downwards_and_negative_offset():
    trace = step_trace("first_order", 0.5, seed=11, before=3.0, after=1.0, offset=-0.4)
    fit = fit_step(0.0, 3.0, 1.0, trace)
    assert (fit.best.lag, fit.best.tau_s) == ("first_order", pytest.approx(0.5, rel=0.15))
    assert fit.best.offset == pytest.approx(-0.4, rel=0.2)


def test_fit_step_uses_the_step_time_on_the_trace_clock():
    trace = [(t + 1.7e9, y) for t, y in step_trace("rate", 1.5, seed=12)]
    fit = fit_step(1.7e9, 1.0, 3.0, trace)
    assert fit.best.rate_per_s == pytest.approx(1.5, rel=0.15)
    assert fit.best.dead_time_s < 0.05


def test_fit_step_refuses_what_it_cannot_fit():
    trace = step_trace("rate", 1.0, seed=1)
    with pytest.raises(ValueError, match="non-zero step"):
        fit_step(0.0, 2.0, 2.0, trace)
    with pytest.raises(ValueError, match="at least 3 readback updates"):
        fit_step(10.0, 1.0, 3.0, trace)
    with pytest.raises(ValueError, match="unknown lag model"):
        fit_step(0.0, 1.0, 3.0, trace, models=["second_order"])


def simulate_sequence(lag: str, param: float, t: np.ndarray, initial: float,
                      steps: list[tuple[float, float]], dt: float = 0.001) -> np.ndarray:
    """Integrate the lag model in small time steps (independently of the fit's closed forms)."""
    grid = np.arange(t.min() - dt, t.max() + dt, dt)
    state, setpoint, out = initial, initial, np.empty(grid.size)
    for i, now in enumerate(grid):
        for when, value in steps:
            if when <= now < when + dt:
                setpoint = value
        if lag == "first_order":
            state += (setpoint - state) * (1 - math.exp(-dt / param))
        else:
            state += float(np.clip(setpoint - state, -param * dt, param * dt))
        out[i] = state
    return np.interp(t, grid, out)


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize(("lag", "param"), [("first_order", 0.5), ("rate", 1.5)])
def test_fit_response_to_a_move_back_before_the_readback_settled(seed, lag, param):
    """Up by 2, back down 0.8 s later (1.6 tau; the ramp is 1.33 s): the fit carries the state over."""
    rng = np.random.default_rng(seed)
    t = np.arange(-1.0, 3.0, 0.02) + rng.uniform(0, 0.02)
    steps = [(0.0, 3.0), (0.8, 1.0)]
    y = 0.3 + simulate_sequence(lag, param, t, 1.0, steps) + rng.normal(0, 0.02, t.size)
    fit = fit_response(1.0, steps, list(zip(t, y, strict=True)))
    assert fit.best.lag == lag and fit.steps == 2
    assert fit.best.parameter == pytest.approx(param, rel=0.15)
    assert fit.best.offset == pytest.approx(0.3, rel=0.2)
    assert fit.rms_over_noise == pytest.approx(1.0, abs=0.15)
    # fitted as two independent steps from rest, the move back would be misread
    independent = fit_step(0.8, 3.0, 1.0, [(a, b) for a, b in zip(t, y, strict=True) if a >= 0.4])
    assert independent.best.rms_residual > 2 * fit.best.rms_residual


def test_fit_response_refuses_setpoints_that_do_not_change():
    trace = step_trace("rate", 1.0, seed=1)
    with pytest.raises(ValueError, match="setpoint change"):
        fit_response(1.0, [], trace)
    with pytest.raises(ValueError, match="that change"):
        fit_response(1.0, [(0.0, 1.0), (1.0, 1.0)], trace)


def test_combine_step_fits_up_and_down():
    up = fit_step(0.0, 1.0, 3.0, step_trace("first_order", 0.6, seed=21))
    down = fit_step(0.0, 3.0, 1.0, step_trace("first_order", 0.6, seed=22, before=3.0, after=1.0))
    both = combine_step_fits([up, down])
    assert both.steps == 2 and both.best.lag == "first_order"
    assert both.best.tau_s == pytest.approx((up.best.tau_s + down.best.tau_s) / 2)
    assert both.best.tau_s == pytest.approx(0.6, rel=0.15)
    assert both.best.rms_residual == max(up.best.rms_residual, down.best.rms_residual)
    assert both.best.samples == up.best.samples + down.best.samples
    quality = both.fit_quality()
    assert set(quality) == {"r_squared", "rms_residual", "noise_sigma", "rms_over_noise"}
    with pytest.raises(ValueError):
        combine_step_fits([])


# --- wait_for_readback settings ----------------------------------------------------------
def stats(rate_hz: float | None = 20.0, sigma: float | None = 0.05, samples: int = 100) -> TraceStats:
    return TraceStats(samples, rate_hz, 1.0, sigma, 5.0)


@pytest.mark.parametrize(("tolerance", "count_down", "offset", "measured", "expected"), [
    (0.2, 1.0, 0.0, 0.0, []),                                   # works
    (0.151, 0.151, None, None, []),                             # just over 3 sigma and 3 periods: works
    (0.149, 0.151, None, None, ["will rarely settle"]),
    (0.151, 0.149, None, None, ["shorter than 3 update periods"]),
    (0.1, 1.0, 0.0, 0.0, ["will rarely settle"]),
    (0.2, 0.1, 0.0, 0.0, ["shorter than 3 update periods"]),
    (0.2, 1.0, 0.0, 0.5, ["will never settle"]),
    (0.1, 0.1, 0.0, 0.5, ["will rarely settle", "shorter than 3 update periods", "will never settle"]),
])
def test_check_wait_config_flags_exactly_the_configs_that_cannot_work(tolerance, count_down, offset,
                                                                     measured, expected):
    warnings = check_wait_config("Q:SET", "Q:RBV", tolerance, count_down, stats(), offset, measured)
    assert len(warnings) == len(expected)
    for warning, phrase in zip(warnings, expected, strict=True):
        assert phrase in warning and warning.startswith("Q:SET (readback Q:RBV)")


def test_check_wait_config_flags_a_readback_that_never_updates():
    for never in (None, stats(rate_hz=None, sigma=None, samples=1)):
        (warning,) = check_wait_config("Q:SET", "Q:RBV", 1.0, 10.0, never)
        assert "never updates" in warning


def test_check_wait_config_messages_name_the_numbers():
    (warning,) = check_wait_config("Q:SET", "Q:RBV", 0.1, 1.0, stats())
    assert "tolerance 0.1" in warning and "sigma 0.05" in warning and "0.15" in warning


# --- against the soft IOC: a mirror with a dead time ------------------------------------------
DEAD_IOC = {"update_rate": 20.0, "time_scale": 2.0}  # dt 0.1 simulated s per 50 ms step
DEAD_DT = DEAD_IOC["time_scale"] / DEAD_IOC["update_rate"]


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_step_test_recovers_the_soft_iocs_dead_time_within_one_update_step(seed, softioc_factory):
    """The soft IOC's lag starts at the step due dead_time after the one the put followed, its first
    move a step later; the put's phase within a step puts the fitted start up to one step before
    dead_time (a soft IOC without one fits 0, as test_measure shows)."""
    ioc = softioc_factory({"ioc": {**DEAD_IOC, "seed": seed}, "setpoint": [
        {"name": "D:SET", "readback": "D:RBV", "limits": [0.0, 2.0], "lag": "first_order", "tau": 0.4,
         "noise": 0.01, "offset": 0.1, "dead_time": 0.3}]})
    entry = step_test({"D:SET": "D:RBV"}, 1.0, write_test=True, hold=1.0, conf=ioc.client_conf())["D:SET"]
    scale = DEAD_IOC["time_scale"]  # the fit is in wall seconds; the config in simulated ones
    assert entry["lag"] == "first_order"
    assert entry["tau_s"] * scale == pytest.approx(0.4, rel=0.15)
    assert entry["dead_time_s"] * scale == pytest.approx(0.3, abs=DEAD_DT), entry["dead_time_s"]
    # seen 0.13 under a full parallel test run (late steps off the curve); 0.097 to 0.100 alone
    assert entry["offset"] == pytest.approx(0.1, abs=0.05)
