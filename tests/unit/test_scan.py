"""An observable's scan period: recomputed (and reported) only at its scans, as a calc record."""

import pytest

from softioc import ConfigError, load_config
from softioc.model import Simulation, VectorSimulation

SETPOINT = {"name": "S:SET", "readback": "S:RBV", "lag": "none", "noise": 0.0}


def config(**observable):
    return load_config({"ioc": {"update_rate": 20.0}, "setpoint": [SETPOINT],
                        "observable": [{"name": "S:OBJ", "expression": "2 * s", "inputs": {"s": "S:RBV"},
                                        **observable}]})


@pytest.mark.parametrize("kind", [Simulation, VectorSimulation])
def test_a_scanned_observable_holds_its_value_between_scans(kind):
    sim = kind(config(scan=0.5, noise=0.01))  # 10 update steps a scan
    reported = [step for step in range(1, 41) if "S:OBJ" in sim.step()]
    assert reported == [10, 20, 30, 40]
    sim.devices["S:SET"].set(1.0)
    sim.step()  # the readback is there at once; the observable waits for its scan
    assert abs(sim.observed["S:OBJ"]) < 0.1
    for _ in range(9):
        sim.step()
    assert abs(sim.observed["S:OBJ"] - 2.0) < 0.1


def test_without_scan_an_observable_follows_every_step():
    sim = Simulation(config(noise=0.01))
    assert all("S:OBJ" in sim.step() for _ in range(5))


def test_a_scan_shorter_than_a_step_is_every_step():
    sim = Simulation(config(scan=0.01, noise=0.01))
    assert all("S:OBJ" in sim.step() for _ in range(5))


@pytest.mark.parametrize("scan", [0.0, -1.0, 0.001, 3601.0, "fast"])
def test_the_loader_bounds_the_scan_period(scan):
    with pytest.raises(ConfigError, match="scan"):
        config(scan=scan)
