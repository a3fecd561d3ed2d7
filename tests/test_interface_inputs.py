"""Inputs to set_values: what is accepted and converted, and what is refused before any put."""

from __future__ import annotations

import math

import numpy as np
import pytest

from epics_pva import Interface, InvalidInputError, PutError, SetValuesError

CONFIG = {
    "ioc": {"seed": 5, "update_rate": 20.0, "time_scale": 10.0},
    "setpoint": [
        {"name": "I:D:SET", "limits": [-10, 10]},
        {"name": "I:FREE:SET"},  # no limits published
        {"name": "I:N:SET", "type": "int", "limits": [0, 100]},
        {"name": "I:MODE", "type": "enum", "choices": ["Off", "On", "Standby"]},
        {"name": "I:NAME", "type": "string"},
        {"name": "I:WAVE", "type": "double_array", "length": 3, "limits": [-1, 1]},
    ],
}


@pytest.fixture
def softioc_config():
    return CONFIG


@pytest.fixture
def interface(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), timeout=0.5, retry_delay=0.05) as itf:
        yield itf


@pytest.mark.parametrize("pv, given, sent", [
    ("I:D:SET", np.float64(1.5), 1.5),
    ("I:D:SET", np.float32(0.5), 0.5),
    ("I:D:SET", np.array(2.5), 2.5),  # 0-d array: p4p itself would refuse it
    ("I:D:SET", 3, 3.0),
    ("I:D:SET", np.int16(-4), -4.0),
    ("I:FREE:SET", 1e6, 1e6),  # no control limits: no range check
    ("I:N:SET", 7, 7),
    ("I:N:SET", 8.0, 8),  # a whole float for an integer PV
    ("I:N:SET", np.int64(9), 9),
    ("I:N:SET", np.array(10), 10),
    ("I:MODE", "Standby", 2),
    ("I:MODE", 1, 1),
    ("I:MODE", np.int32(0), 0),
    ("I:NAME", "quad Q1", "quad Q1"),
    ("I:NAME", np.str_("q2"), "q2"),
])
def test_accepted_inputs_reach_the_server_converted(soft_ioc, interface, pv, given, sent):
    result = interface.set_value(pv, given)
    assert result.status == "set"
    (record,) = soft_ioc.audit.puts(pv)
    assert record.outcome == "accepted" and record.value == sent and type(record.value) is type(sent)


def test_arrays_are_accepted_for_array_pvs(soft_ioc, interface):
    interface.set_value("I:WAVE", [0.1, -0.2, 0.3])
    interface.set_value("I:WAVE", np.array([0.5, 0.5]))
    interface.set_value("I:WAVE", (1, 0, -1))
    sent = [r.value for r in soft_ioc.audit.puts("I:WAVE", outcome="accepted")]
    assert [list(v) for v in sent] == [[0.1, -0.2, 0.3], [0.5, 0.5], [1.0, 0.0, -1.0]]
    np.testing.assert_array_equal(interface.get_value("I:WAVE"), [1.0, 0.0, -1.0])


@pytest.mark.parametrize("inputs, key, why", [
    ({"I:D:SET": math.nan}, "I:D:SET", "nan is not a finite number"),
    ({"I:D:SET": np.float64("inf")}, "I:D:SET", "inf is not a finite number"),
    ({"I:D:SET": np.array(-np.inf)}, "I:D:SET", "-inf is not a finite number"),
    ({"I:D:SET": "abc"}, "I:D:SET", "'abc' is a string, but the PV holds a number"),
    ({"I:D:SET": "3.5"}, "I:D:SET", "'3.5' is a string"),  # p4p would parse it silently
    ({"I:D:SET": [1.0]}, "I:D:SET", "is an array, but the PV holds a single number"),
    ({"I:D:SET": True}, "I:D:SET", "True is a bool"),
    ({"I:D:SET": None}, "I:D:SET", "None is not a value"),
    ({"I:D:SET": 1 + 2j}, "I:D:SET", "complex"),
    ({"I:D:SET": {"value": 1}}, "I:D:SET", "(dict) is not a number"),
    ({"I:D:SET": 10.5}, "I:D:SET", "10.5 is outside the PV's control limits [-10, 10]"),
    ({"I:D:SET": -11}, "I:D:SET", "outside the PV's control limits"),
    ({"I:N:SET": 2.5}, "I:N:SET", "2.5 is not a whole number"),
    ({"I:N:SET": 101}, "I:N:SET", "101 is outside the PV's control limits [0, 100]"),
    ({"I:MODE": "Maybe"}, "I:MODE", "'Maybe' is not one of the PV's choices ('Off', 'On', 'Standby')"),
    ({"I:MODE": 3}, "I:MODE", "index 3 is not a valid choice index"),
    ({"I:MODE": 1.5}, "I:MODE", "neither a choice"),
    ({"I:NAME": 5}, "I:NAME", "5 (int) is not a string"),
    ({"I:WAVE": 0.5}, "I:WAVE", "a single value, but the PV holds an array"),
    ({"I:WAVE": [0.1, math.nan]}, "I:WAVE", "NaN or infinite"),
    ({"I:WAVE": [0.1, 2.0]}, "I:WAVE", "element 1 (2) is outside the PV's control limits [-1, 1]"),
    ({"I:WAVE": [[0.1], [0.2]]}, "I:WAVE", "shape (2, 1)"),
    ({"I:WAVE": ["a", "b"]}, "I:WAVE", "element 0 ('a') is a string, but the PV holds numbers"),
    ({"I:NOSUCH:PV": 1.0}, "I:NOSUCH:PV", "cannot read the PV: no reply within 0.5 s"),
    ({"": 1.0}, "", "empty PV name"),
    ({"I:D:SET ": 1.0}, "I:D:SET ", "whitespace"),
    ({7: 1.0}, "7", "must be a string, not int"),
])
def test_bad_inputs_are_refused_before_any_put(soft_ioc, interface, inputs, key, why):
    with pytest.raises(InvalidInputError) as info:
        interface.set_values(inputs)
    assert key in info.value.problems and why in info.value.problems[key]
    assert f"  {key}: {info.value.problems[key]}" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert soft_ioc.audit.puts() == []


def test_one_bad_input_stops_the_whole_call_and_every_problem_is_listed(soft_ioc, interface):
    with pytest.raises(InvalidInputError) as info:
        interface.set_values({"I:D:SET": 1.0, "I:N:SET": 1000, "I:MODE": "x", "I:NAME": "ok"})
    assert set(info.value.problems) == {"I:N:SET", "I:MODE"}
    assert str(info.value).startswith("Refused to set anything: 2 invalid input(s)")
    assert soft_ioc.audit.puts() == []  # not even the good ones


@pytest.mark.parametrize("inputs, configs, why", [
    ([("I:D:SET", 1.0)], None, "expected a dict of PV name -> value, not list"),
    ({"I:D:SET": 1.0}, ["f"], "expected a dict of PV name -> function, not list"),
    ({"I:D:SET": 1.0}, {"I:D:SET": "wait"}, "is not callable"),
])
def test_malformed_calls_are_refused(soft_ioc, interface, inputs, configs, why):
    with pytest.raises(InvalidInputError, match=why):
        interface.set_values(inputs, configs=configs)
    assert soft_ioc.audit.puts() == []


def test_set_value_raises_the_refusal_itself(soft_ioc, interface):
    with pytest.raises(InvalidInputError, match="I:D:SET: nan is not a finite number"):
        interface.set_value("I:D:SET", float("nan"))
    assert soft_ioc.audit.puts() == []


def test_an_array_longer_than_the_server_takes_is_its_refusal_not_retried(soft_ioc, interface):
    # a PV does not publish its maximum length: the server's own refusal is reported
    with pytest.raises(SetValuesError) as info:
        interface.set_values({"I:WAVE": [0.1, 0.2, 0.3, 0.4]})
    error = info.value.results["I:WAVE"].error
    assert isinstance(error, PutError) and "put rejected by the server" in str(error)
    assert "at most 3 allowed" in str(info.value)
    assert [r.outcome for r in soft_ioc.audit.puts()] == ["rejected"]
