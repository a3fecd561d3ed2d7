"""The soft IOC as a stand-in for EPICS base records: clamping, alarm limits, the alarm fault.

What EPICS base itself does is measured in test_epics_base.py and compared side by side in
test_differential.py; these tests pin the soft IOC's own rules and errors, without a server
(over the wire: tests/test_fidelity.py).
"""

from __future__ import annotations

import math
import re

import pytest

from softioc import ConfigError, load_config
from softioc.model import AlarmCheck, AlarmLimits

BANDS = {"lolo": -4.0, "low": -3.0, "high": 3.0, "hihi": 4.0}

# ---- alarm limits: the model ------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (0.0, (0, 0, "")), (2.99, (0, 0, "")), (3.0, (1, 1, "HIGH")), (3.99, (1, 1, "HIGH")),
    (4.0, (2, 1, "HIHI")), (1e9, (2, 1, "HIHI")), (-3.0, (1, 1, "LOW")), (-4.0, (2, 1, "LOLO")),
    (math.nan, (0, 0, "")),
])
def test_alarm_bands_follow_an_ai(value, expected):
    assert AlarmCheck(AlarmLimits(**BANDS))(value) == expected


def test_any_subset_of_the_limits_applies():
    check = AlarmCheck(AlarmLimits(hihi=10.0))
    assert [check(v) for v in (-1e6, 9.9, 10.0)] == [(0, 0, ""), (0, 0, ""), (2, 1, "HIHI")]
    low_only = AlarmCheck(AlarmLimits(low=0.0))
    assert [low_only(v)[2] for v in (1.0, 0.0, -5.0)] == ["", "LOW", "LOW"]


def test_an_alarm_is_left_only_past_the_deadband():
    check = AlarmCheck(AlarmLimits(high=2.0, deadband=0.5))
    assert [check(v)[2] for v in (1.9, 2.0, 1.6, 1.5, 1.49, 1.6)] == ["", "HIGH", "HIGH", "HIGH", "", ""]


# ---- config --------------------------------------------------------------------------------------

@pytest.mark.parametrize("table, key, problem", [
    ({"alarm_limits": {"high": 3.0, "hihi": 2.0}}, "alarm_limits", "high = 3.0 must be <= hihi = 2.0"),
    ({"alarm_limits": {"lolo": 0.0, "high": -1.0}}, "alarm_limits", "lolo = 0.0 must be <= high = -1.0"),
    ({"alarm_limits": {"high": math.inf}}, "alarm_limits.high", "must be a finite number, got inf"),
    ({"alarm_limits": {"high": "3"}}, "alarm_limits.high", "must be a finite number, got '3'"),
    ({"alarm_limits": {"major": 3.0}}, "alarm_limits.major", "is not an alarm limit"),
    ({"alarm_limits": {"high": 1.0}, "alarm_deadband": -1.0}, "alarm_deadband", "must be >= 0.0"),
    ({"alarm_deadband": 0.5}, "alarm_deadband", "needs 'alarm_limits'"),
    ({"type": "string", "alarm_limits": {"high": 1.0}}, "alarm_limits", "only for double and int PVs"),
    ({"limit_action": "wrap"}, "limit_action", "must be one of clamp, reject, got 'wrap'"),
    ({"udf": "yes"}, "udf", "must be bool"),
])
def test_bad_fidelity_keys_name_the_file_and_key(tmp_path, table, key, problem):
    lines = ['[[setpoint]]', 'name = "X:SET"']
    lines += [f"{k} = {_toml(v)}" for k, v in table.items()]
    path = tmp_path / "machine.toml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: [[setpoint]] #1 ('X:SET'): key '{key}' "), message
    assert problem in message


def _toml(value):
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def test_an_observable_takes_alarm_limits_too():
    config = load_config({"observable": [{"name": "O", "expression": "1", "alarm_limits": {"hihi": 2}}]})
    assert config.observables[0].alarm_limits == AlarmLimits(hihi=2.0)
    with pytest.raises(ConfigError, match=r"\[\[observable\]\] #1 \('O'\): key 'alarm_limits' must be ordered"):
        load_config({"observable": [{"name": "O", "expression": "1", "alarm_limits": {"low": 2, "high": 1}}]})


def test_a_bad_alarm_fault_in_the_config_names_the_value():
    with pytest.raises(ConfigError, match=re.escape("severity must be one of MINOR, MAJOR, INVALID, got 'BAD'")):
        load_config({"setpoint": [{"name": "X:SET"}],
                     "fault": [{"pv": "X:SET", "kind": "alarm", "severity": "BAD"}]})
