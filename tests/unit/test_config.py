"""Config loading: the shipped demo works as written; bad configs name the file and the key."""

import copy
import dataclasses
import re

import pytest

from softioc import ConfigError, IOCConfig, load_config
from softioc.faults import Outage, PutReject, PutTimeout, StuckReadback
from softioc.pytest_plugin import demo_config_path

# the example of the soft IOC issue, verbatim
ISSUE_EXAMPLE = """\
[ioc]
seed = 7
update_rate = 20.0   # readback updates per second
time_scale = 1.0     # simulated seconds per wall-clock second

[[setpoint]]
name = "DEMO:Q1:SET"
readback = "DEMO:Q1:RBV"
initial = 0.0
limits = [-10.0, 10.0]
lag = "first_order"
tau = 0.5
noise = 0.002
offset = 0.0

[[setpoint]]
name = "DEMO:Q2:SET"
readback = "DEMO:Q2:RBV"
lag = "rate"
rate = 2.0

[[observable]]
name = "DEMO:OBJ"
expression = "(q1 - 1.5)**2 + (q2 + 0.5)**2"
inputs = { q1 = "DEMO:Q1:RBV", q2 = "DEMO:Q2:RBV" }
noise = 0.001
"""

BASE = {
    "ioc": {"seed": 1, "update_rate": 10.0},
    "setpoint": [
        {"name": "A:SET", "readback": "A:RBV", "limits": [-1.0, 1.0], "lag": "first_order", "tau": 0.5},
        {"name": "B:SET", "readback": "B:RBV"},
    ],
    "observable": [{"name": "OBJ", "expression": "a + b", "inputs": {"a": "A:RBV", "b": "B:RBV"}}],
}


def test_the_issue_example_loads_as_written(tmp_path):
    path = tmp_path / "issue.toml"
    path.write_text(ISSUE_EXAMPLE)
    config = load_config(path)
    assert config.source == str(path)
    assert (config.ioc.seed, config.ioc.update_rate, config.ioc.time_scale) == (7, 20.0, 1.0)
    q1, q2 = config.setpoints
    assert (q1.name, q1.readback, q1.lag, q1.tau, q1.noise, q1.limits) == (
        "DEMO:Q1:SET", "DEMO:Q1:RBV", "first_order", 0.5, 0.002, (-10.0, 10.0))
    assert (q2.lag, q2.rate, q2.initial, q2.limits, q2.type) == ("rate", 2.0, 0.0, None, "double")
    (obj,) = config.observables
    assert dict(obj.inputs) == {"q1": "DEMO:Q1:RBV", "q2": "DEMO:Q2:RBV"}
    assert obj.noise == 0.001
    assert config.pv_names() == ["DEMO:Q1:SET", "DEMO:Q1:RBV", "DEMO:Q2:SET", "DEMO:Q2:RBV", "DEMO:OBJ"]


def test_shipped_demo_matches_the_issue_example(tmp_path):
    """The shipped demo is the issue's example, but for its setpoints' starting values and Q2's
    limits: a running machine's setpoints are not at 0 (Badger's "Automatic" range is a share of
    the current value) and publish limits (an environment reads its bounds from them)."""
    path = tmp_path / "issue.toml"
    path.write_text(ISSUE_EXAMPLE)
    demo = load_config(demo_config_path())
    issue = load_config(path)
    q1, q2 = issue.setpoints
    started = (dataclasses.replace(q1, initial=0.5), dataclasses.replace(q2, initial=-1.0, limits=(-10.0, 10.0)))
    assert (demo.ioc, demo.setpoints, demo.observables) == (issue.ioc, started, issue.observables)


def test_dict_and_config_objects_are_accepted():
    config = load_config(copy.deepcopy(BASE))
    assert isinstance(config, IOCConfig) and config.source == "<dict>"
    assert load_config(config) is config
    assert config.setpoints[1].lag == "none" and config.ioc.time_scale == 1.0


def test_every_pv_type_and_its_defaults():
    config = load_config({"setpoint": [
        {"name": "I", "type": "int", "initial": 3, "limits": [0, 10]},
        {"name": "E", "type": "enum", "choices": ["OFF", "ON"], "initial": "ON"},
        {"name": "S", "type": "string"},
        {"name": "W", "type": "double_array", "length": 3, "units": "mm", "precision": 2},
        {"name": "W1", "type": "double_array"},
    ]})
    i, e, s, w, w1 = config.setpoints
    assert (i.initial, i.limits) == (3, (0.0, 10.0))
    assert (e.initial, e.choices) == (1, ("OFF", "ON"))
    assert s.initial == ""
    assert (w.initial, w.length, w.units, w.precision) == ([0.0, 0.0, 0.0], 3, "mm", 2)
    assert (w1.initial, w1.length) == ([0.0], 1)


def test_faults_at_start_and_scheduled():
    data = copy.deepcopy(BASE)
    data["fault"] = [
        {"pv": "A:SET", "kind": "put_timeout", "count": 2, "apply": True},
        {"pv": "A:SET", "kind": "stuck_readback", "at": 3},
        {"pv": "B:RBV", "kind": "outage", "duration": 0.5, "at": 1.5},
        {"pv": "*", "kind": "outage", "duration": 2.0},
        {"pv": "B:SET", "kind": "put_reject", "message": "interlock", "probability": 0.25},
    ]
    faults = load_config(data).faults
    assert [(f.pv, f.fault, f.at) for f in faults] == [
        ("A:SET", PutTimeout(count=2, apply=True), None),
        ("A:SET", StuckReadback(), 3.0),
        ("B:RBV", Outage(duration=0.5), 1.5),
        ("*", Outage(duration=2.0), None),
        ("B:SET", PutReject(message="interlock", probability=0.25), None),
    ]


def mutate(path, value):
    """A copy of BASE with the item at `path` (keys and indices) set, or deleted if value is DELETE."""
    data = copy.deepcopy(BASE)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


DELETE = object()
SP1 = r"\[\[setpoint\]\] #1 \('A:SET'\)"

BAD = [
    # (id, path, value, patterns the message must match)
    ("unknown top-level key", ("setpoints",), [], [r"unknown key 'setpoints'"]),
    ("unknown [ioc] key", ("ioc", "sed"), 3, [r"\[ioc\]", r"unknown key 'sed'"]),
    ("unknown setpoint key", ("setpoint", 0, "tua"), 1.0, [SP1, r"unknown key 'tua'"]),
    ("unknown observable key", ("observable", 0, "expr"), "a", [r"\[\[observable\]\] #1 \('OBJ'\)", "unknown key 'expr'"]),
    ("seed as string", ("ioc", "seed"), "7", [r"\[ioc\]", r"key 'seed' must be int, got '7' \(str\)"]),
    ("seed as float", ("ioc", "seed"), 7.5, [r"key 'seed' must be int"]),
    ("update_rate as string", ("ioc", "update_rate"), "fast", [r"key 'update_rate' must be int or float"]),
    ("update_rate zero", ("ioc", "update_rate"), 0, [r"key 'update_rate' must be within \[0.01, 1000\] Hz, got 0"]),
    ("time_scale negative", ("ioc", "time_scale"), -1.0, [r"key 'time_scale' must be within \[0.001, 1000\] simulated s per wall s, got -1.0"]),
    ("tau as bool", ("setpoint", 0, "tau"), True, [SP1, r"key 'tau' must be int or float, got True \(bool\)"]),
    ("noise negative", ("setpoint", 0, "noise"), -0.1, [SP1, r"key 'noise' must be >= 0"]),
    ("name as number", ("setpoint", 0, "name"), 5, [r"\[\[setpoint\]\] #1", r"key 'name' must be str"]),
    ("name with space", ("setpoint", 0, "name"), "A SET", [r"key 'name' must be a PV name without spaces"]),
    ("name missing", ("setpoint", 1, "name"), DELETE, [r"\[\[setpoint\]\] #2", r"required key 'name' is missing"]),
    ("limits as string", ("setpoint", 0, "limits"), "[-1, 1]", [SP1, r"key 'limits' must be list"]),
    ("limits reversed", ("setpoint", 0, "limits"), [1.0, -1.0], [SP1, r"key 'limits' must be \[low, high\]"]),
    ("limits of three", ("setpoint", 0, "limits"), [1, 2, 3], [SP1, r"key 'limits'"]),
    ("initial outside limits", ("setpoint", 0, "initial"), 5.0, [SP1, r"key 'initial' 5.0 is outside the limits"]),
    ("initial as string", ("setpoint", 0, "initial"), "zero", [SP1, r"key 'initial' must be int or float"]),
    ("unknown lag", ("setpoint", 0, "lag"), "second_order", [SP1, r"key 'lag' must be one of none, first_order, rate"]),
    ("unknown type", ("setpoint", 0, "type"), "float", [SP1, r"key 'type' must be one of"]),
    ("setpoint table not a table", ("setpoint", 1), "B:SET", [r"\[\[setpoint\]\] #2: expected a table"]),
    ("ioc not a table", ("ioc",), [1], [r"key 'ioc' must be Mapping"]),
    ("duplicate setpoint name", ("setpoint", 1, "name"), "A:SET",
     [r"PV name 'A:SET' is used twice \(as the setpoint of \[\[setpoint\]\] #1 and as the setpoint of \[\[setpoint\]\] #2\)"]),
    ("duplicate readback name", ("setpoint", 1, "readback"), "A:RBV", [r"PV name 'A:RBV' is used twice"]),
    ("observable named like a readback", ("observable", 0, "name"), "B:RBV",
     [r"PV name 'B:RBV' is used twice .*\[\[observable\]\] #1"]),
    ("readback that is a setpoint", ("setpoint", 0, "readback"), "B:SET",
     [SP1, r"key 'readback' names 'B:SET', which is also a setpoint"]),
    ("readback equal to its own setpoint", ("setpoint", 0, "readback"), "A:SET",
     [SP1, r"key 'readback' names 'A:SET', which is also a setpoint"]),
    ("expression with unknown input", ("observable", 0, "expression"), "a + c",
     [r"\[\[observable\]\] #1 \('OBJ'\)", r"key 'expression'", r"unknown name 'c'"]),
    ("expression importing", ("observable", 0, "expression"), "__import__('os')",
     [r"key 'expression'", r"function '__import__' is not allowed"]),
    ("expression with attribute access", ("observable", 0, "expression"), "a.real",
     [r"key 'expression'", r"Attribute"]),
    ("input naming an unknown PV", ("observable", 0, "inputs", "b"), "NOPE",
     [r"\[\[observable\]\] #1 \('OBJ'\)", r"key 'inputs.b' names 'NOPE', which is not a setpoint or readback"]),
    ("input not an identifier", ("observable", 0, "inputs", "1b"), "B:RBV", [r"key 'inputs.1b' must map an identifier"]),
    ("PV inside the control prefix", ("setpoint", 1, "name"), "SOFTIOC:X", [r"'SOFTIOC:X' is inside the control prefix"]),
]


@pytest.mark.parametrize(("path", "value", "patterns"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_dict_config_names_the_key(path, value, patterns):
    with pytest.raises(ConfigError) as info:
        load_config(mutate(path, value))
    message = str(info.value)
    assert message.startswith("<dict>: ")
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)


def to_toml(data):
    """A tiny TOML writer for the shapes used here (so a test config is a real file)."""
    def scalar(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        if isinstance(value, dict):
            return "{ " + ", ".join(f'"{k}" = {scalar(v)}' for k, v in value.items()) + " }"
        return repr(value)

    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f'"{k}" = {scalar(v)}' for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for table in value:
                lines.append(f"[[{key}]]")
                lines += [f'"{k}" = {scalar(v)}' for k, v in table.items()]
        else:
            lines.insert(0, f'"{key}" = {scalar(value)}')
    return "\n".join(lines) + "\n"


FILE_CASES = [b for b in BAD if b[0] not in ("setpoint table not a table", "ioc not a table", "unknown top-level key")]


@pytest.mark.parametrize(("path", "value", "patterns"), [b[1:] for b in FILE_CASES], ids=[b[0] for b in FILE_CASES])
def test_bad_toml_file_names_the_file_and_the_key(tmp_path, path, value, patterns):
    config_file = tmp_path / "machine.toml"
    config_file.write_text(to_toml(mutate(path, value)))
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    message = str(info.value)
    assert message.startswith(f"{config_file}: ")
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)


def test_the_toml_writer_round_trips(tmp_path):
    config_file = tmp_path / "machine.toml"
    config_file.write_text(to_toml(BASE))
    assert load_config(config_file).setpoints == load_config(BASE).setpoints


def test_unreadable_files(tmp_path):
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: no such config file")):
        load_config(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[ioc]\nseed = = 7\n")
    with pytest.raises(ConfigError, match=re.escape(f"{broken}: invalid TOML")):
        load_config(broken)


TYPE_CASES = [
    ({"name": "S", "type": "string", "lag": "rate"}, r"key 'lag' must be 'none' for a string PV"),
    ({"name": "S", "type": "string", "noise": 0.1}, r"key 'noise' is only for numeric PVs"),
    ({"name": "S", "type": "string", "limits": [0, 1]}, r"key 'limits' is only for numeric PVs"),
    ({"name": "E", "type": "enum"}, r"key 'choices' must be a non-empty list of strings"),
    ({"name": "E", "type": "enum", "choices": ["A", 1]}, r"key 'choices' must be a non-empty list"),
    ({"name": "E", "type": "enum", "choices": ["A"], "initial": "B"}, r"key 'initial' 'B' is not one of the choices"),
    ({"name": "E", "type": "enum", "choices": ["A"], "initial": 3}, r"key 'initial' index 3 is outside the 1 choices"),
    ({"name": "D", "choices": ["A"]}, r"key 'choices' is only for enum PVs"),
    ({"name": "D", "length": 3}, r"key 'length' is only for double_array PVs"),
    ({"name": "W", "type": "double_array", "length": 0}, r"key 'length' must be >= 1"),
    ({"name": "W", "type": "double_array", "length": 2, "initial": [1.0]}, r"key 'initial' must be a list of 2 numbers"),
    ({"name": "I", "type": "int", "initial": 1.5}, r"key 'initial' must be int"),
    ({"name": "D", "precision": 2.5}, r"key 'precision' must be int"),
    ({"name": "D", "units": 3}, r"key 'units' must be str"),
]


@pytest.mark.parametrize(("table", "pattern"), TYPE_CASES, ids=[p for _, p in TYPE_CASES])
def test_type_specific_keys(table, pattern):
    with pytest.raises(ConfigError) as info:
        load_config({"setpoint": [table]})
    assert re.search(r"^<dict>: \[\[setpoint\]\] #1 \('\w'\): " + pattern, str(info.value)), str(info.value)


FAULT_CASES = [
    ({"pv": "A:SET", "kind": "melt"}, r"unknown fault kind 'melt'"),
    ({"pv": "A:SET", "kind": "put_timeout", "cnt": 2}, r"fault 'put_timeout' has no parameter 'cnt'"),
    ({"pv": "A:SET", "kind": "put_timeout", "count": "2"}, r"parameter 'count' has the wrong type"),
    ({"pv": "A:SET", "kind": "put_timeout", "apply": 1}, r"parameter 'apply' has the wrong type"),
    ({"pv": "A:SET", "kind": "put_reject", "count": 0}, r"count must be >= 1 or None"),
    ({"pv": "A:SET", "kind": "put_reject", "probability": 1.5}, r"probability must be within \[0, 1\]"),
    ({"pv": "A:SET", "kind": "slow_readback", "rate": -1}, r"rate must be within \[0, 1000\], got -1"),
    ({"pv": "NOPE", "kind": "outage"}, r"key 'pv' 'NOPE' is not served by this soft IOC"),
    ({"pv": "A:RBV", "kind": "stuck_readback"}, r"key 'pv' 'A:RBV' is not a setpoint, so does not take fault 'stuck_readback'"),
    ({"pv": "*", "kind": "put_reject"}, r"key 'pv' '\*' \(the whole server\) does not take fault 'put_reject'"),
    ({"pv": "A:SET", "kind": "outage", "at": -1}, r"key 'at' must be within \[0, 3600\] simulated seconds"),
    ({"pv": "A:SET"}, r"required key 'kind' is missing"),
    ({"kind": "outage"}, r"required key 'pv' is missing"),
]


@pytest.mark.parametrize(("table", "pattern"), FAULT_CASES, ids=[p for _, p in FAULT_CASES])
def test_bad_fault_tables(tmp_path, table, pattern):
    data = copy.deepcopy(BASE)
    data["fault"] = [{"pv": "B:SET", "kind": "put_reject"}, table]
    config_file = tmp_path / "faults.toml"
    config_file.write_text(to_toml(data))
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    assert re.search("^" + re.escape(f"{config_file}: [[fault]] #2") + ": .*" + pattern, str(info.value)), str(info.value)


@pytest.mark.parametrize(("content", "why"), [
    (b"a = " + b"[" * 3000 + b"]" * 3000, "nested too deeply"),
    (b"a = " + b"{b = " * 3000 + b"1" + b"}" * 3000, "nested too deeply"),
    (b"a = '\xff'\n", "not UTF-8"),
])
def test_a_file_tomllib_cannot_read_is_a_config_error(tmp_path, content, why):
    path = tmp_path / "ioc.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=why):
        load_config(path)


def test_a_directory_as_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path)


@pytest.mark.parametrize(("table", "key"), [
    ({"ioc": {"update_rate": 10**400}}, "update_rate"),
    ({"setpoint": [{"name": "A", "tau": 10**400}]}, "tau"),
    ({"setpoint": [{"name": "A", "initial": 10**400}]}, "initial"),
    ({"setpoint": [{"name": "A", "type": "int", "initial": -(10**400)}]}, "initial"),
    ({"setpoint": [{"name": "A", "type": "double_array", "initial": [10**400]}]}, "initial"),
    ({"setpoint": [{"name": "A", "limits": [0, 10**400]}]}, "limits"),
])
def test_an_integer_beyond_float_range_is_a_config_error_naming_the_key(table, key):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        load_config(table)


def test_an_observable_input_key_that_is_not_a_string_is_a_config_error():
    table = {"setpoint": [{"name": "A"}], "observable": [{"name": "O", "expression": "1", "inputs": {1: "A"}}]}
    with pytest.raises(ConfigError, match="key 'inputs.1' must map an identifier"):
        load_config(table)


@pytest.mark.parametrize(("name", "why"), [
    ("A\x00B", r"'\\x00', which PVAccess cannot carry"),
    ("A\ud800", r"'\\ud800', which PVAccess cannot carry"),
    ("A\x07", "cannot carry"),
    ("A" * 1001, "1001 characters; the limit is 1000"),
])
def test_a_pv_name_pvaccess_cannot_carry_is_a_config_error(name, why):
    with pytest.raises(ConfigError, match=why):
        load_config({"setpoint": [{"name": name}]})
    with pytest.raises(ConfigError, match=why):
        load_config({"setpoint": [{"name": "OK", "readback": name}]})


@pytest.mark.parametrize(("table", "key", "why"), [
    ({"type": "enum", "choices": ["Off", "O\x00n"]}, "choices[1]", r"'\\x00', which PVAccess cannot carry"),
    ({"type": "enum", "choices": ["Off", "\ud800"]}, "choices[1]", "cannot carry"),
    ({"type": "enum", "choices": ["x" * 1001]}, "choices[0]", "1001 characters long; the limit is 1000"),
    ({"type": "enum", "choices": ["On", "Off", "On"]}, "choices", "repeats a label"),
    ({"units": "m\x00m"}, "units", "cannot carry"),
    ({"units": "m" * 1001}, "units", "the limit is 1000"),
    ({"description": "a\nb"}, "description", r"'\\n', which PVAccess cannot carry"),
    ({"description": "\udfff"}, "description", "cannot carry"),
    ({"precision": 10**9}, "precision", r"within \[0, 17\] decimal places, got 1000000000"),
    ({"precision": -1}, "precision", r"within \[0, 17\]"),
    ({"precision": 10**400}, "precision", "an integer of 401 digits"),
    ({"type": "double_array", "length": 10_000_001}, "length", "10000001 elements; the cap is 10,000,000"),
    ({"type": "double_array", "length": 10**400}, "length", "an integer of 401 digits"),
    ({"type": "double_array", "length": -(10**400)}, "length", ">= 1, got an integer of 401 digits"),
])
def test_text_and_sizes_the_server_cannot_carry_are_config_errors_naming_the_key(table, key, why):
    with pytest.raises(ConfigError, match=f"key '{re.escape(key)}' .*{why}"):
        load_config({"setpoint": [{"name": "A", **table}]})


@pytest.mark.parametrize("table", [
    {"observable": [{"name": "O", "expression": "1", "units": "u\x00"}]},
    {"observable": [{"name": "O", "expression": "1", "precision": 18}]},
    {"ioc": {"control_prefix": "S\x00:"}},
    {"ioc": {"control_prefix": "S :"}},
])
def test_observable_text_and_the_control_prefix_are_checked_too(table):
    with pytest.raises(ConfigError, match="key '(units|precision|control_prefix)'"):
        load_config({"setpoint": [{"name": "A"}], **table})
