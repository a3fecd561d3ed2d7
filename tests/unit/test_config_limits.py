"""The loader's limits: what a config may ask for in all, and how long loading it may take.

Every limit is checked before the work it guards (no name is generated for a document that
asks for too many), and every refusal is a ConfigError naming the key and the limit.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from softioc import ConfigError, Machine, SoftIOC, load_config
from softioc.config import BOUNDS, MAX_NAME_BYTES, MAX_PVS, MAX_RANGE, with_overrides
from softioc.config import _ranges as ranges


def _observables_of_setpoints(count: int) -> dict:
    return {
        "setpoint_range": [{"name": "SP:{i}:SET", "readback": "SP:{i}:RBV", "count": count}],
        "observable_range": [{"name": "OB:{i}", "expression": "2 * x", "inputs": {"x": "SP:{i}:SET"},
                              "count": count}],
    }


# 46,000 observables loaded: 35 s under coverage on 2 cores beside two busy processes
@pytest.mark.timeout(240)
def test_twenty_thousand_observables_of_setpoints_load_in_linear_time():
    """Ten times the observables take about ten times as long to load, not a hundred.

    Measured on 2 cores: 20,000 took 21 s quiet (30.5 s under load) before the input check was
    linear (it built a set of the setpoint names per input), 0.9 s after, as with readbacks as
    inputs (1.0 s). The best of a few runs of each size, compared in one test, so that the
    load on the machine moves both alike: linear gave 10-20 (under load), the quadratic check
    about 75.
    """
    def best(count: int, runs: int) -> float:
        times = []
        for _ in range(runs):
            began = time.monotonic()
            config = load_config(_observables_of_setpoints(count))
            times.append(time.monotonic() - began)
        assert len(config.observables) == count and config.observables[-1].inputs == {"x": f"SP:{count - 1}:SET"}
        return min(times)

    small, large = best(2_000, 3), best(20_000, 2)
    assert large / small < 50, f"2,000 observables load in {small:.3f} s, 20,000 in {large:.3f} s"


def test_an_input_that_is_no_pv_of_the_ioc_is_still_named():
    doc = _observables_of_setpoints(3)
    doc["observable"] = [{"name": "LOST", "expression": "x", "inputs": {"x": "NOWHERE"}}]
    with pytest.raises(ConfigError, match=r"\[\[observable\]\] #1 \('LOST'\): key 'inputs.x' names 'NOWHERE'"):
        load_config(doc)


@pytest.fixture
def names_made(monkeypatch):
    """Counts the names the ranges generate (so a test sees a refusal came before them)."""
    made = []
    real = ranges.format_pattern

    def counting(pattern: str, i: int) -> str:
        made.append(i)
        return real(pattern, i)

    monkeypatch.setattr(ranges, "format_pattern", counting)
    return made


def test_several_ranges_each_under_the_range_cap_are_refused_together(names_made):
    pair = {"readback": "B{i}:RBV", "count": 60_000}
    doc = {"setpoint_range": [{"name": "A{i}:SET", **pair}, {"name": "B{i}:SET", **pair}]}
    assert 60_000 <= MAX_RANGE
    with pytest.raises(ConfigError, match=r"<dict>: the ranges \(\[\[setpoint_range\]\] #1 \('A\{i\}:SET'\) "
                                          r"120,000; \[\[setpoint_range\]\] #2 .* would make 240,000 PVs "
                                          rf"with the other tables' 0; the total limit is {MAX_PVS:,}"):
        load_config(doc)
    assert len(names_made) <= 8  # refused before the names were generated (a few are sized)


def test_the_ordinary_tables_count_towards_the_total():
    doc = {"setpoint_range": [{"name": "A{i}", "readback": "R{i}", "count": MAX_PVS // 2}],
           "observable": [{"name": "OBJ", "expression": "1"}]}
    with pytest.raises(ConfigError, match=rf"would make {MAX_PVS + 1:,} PVs with the other tables' 1; "
                                          rf"the total limit is {MAX_PVS:,}"):
        load_config(doc)


def test_many_ordinary_tables_are_counted_too():
    doc = {"setpoint": [{"name": f"S{i}", "readback": f"R{i}"} for i in range(MAX_PVS // 2)],
           "observable": [{"name": "OBJ", "expression": "1"}]}
    with pytest.raises(ConfigError, match=rf"<dict>: the \[\[setpoint\]\] and \[\[observable\]\] tables make "
                                          rf"{MAX_PVS + 1:,} PVs; the total limit is {MAX_PVS:,}"):
        load_config(doc)


def test_long_names_times_a_large_count_are_refused_before_they_are_made(names_made):
    long = "X" * 900 + ":{i:06d}"
    doc = {"setpoint_range": [{"name": long + ":SET", "readback": long + ":RBV", "count": 100_000}]}
    with pytest.raises(ConfigError, match=r"\[\[setpoint_range\]\] #1 .* would make 1\d\d,\d{3},\d{3} bytes of PV "
                                          rf"names; the total limit is {MAX_NAME_BYTES:,}"):
        load_config(doc)
    assert len(names_made) <= 8


@pytest.mark.parametrize("pattern, problem", [
    ("Q{i:01000000000d}", r"asks for a field of 1,000,000,000 characters; a name has at most 1000"),
    ("Q{i:.99999999999999999999f}", r"asks for a field of 99,999,999,999,999,999,999 characters"),
    ("Q{i:" + "9" * 5000 + "d}", r"asks for a field of a number of 5,000 digits"),
    ("Q" * 995 + "{i:08d}", r"makes names of up to 1,003 bytes; the limit is 1000"),
])
def test_a_pattern_making_names_longer_than_a_name_may_be_is_refused_before_any_is_made(pattern, problem, names_made):
    with pytest.raises(ConfigError, match=rf"\[\[setpoint_range\]\] #1 .*key 'name' pattern .*{problem}"):
        load_config({"setpoint_range": [{"name": pattern, "count": 10}]})
    assert len(names_made) <= 2


def test_a_range_starting_beyond_any_index_a_name_holds_is_refused():
    with pytest.raises(ConfigError, match=r"key 'start' must be <= 1,000,000,000,000,000, got an integer of 401 digits"):
        load_config({"setpoint_range": [{"name": "A{i}", "count": 1, "start": 10**400}]})


# ---- every time and rate has a floor and a ceiling -------------------------------------------------

def _with(key: str, value: float) -> dict:
    """A small config giving `value` to `key` ('table.key'), every other number valid."""
    table, name = key.split(".")
    setpoint = {"name": "A", "readback": "A:RBV", "lag": "rate" if name == "rate" else "first_order"}
    observable = {"name": "O", "expression": "a", "inputs": {"a": "A:RBV"}}
    doc = {"ioc": {"update_rate": 1000.0}, "setpoint": [setpoint], "observable": [observable]}
    {"ioc": doc["ioc"], "setpoint": setpoint, "observable": observable}[table][name] = value
    return doc


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_every_time_and_rate_is_refused_below_its_floor_and_above_its_ceiling(key):
    bound = BOUNDS[key]
    below = bound.low / 10 if bound.low > 0 else -1e-9
    for value in (below, bound.high * 10):
        with pytest.raises(ConfigError) as info:
            load_config(_with(key, value))
        assert f"key '{key.split('.')[1]}' must be within {bound.shown()}, got {value!r}" in str(info.value)
    for value in (bound.low, bound.high):  # the bounds themselves are allowed
        load_config(_with(key, value))


def test_the_bounds_are_the_ones_documented():
    assert (BOUNDS["ioc.update_rate"].low, BOUNDS["ioc.update_rate"].high) == (0.01, 1000.0)
    assert BOUNDS["setpoint.dead_time"].shown() == "[0, 3600] s"


def test_a_fault_rate_has_a_ceiling_too():
    doc = {"setpoint": [{"name": "A", "readback": "A:RBV"}],
           "fault": [{"pv": "A", "kind": "slow_readback", "rate": 1e9}]}
    with pytest.raises(ConfigError, match=r"\[\[fault\]\] #1: fault 'slow_readback': rate must be within \[0, 1000\]"):
        load_config(doc)


# ---- what the update loop cannot run ------------------------------------------------------------

def _loaded(pairs: int, rate: float, processes: int = 1) -> dict:
    return {"ioc": {"update_rate": rate, "processes": processes},
            "setpoint_range": [{"name": "A{i}", "readback": "R{i}", "count": pairs}]}


@pytest.mark.timeout(180)  # configs of 30,000 PVs loaded: 18 s under coverage and load
def test_more_pv_updates_than_one_update_loop_can_run_are_refused():
    with pytest.raises(ConfigError, match=r"<dict>: \[ioc\] update_rate 200 Hz steps 60,000 PVs in each of 1 "
                                          r"process\(es\): 12,000,000 PV updates a second, beyond the 5,000,000 "
                                          r"one update loop can run; lower update_rate or raise processes"):
        load_config(_loaded(30_000, 200.0))
    assert load_config(_loaded(30_000, 200.0, processes=3)).ioc.processes == 3  # 4,000,000 each
    with pytest.raises(ConfigError, match=r"steps 20,000 PVs in each of 3 process\(es\)"):
        with_overrides(_loaded(30_000, 200.0, processes=3), {"ioc": {"update_rate": 300.0}})


def test_a_soft_ioc_given_more_than_its_loop_can_run_refuses_before_serving():
    """A machine's config asks for 3 processes; one process given all of it is refused."""
    config = load_config(_loaded(30_000, 200.0, processes=3))
    one = dataclasses.replace(config, ioc=dataclasses.replace(config.ioc, processes=1))
    with pytest.raises(ConfigError, match=r"12,000,000 PV updates a second"):
        SoftIOC(one)


def test_a_machine_of_fewer_processes_than_its_config_asks_is_checked_for_them():
    with pytest.raises(ConfigError, match=r"steps 30,000 PVs in each of 2 process\(es\): 6,000,000 PV updates"):
        Machine(_loaded(30_000, 200.0, processes=3), processes=2)


def test_a_fault_drift_has_a_floor_and_a_ceiling():
    doc = {"setpoint": [{"name": "A", "readback": "A:RBV"}],
           "fault": [{"pv": "A", "kind": "readback_bias", "drift": -1e300}]}
    with pytest.raises(ConfigError, match=r"fault 'readback_bias': drift must be within \[-1e\+15, 1e\+15\], got -1e\+300"):
        load_config(doc)
