"""A readback's dead time in the pure model (exact steps) and the config checks (over PVAccess:
tests/test_dead_time.py)."""

import math

import pytest

from softioc import load_config
from softioc.config import ConfigError
from softioc.faults import ReadbackEffect
from softioc.model import Simulation, VectorSimulation

SIMULATIONS = [Simulation, VectorSimulation]


def simulation(cls, *setpoints, update_rate=10.0, time_scale=1.0):
    return cls(load_config({"ioc": {"update_rate": update_rate, "time_scale": time_scale},
                            "setpoint": list(setpoints)}))


def readbacks(sim, pv, steps):
    """The readback `pv` after each of the next `steps` update steps."""
    values = []
    for _ in range(steps):
        sim.step()
        values.append(sim.readbacks[pv])
    return values


# ---- the model ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", SIMULATIONS)
@pytest.mark.parametrize(("dead_time", "delay"), [(0.3, 3), (0.26, 3), (0.24, 2), (1.0, 10)])
def test_a_put_waits_round_dead_time_over_dt_steps_then_follows_the_exponential(cls, dead_time, delay):
    tau, dt, target = 0.5, 0.1, 2.0
    sim = simulation(cls, {"name": "X:SET", "readback": "X:RBV", "lag": "first_order", "tau": tau,
                           "dead_time": dead_time},
                     {"name": "Y:SET", "readback": "Y:RBV", "lag": "first_order", "tau": tau})
    readbacks(sim, "X:RBV", 2)
    sim.apply("X:SET", target)
    sim.apply("Y:SET", target)
    values = readbacks(sim, "X:RBV", delay + 20)
    assert sim.readbacks["X:SET"] == target  # the setpoint itself is at once
    assert values[:delay] == [0.0] * delay
    expected = [target * (1.0 - math.exp(-k * dt / tau)) for k in range(1, 21)]
    assert values[delay:] == pytest.approx(expected, rel=1e-12)
    # the device without a dead time beside it moves at the next step, as before
    y = simulation(cls, {"name": "Y:SET", "readback": "Y:RBV", "lag": "first_order", "tau": tau})
    readbacks(y, "Y:RBV", 2)
    y.apply("Y:SET", target)
    assert readbacks(y, "Y:RBV", 5) == pytest.approx(expected[:5], rel=1e-12)


@pytest.mark.parametrize("cls", SIMULATIONS)
def test_two_puts_within_the_dead_time_both_arrive_in_order(cls):
    sim = simulation(cls, {"name": "X:SET", "readback": "X:RBV", "dead_time": 0.5})
    sim.apply("X:SET", 1.0)
    readbacks(sim, "X:RBV", 2)
    sim.apply("X:SET", 2.0)
    values = readbacks(sim, "X:RBV", 10)
    assert sim.readbacks["X:SET"] == 2.0
    # put 1 at step 0 is due at step 6, put 2 at step 2 at step 8
    assert values == [0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize("cls", SIMULATIONS)
def test_a_zero_dead_time_is_the_readback_without_one(cls):
    table = {"name": "X:SET", "readback": "X:RBV", "lag": "rate", "rate": 0.7, "noise": 0.01}
    plain, zero = simulation(cls, table), simulation(cls, {**table, "dead_time": 0.0})
    for sim in (plain, zero):
        sim.apply("X:SET", 1.0)
    assert readbacks(zero, "X:RBV", 30) == readbacks(plain, "X:RBV", 30)


def test_faults_act_on_the_readback_during_and_after_the_dead_time():
    sim = simulation(Simulation, {"name": "X:SET", "readback": "X:RBV", "dead_time": 0.3})
    sim.set_faults({"X:SET": ReadbackEffect(bias=0.5)})
    sim.apply("X:SET", 1.0)
    assert readbacks(sim, "X:RBV", 4) == [0.5, 0.5, 0.5, 1.5]  # the bias at once, the move after 3 steps
    sim.set_faults({"X:SET": ReadbackEffect(stuck=True)})
    sim.apply("X:SET", 3.0)
    assert readbacks(sim, "X:RBV", 5) == [1.5] * 5  # frozen while stuck, though the move fell due
    sim.set_faults({})
    assert readbacks(sim, "X:RBV", 1) == [3.0]


def test_the_vector_path_steps_dead_time_devices_like_the_scalar_one():
    tables = [{"name": f"Q{i}:SET", "readback": f"Q{i}:RBV", "lag": "first_order", "tau": 0.4, "noise": 0.01,
               "dead_time": 0.1 * (i % 3)} for i in range(6)]
    scalar, vector = simulation(Simulation, *tables), simulation(VectorSimulation, *tables)
    for step in range(40):
        if step in (3, 4, 17):
            for sim in (scalar, vector):
                for i in range(6):
                    sim.apply(f"Q{i}:SET", float(step + i))
        scalar.step()
        vector.step()
        assert vector.readbacks == scalar.readbacks, step


# ---- the config ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "problem"), [
    (-0.1, "must be within [0, 3600] s, got -0.1"),
    (math.nan, "must be finite, got nan"),
    (math.inf, "must be finite, got inf"),
    ("0.3", "must be int or float, got '0.3' (str)"),
    (True, "must be int or float, got True (bool)"),
])
def test_a_bad_dead_time_is_refused_naming_the_pv_and_the_value(value, problem):
    with pytest.raises(ConfigError) as info:
        load_config({"setpoint": [{"name": "X:SET", "readback": "X:RBV", "dead_time": value}]})
    assert str(info.value) == f"<dict>: [[setpoint]] #1 ('X:SET'): key 'dead_time' {problem}"


def test_a_dead_time_needs_a_readback():
    with pytest.raises(ConfigError, match=r"\('X:SET'\): key 'dead_time' delays a readback, so it needs a "
                                          r"'readback', got 0.5"):
        load_config({"setpoint": [{"name": "X:SET", "dead_time": 0.5}]})


def test_a_dead_time_from_toml_and_from_a_setpoint_range(tmp_path):
    path = tmp_path / "ioc.toml"
    path.write_text('[[setpoint]]\nname = "A:SET"\nreadback = "A:RBV"\ndead_time = 0.25\n\n'
                    '[[setpoint_range]]\nname = "Q{i}:SET"\nreadback = "Q{i}:RBV"\ncount = 2\ndead_time = 1\n')
    config = load_config(path)
    assert [sp.dead_time for sp in config.setpoints] == [0.25, 1.0, 1.0]
    assert load_config({"setpoint": [{"name": "B:SET", "readback": "B:RBV"}]}).setpoints[0].dead_time == 0.0
    path.write_text('[[setpoint_range]]\nname = "Q{i}:SET"\nreadback = "Q{i}:RBV"\ncount = 2\ndead_time = nan\n')
    with pytest.raises(ConfigError, match=r"\[\[setpoint_range\]\] #1 \('Q\{i\}:SET'\) i=0.*key 'dead_time' "
                                          r"must be finite, got nan"):
        load_config(path)
