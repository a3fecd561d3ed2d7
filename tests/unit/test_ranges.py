"""Config ranges: many alike PVs from one table, expanded into ordinary setpoints at load time."""

from __future__ import annotations

import pytest

from softioc import ConfigError, load_config


def test_a_setpoint_range_expands_into_ordinary_setpoints():
    config = load_config({
        "setpoint_range": [{"name": "QUAD:{i:03d}:SET", "readback": "QUAD:{i:03d}:RBV", "count": 3,
                            "start": 1, "lag": "first_order", "tau": 0.5, "limits": [-5, 5]}],
        "setpoint": [{"name": "X:SET"}],
    })
    assert [sp.name for sp in config.setpoints] == ["X:SET", "QUAD:001:SET", "QUAD:002:SET", "QUAD:003:SET"]
    assert config.setpoints[3].readback == "QUAD:003:RBV"
    assert {(sp.lag, sp.tau, sp.limits) for sp in config.setpoints[1:]} == {("first_order", 0.5, (-5.0, 5.0))}


def test_an_observable_range_formats_its_inputs():
    config = load_config({
        "setpoint_range": [{"name": "Q{i}:SET", "readback": "Q{i}:RBV", "count": 2}],
        "observable_range": [{"name": "BPM{i}", "expression": "2 * x", "inputs": {"x": "Q{i}:RBV"}, "count": 2}],
    })
    assert [(ob.name, dict(ob.inputs)) for ob in config.observables] == [
        ("BPM0", {"x": "Q0:RBV"}), ("BPM1", {"x": "Q1:RBV"})]


def test_ten_thousand_pairs_are_a_few_lines(tmp_path):
    """Five lines name 20,000 PVs (how fast they load is a figure of devtools.bench.machine_capacity)."""
    path = tmp_path / "big.toml"
    path.write_text('[[setpoint_range]]\nname = "M:{i:05d}:SET"\nreadback = "M:{i:05d}:RBV"\n'
                    'count = 10000\nlag = "first_order"\nnoise = 0.01\n')
    config = load_config(path)
    assert len(config.pv_names()) == 20000
    assert config.pv_names()[:2] == ["M:00000:SET", "M:00000:RBV"] and "M:09999:RBV" in config.pv_names()


@pytest.mark.parametrize("pattern, problem", [
    ("Q{i.real}:SET", "may only use {i}"),
    ("Q{i[0]}:SET", "may only use {i}"),
    ("Q{i!r}:SET", "may only use {i}"),
    ("Q{j}:SET", "may only use {i}"),
    ("Q{}:SET", "may only use {i}"),
    ("Q{i:{i}}:SET", "may only use {i}"),
    ("Q{i:zz}:SET", "bad format spec"),
    ("Q{i:SET", "not a valid format string"),
    ("Q:SET", "has no {i}"),
])
def test_a_bad_pattern_names_file_key_and_pattern(pattern, problem):
    with pytest.raises(ConfigError) as err:
        load_config({"setpoint_range": [{"name": pattern, "count": 2}]})
    message = str(err.value)
    assert "[[setpoint_range]] #1" in message and "'name'" in message and problem in message
    assert repr(pattern) in message


@pytest.mark.parametrize("table, problem", [
    ({"name": "Q{i}", "count": 0}, "key 'count' must be >= 1, got 0"),
    ({"name": "Q{i}"}, "required key 'count' is missing"),
    ({"name": "Q{i}", "count": "3"}, "key 'count' must be int"),
    ({"name": "Q{i}", "count": 2, "start": -1}, "key 'start' must be >= 0"),
    ({"count": 2}, "required key 'name' is missing"),
    ({"name": "Q{i}", "count": 2, "tau": -1}, "i=0 ('Q0'): key 'tau' must be within [1e-06, 1e+06] s, got -1"),
    ({"name": "Q{i}", "count": 2, "colour": "red"}, "unknown key 'colour'"),
    ({"name": "Q{i}", "readback": 3, "count": 2}, "key 'readback' must be a str pattern"),
])
def test_a_bad_range_key_is_named(table, problem):
    with pytest.raises(ConfigError) as err:
        load_config({"setpoint_range": [table]})
    assert problem in str(err.value) and "<dict>: [[setpoint_range]] #1" in str(err.value)


def test_names_made_twice_by_ranges_are_refused():
    with pytest.raises(ConfigError, match="'Q1:SET' is used twice"):
        load_config({"setpoint_range": [{"name": "Q{i}:SET", "count": 2}, {"name": "Q{i}:SET", "count": 2, "start": 1}]})


def test_processes_is_checked():
    assert load_config({"ioc": {"processes": 3}}).ioc.processes == 3
    with pytest.raises(ConfigError, match=r"\[ioc\]: key 'processes' must be within \[1, 64\], got 0"):
        load_config({"ioc": {"processes": 0}})
