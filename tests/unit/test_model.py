"""The pure simulation (no network): lag, noise, offset, limits, types, fault modifiers."""

import math

import numpy as np
import pytest

from softioc import load_config
from softioc.faults import ReadbackEffect
from softioc.model import Device, Observable, PutRefused, Simulation, rng_for


def device(seed=0, **table):
    config = load_config({"setpoint": [{"name": "X:SET", "readback": "X:RBV", **table}]})
    return Device(config.setpoints[0], seed)


def simulation(update_rate=10.0, time_scale=1.0, seed=0, setpoints=(), observables=()):
    return Simulation(load_config({
        "ioc": {"seed": seed, "update_rate": update_rate, "time_scale": time_scale},
        "setpoint": list(setpoints), "observable": list(observables),
    }))


def test_rng_depends_only_on_seed_and_name():
    draw = [rng_for(7, "A").normal() for _ in range(2)]
    assert draw[0] == draw[1]
    assert rng_for(7, "A").normal() != rng_for(8, "A").normal()
    assert rng_for(7, "A").normal() != rng_for(7, "B").normal()


def test_step_is_time_scale_over_update_rate():
    sim = simulation(update_rate=20.0, time_scale=5.0, setpoints=[{"name": "X"}])
    assert sim.dt == 0.25
    for _ in range(8):
        sim.step()
    assert (sim.steps, sim.time) == (8, 2.0)


def test_first_order_lag_is_exact():
    dev = device(lag="first_order", tau=0.5)
    dev.set(dev.coerce(2.0))
    dt = 0.05
    values = []
    for _ in range(40):
        dev.advance(dt)
        values.append(dev.sample())
    expected = [2.0 * (1.0 - math.exp(-(k + 1) * dt / 0.5)) for k in range(40)]
    assert values == pytest.approx(expected, rel=1e-12)
    # after one time constant (10 steps of 0.05 s): 63.2 % of the way
    assert values[9] / 2.0 == pytest.approx(1.0 - math.exp(-1.0), rel=1e-12)


def test_first_order_does_not_depend_on_step_size():
    coarse, fine = device(lag="first_order", tau=1.0), device(lag="first_order", tau=1.0)
    for dev in (coarse, fine):
        dev.set(1.0)
    for _ in range(10):
        coarse.advance(0.1)
    for _ in range(100):
        fine.advance(0.01)
    assert coarse.sample() == pytest.approx(fine.sample(), rel=1e-12)


def test_rate_lag_ramps_at_rate_units_per_second_and_stops_on_target():
    dev = device(lag="rate", rate=2.0, initial=1.0)
    dev.set(2.0)
    values = []
    for _ in range(8):
        dev.advance(0.1)
        values.append(dev.sample())
    assert values == pytest.approx([1.2, 1.4, 1.6, 1.8, 2.0, 2.0, 2.0, 2.0], abs=1e-12)
    dev.set(-1.0)  # and down again, at the same rate
    for _ in range(5):
        dev.advance(0.25)
    assert dev.sample() == pytest.approx(-0.5, abs=1e-12)
    dev.advance(1.0)
    assert dev.sample() == -1.0


def test_no_lag_follows_at_the_next_step():
    dev = device()
    dev.set(3.5)
    assert dev.sample() == 0.0  # not before the model advances
    dev.advance(0.1)
    assert dev.sample() == 3.5


def test_offset_settles_at_setpoint_plus_offset():
    dev = device(lag="first_order", tau=0.1, offset=0.25)
    dev.set(1.0)
    for _ in range(200):
        dev.advance(0.05)
    assert dev.sample() == pytest.approx(1.25, abs=1e-12)


def test_noise_has_the_configured_spread_and_is_seeded():
    a, b, c = device(seed=3, noise=0.5), device(seed=3, noise=0.5), device(seed=4, noise=0.5)
    draws = {name: [] for name in "abc"}
    for _ in range(4000):
        for name, dev in zip("abc", (a, b, c), strict=True):
            dev.advance(0.1)
            draws[name].append(dev.sample())
    assert draws["a"] == draws["b"]
    assert draws["a"] != draws["c"]
    assert np.std(draws["a"]) == pytest.approx(0.5, rel=0.05)
    assert abs(np.mean(draws["a"])) < 0.05


def test_each_pv_has_its_own_noise_stream():
    """A put on one device does not shift the noise sequence of another."""
    setpoints = [{"name": "A", "readback": "A:RBV", "noise": 0.1}, {"name": "B", "readback": "B:RBV", "noise": 0.1}]
    quiet, busy = simulation(seed=5, setpoints=setpoints), simulation(seed=5, setpoints=setpoints)
    series = {"quiet": [], "busy": []}
    for k in range(50):
        if k % 7 == 0:
            busy.devices["A"].set(float(k))
        series["quiet"].append(quiet.step()["B:RBV"])
        series["busy"].append(busy.step()["B:RBV"])
    assert series["quiet"] == series["busy"]


def test_same_seed_same_simulation_different_seed_differs():
    setpoints = [{"name": "A", "readback": "A:RBV", "noise": 0.01, "lag": "first_order"}]
    observables = [{"name": "O", "expression": "a * 2", "inputs": {"a": "A:RBV"}, "noise": 0.01}]
    runs = []
    for seed in (11, 11, 12):
        sim = simulation(seed=seed, setpoints=setpoints, observables=observables)
        sim.devices["A"].set(1.0)
        runs.append([sim.step() for _ in range(30)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize(
    ("table", "value", "message"),
    [
        ({"limits": [-1, 1], "limit_action": "reject"}, 1.5, "X:SET: 1.5 is outside the limits [-1.0, 1.0]"),
        ({"limits": [-1, 1], "limit_action": "reject"}, -1.0000001, "outside the limits [-1.0, 1.0]"),
        ({}, "abc", "X:SET: 'abc' is not a number"),
        ({}, [1.0, 2.0], "is not a number"),
        ({}, float("nan"), "is not a finite number"),
        ({}, float("inf"), "is not a finite number"),
        ({"type": "int", "limits": [0, 10], "limit_action": "reject"}, 11, "11 is outside the limits [0.0, 10.0]"),
        ({"type": "enum", "choices": ["OFF", "ON"]}, "MAYBE", "'MAYBE' is not one of ['OFF', 'ON']"),
        ({"type": "enum", "choices": ["OFF", "ON"]}, 2, "2 is not a valid index of 2 choices"),
        ({"type": "enum", "choices": ["OFF", "ON"]}, 1.0, "not a valid index"),
        ({"type": "double_array", "length": 2}, [1.0, 2.0, 3.0], "3 elements, at most 2 allowed"),
        ({"type": "double_array", "length": 2}, [1.0, float("nan")], "not finite"),
        ({"type": "double_array", "length": 2, "limits": [0, 1], "limit_action": "reject"}, [0.5, 2.0],
         "2.0 is outside the limits [0.0, 1.0]"),
    ],
)
def test_refused_puts_name_the_pv_and_the_reason(table, value, message):
    dev = device(**table)
    with pytest.raises(PutRefused) as info:
        dev.coerce(value)
    assert message in str(info.value)
    assert str(info.value).startswith("X:SET: ")


def test_accepted_values_are_normalised():
    assert device(limits=[-1, 1]).coerce(1) == 1.0
    assert device(limits=[-1, 1]).coerce(np.float32(0.5)) == 0.5
    assert device(type="int").coerce(2.6) == 2  # truncated, as a longout stores it
    assert device(type="int").coerce(-2.6) == -2
    enum = device(type="enum", choices=["OFF", "ON"])
    assert (enum.coerce("ON"), enum.coerce(0), enum.coerce(np.int32(1))) == (1, 0, 1)
    assert device(type="string").coerce("text") == "text"
    array = device(type="double_array", length=3).coerce([1, 2])
    assert isinstance(array, np.ndarray) and array.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("table", "value", "applied"),
    [
        ({"limits": [-5, 5]}, 7.0, 5.0),  # an ao with DRVH 5 given 7 holds 5
        ({"limits": [-5, 5]}, -9.0, -5.0),
        ({"limits": [-5, 5]}, 4.5, 4.5),
        ({"type": "int", "limits": [0, 100]}, 200, 100),  # as a longout with DRVH 100
        ({"type": "int", "limits": [0, 100]}, -3, 0),
        ({"type": "int", "limits": [0.5, 9.5], "initial": 1}, 10, 9),  # to the whole numbers within the limits
        ({"type": "int", "limits": [0.5, 9.5], "initial": 1}, 0, 1),
    ],
)
def test_puts_beyond_the_limits_are_clamped_to_them(table, value, applied):
    result = device(**table).coerce(value)
    assert result == applied and type(result) is type(applied)


def test_array_puts_are_clamped_element_by_element():
    dev = device(type="double_array", length=3, limits=[0, 1])
    assert dev.coerce([-1.0, 0.5, 2.0]).tolist() == [0.0, 0.5, 1.0]


def test_int_enum_string_and_array_readbacks():
    dev = device(type="int", lag="first_order", tau=1.0, initial=0)
    dev.set(10)
    dev.advance(1.0)
    assert dev.sample() == 6  # 10 * (1 - 1/e) = 6.32, rounded
    assert isinstance(dev.sample(), int)
    enum = device(type="enum", choices=["A", "B", "C"])
    enum.set(2)
    enum.advance(0.1)
    assert enum.sample() == 2
    text = device(type="string", initial="x")
    text.set("y")
    text.advance(0.1)
    assert text.sample() == "y"
    array = device(type="double_array", length=2, lag="rate", rate=1.0)
    array.set(np.array([1.0, -0.25]))
    array.advance(0.5)
    assert array.sample().tolist() == [0.5, -0.25]


def test_stuck_readback_freezes_the_output_including_noise():
    dev = device(noise=0.1, lag="first_order", tau=0.2)
    dev.advance(0.1)
    frozen = dev.sample()
    dev.faults = ReadbackEffect(stuck=True)
    dev.set(5.0)
    for _ in range(20):
        dev.advance(0.1)
        assert dev.sample() == frozen
    dev.faults = ReadbackEffect()
    for _ in range(30):
        dev.advance(0.1)
    assert dev.sample() == pytest.approx(5.0, abs=0.5)


def test_bias_and_drift_and_their_clearing():
    dev = device(initial=1.0)
    dev.faults = ReadbackEffect(bias=0.3)
    dev.advance(0.1)
    assert dev.sample() == pytest.approx(1.3, abs=1e-12)
    dev.faults = ReadbackEffect(drift=2.0)  # units per simulated second
    for _ in range(5):
        dev.advance(0.1)
    assert dev.sample() == pytest.approx(2.0, abs=1e-12)
    dev.faults = ReadbackEffect()  # the drift fault is cleared: the readback is back on target
    dev.advance(0.1)
    assert dev.sample() == pytest.approx(1.0, abs=1e-12)


def test_observable_is_computed_from_readbacks():
    sim = simulation(
        setpoints=[{"name": "Q1", "readback": "Q1:RBV"}, {"name": "Q2", "readback": "Q2:RBV", "offset": 0.5}],
        observables=[{"name": "OBJ", "expression": "(q1 - 1.5)**2 + (q2 + 0.5)**2",
                      "inputs": {"q1": "Q1:RBV", "q2": "Q2"}}],
    )
    assert sim.observed["OBJ"] == pytest.approx(1.5**2 + 0.5**2)
    sim.devices["Q1"].set(1.5)
    sim.devices["Q2"].set(-1.0)
    out = sim.step()
    assert out["Q1:RBV"] == 1.5 and out["Q2:RBV"] == -0.5
    assert out["OBJ"] == pytest.approx(0.0 + 0.25)  # inputs: a readback and a setpoint


def test_observable_math_errors_give_nan():
    config = load_config({
        "setpoint": [{"name": "X"}],
        "observable": [{"name": "O", "expression": "sqrt(x)", "inputs": {"x": "X"}},
                       {"name": "P", "expression": "min() + x", "inputs": {"x": "X"}}],
    })
    sqrt, bad_call = (Observable(ob, 0) for ob in config.observables)
    assert sqrt.compute({"x": 4.0}) == 2.0
    assert math.isnan(sqrt.compute({"x": -1.0}))
    assert math.isnan(bad_call.compute({"x": 1.0}))


def test_observable_noise_is_seeded():
    config = load_config({"setpoint": [{"name": "X"}],
                          "observable": [{"name": "O", "expression": "x", "inputs": {"x": "X"}, "noise": 0.1}]})
    def series(seed):
        observable = Observable(config.observables[0], seed)
        return [observable.compute({"x": 0.0}) for _ in range(5)]

    assert series(1) == series(1) != series(2)
