"""The array update step: the same values as the per-device step, and only the changed ones."""

from __future__ import annotations

import math

from softioc import load_config
from softioc.faults import NO_EFFECT, ReadbackEffect
from softioc.model import Simulation, VectorSimulation

CONFIG = {
    "ioc": {"seed": 5, "update_rate": 10.0, "time_scale": 3.0},
    "setpoint_range": [
        {"name": "F{i}:SET", "readback": "F{i}:RBV", "count": 6, "lag": "first_order", "tau": 0.7, "noise": 0.02,
         "offset": 0.1},
        {"name": "R{i}:SET", "readback": "R{i}:RBV", "count": 4, "lag": "rate", "rate": 0.5},
        {"name": "N{i}:SET", "readback": "N{i}:RBV", "count": 3},
        {"name": "T{i}:SET", "readback": "T{i}:RBV", "count": 2, "lag": "first_order", "tau": 2.0},
    ],
    "setpoint": [{"name": "I:SET", "readback": "I:RBV", "type": "int", "lag": "rate", "rate": 1.0},
                 {"name": "S:SET", "readback": "S:RBV", "type": "string"},
                 {"name": "ALONE:SET", "lag": "first_order"}],
    "observable": [{"name": "OB", "expression": "f + r", "inputs": {"f": "F0:RBV", "r": "R1:SET"}}],
}


def test_array_steps_give_the_per_device_values_and_report_only_changes():
    config = load_config(CONFIG)
    scalar, vector = Simulation(config), VectorSimulation(config)
    assert len(vector._groups) == 4 and {d.config.name for d in vector._scalar} == {"I:SET", "S:SET", "ALONE:SET"}
    effects = {  # step -> faults acting on a device that step, the same on both
        **{s: {"F2:SET": ReadbackEffect(bias=0.5)} for s in range(10, 14)},
        **{s: {"F3:SET": ReadbackEffect(stuck=True)} for s in range(12, 20)},
        **{s: {"R0:SET": ReadbackEffect(drift=0.3)} for s in (*range(15, 18), 25, 26)},  # drift restarts at 0
    }
    reported_changes = 0
    for step in range(60):
        if step in (3, 30):
            for sim in (scalar, vector):
                for name in ("F0:SET", "F2:SET", "F3:SET", "R0:SET", "R1:SET", "N0:SET", "T1:SET", "I:SET"):
                    sim.devices[name].set(1.0 + step / 10)
                sim.devices["S:SET"].set(f"s{step}")
        for sim in (scalar, vector):
            for name, device in sim.devices.items():
                device.faults = effects.get(step, {}).get(name, NO_EFFECT)
        full, changed = scalar.step(), vector.step()
        for name, value in changed.items():
            assert full[name] == value or (math.isnan(value) and math.isnan(full[name])), (step, name)
        for name, value in full.items():  # what is not reported is what did not change
            assert vector.readbacks.get(name, vector.observed.get(name)) == value, (step, name)
        reported_changes += len(changed)
        assert vector.observed == scalar.observed
    assert reported_changes < 60 * len(full)  # settled noiseless readbacks were left out


def test_a_settled_noiseless_machine_reports_nothing():
    config = load_config({"setpoint_range": [{"name": "Q{i}:SET", "readback": "Q{i}:RBV", "count": 1000,
                                              "lag": "rate", "rate": 10.0}]})
    sim = VectorSimulation(config)
    sim.devices["Q7:SET"].set(0.5)
    assert sim.step() == {"Q7:RBV": 0.5}
    assert [sim.step() for _ in range(5)] == [{}] * 5


def test_a_readback_is_reported_again_the_step_its_fault_ends():
    # a rate-limited readback may not have been posted: the step after its fault it is offered again
    config = load_config({"setpoint_range": [{"name": "Q{i}:SET", "readback": "Q{i}:RBV", "count": 3}]})
    sim = VectorSimulation(config)
    sim.devices["Q1:SET"].set(2.0)
    sim.devices["Q1:SET"].faults = ReadbackEffect(rate=0.0)
    assert sim.step() == {"Q1:RBV": 2.0}
    assert sim.step() == {"Q1:RBV": 2.0}  # while a fault acts: every step, as the per-device path
    sim.devices["Q1:SET"].faults = NO_EFFECT
    assert sim.step() == {"Q1:RBV": 2.0}  # released: once more
    assert sim.step() == {}


def test_noise_drawn_a_block_at_a_time_is_the_per_device_noise_across_blocks_and_faults():
    # more noisy devices than a block is long, faults starting and ending on either side of
    # block boundaries: every readback is still the per-device path's, bit for bit
    config = load_config({"ioc": {"seed": 11}, "setpoint_range": [
        {"name": "P{i}:SET", "readback": "P{i}:RBV", "count": 80, "lag": "first_order", "tau": 0.4,
         "noise": 0.05}]})
    scalar, vector = Simulation(config), VectorSimulation(config)
    kinds = [ReadbackEffect(stuck=True), ReadbackEffect(bias=0.2), ReadbackEffect(rate=1.0),
             ReadbackEffect(drift=0.1)]

    def effect(step: int, index: int) -> ReadbackEffect:
        begins = (index * 7) % 150
        return kinds[index % 4] if begins <= step < begins + 5 + index % 70 else NO_EFFECT

    for step in range(260):
        for sim in (scalar, vector):
            for index, device in enumerate(sim.devices.values()):
                device.faults = effect(step, index)
        full, changed = scalar.step(), vector.step()
        assert changed == {name: value for name, value in full.items() if name in changed}, step
        assert {name: vector.readbacks[name] for name in full} == full, step
