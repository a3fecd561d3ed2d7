"""Properties of the config loader: any dict or TOML text gives an IOCConfig or a ConfigError.

Never another exception, never a hang. Generated configs are near the valid shape (known
keys, values of any type and size), so the checks deep inside the loader are reached.
"""

from __future__ import annotations

import math
import unicodedata

from _hypothesis import within
from hypothesis import given
from hypothesis import strategies as st

from softioc import ConfigError, IOCConfig, load_config
from softioc.config import BOUNDS, MAX_NAME_BYTES, MAX_PV_STEPS, MAX_PVS, MAX_RANGE

names = st.one_of(
    st.sampled_from(["P:A", "P:B", "P:C", "SOFTIOC:X"]),
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=300, max_size=400),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=10),
    st.integers(min_value=10**300, max_value=10**400), st.sampled_from([math.nan, math.inf, -math.inf, 1e308]),
)
anything = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4), max_leaves=10)
some_value = st.one_of(scalars, anything, st.lists(st.floats(), max_size=5))

SETPOINT_KEYS = ["name", "readback", "type", "initial", "limits", "lag", "tau", "rate", "noise",
                 "offset", "dead_time", "units", "precision", "choices", "length", "description", "bogus"]
setpoint = st.fixed_dictionaries(
    {"name": names},
    optional={
        "readback": names,
        "type": st.sampled_from(["double", "int", "enum", "string", "double_array", "float"]),
        "initial": some_value,
        "limits": st.one_of(st.lists(st.one_of(st.floats(), st.integers()), max_size=3), some_value),
        "lag": st.sampled_from(["none", "first_order", "rate", "x"]),
        "tau": some_value, "rate": some_value, "noise": some_value, "offset": some_value,
        "dead_time": st.one_of(st.floats(), some_value),
        "units": some_value, "precision": some_value,
        "choices": st.one_of(st.lists(st.text(max_size=5), max_size=3), some_value),
        "length": st.one_of(st.integers(min_value=-2, max_value=8), st.integers(), some_value),
        "description": some_value, "bogus": some_value,
    },
)
observable = st.fixed_dictionaries(
    {"name": names, "expression": st.one_of(st.sampled_from(["a + 1", "a ** a ** a", "sqrt(", ""]), st.text(max_size=30))},
    optional={
        "inputs": st.one_of(st.dictionaries(st.sampled_from(["a", "b", "1x", "sqrt"]), names, max_size=3), some_value),
        "noise": some_value, "units": some_value, "precision": some_value,
    },
)
fault = st.fixed_dictionaries(
    {"pv": st.one_of(names, st.just("*")),
     "kind": st.sampled_from(["put_timeout", "put_reject", "outage", "stuck_readback", "slow_readback", "readback_bias", "boom"])},
    optional={"at": some_value, "count": some_value, "duration": some_value, "bias": some_value,
              "complete_after": some_value, "message": some_value, "factor": some_value},
)
ioc_table = st.fixed_dictionaries({}, optional={
    "seed": some_value, "update_rate": some_value, "time_scale": some_value, "control_prefix": some_value})
configs = st.fixed_dictionaries({}, optional={
    "ioc": st.one_of(ioc_table, some_value),
    "setpoint": st.one_of(st.lists(setpoint, max_size=3), some_value),
    "observable": st.one_of(st.lists(observable, max_size=2), some_value),
    "fault": st.one_of(st.lists(fault, max_size=2), some_value),
})


def _check(source) -> None:
    kind, result = within(load_config, source)
    if kind == "error":
        assert isinstance(result, ConfigError), f"{source!r:.300} raised {result!r:.300}"
        return
    assert isinstance(result, IOCConfig)
    settings = result.ioc
    assert math.isfinite(settings.update_rate) and settings.update_rate > 0
    assert math.isfinite(settings.time_scale) and settings.time_scale > 0
    for sp in result.setpoints:
        for number in (sp.tau, sp.rate, sp.noise, sp.offset, sp.dead_time):
            assert math.isfinite(number)
        assert sp.dead_time >= 0 and (sp.dead_time == 0 or sp.readback)
        if sp.limits is not None:
            assert sp.limits[0] < sp.limits[1]
        if sp.type == "double":
            assert math.isfinite(sp.initial)
        if sp.length is not None:
            assert 1 <= sp.length <= 10_000_000
        for text in (sp.units, sp.description, *sp.choices):
            assert _carried(text), (sp.name, text)
    for pv in (*result.setpoints, *result.observables):
        assert pv.precision is None or 0 <= pv.precision <= 17
    assert _carried(settings.control_prefix)
    _check_limits(result)


def _check_limits(config: IOCConfig) -> None:
    """A config that loaded asks for no more than the caps and keeps every time and rate in bounds."""
    assert len(config.pv_names()) <= MAX_PVS
    ioc = config.ioc
    numbers = [("ioc.update_rate", ioc.update_rate), ("ioc.time_scale", ioc.time_scale)]
    for sp in config.setpoints:
        numbers += [("setpoint.tau", sp.tau), ("setpoint.rate", sp.rate), ("setpoint.dead_time", sp.dead_time)]
        if sp.update_rate is not None:
            numbers.append(("setpoint.update_rate", sp.update_rate))
    for ob in config.observables:
        numbers += [(f"observable.{key}", value) for key, value in (("update_rate", ob.update_rate),
                                                                    ("scan", ob.scan)) if value is not None]
    for key, value in numbers:
        assert BOUNDS[key].low <= value <= BOUNDS[key].high, (key, value)
    assert -(-len(config.pv_names()) // ioc.processes) * ioc.update_rate <= MAX_PV_STEPS


def _carried(text: str) -> bool:
    """PVAccess carries it unchanged: no control character (NUL ends it), no lone surrogate."""
    return len(text) <= 1000 and not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


@given(configs)
def test_a_config_dict_gives_a_config_or_a_config_error(data):
    _check(data)


@given(some_value)
def test_any_value_as_a_config_gives_a_config_or_a_config_error(data):
    if isinstance(data, dict):
        _check(data)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


toml_texts = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.integers(min_value=1, max_value=20000).map(lambda n: "a = " + "[" * n + "]" * n),
    st.integers(min_value=1, max_value=20000).map(lambda n: "a = " + "{b = " * n + "1" + "}" * n),
    st.lists(st.tuples(
        st.sampled_from(["name", "readback", "initial", "limits", "tau", "noise", "type", "length", "units"]),
        st.one_of(st.floats(), st.integers(), st.text(max_size=8), st.lists(st.floats(), max_size=3),
                  st.integers(min_value=10**300, max_value=10**400))),
        max_size=6).map(lambda kvs: "[[setpoint]]\nname = \"T:A\"\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in kvs)),
)


@given(toml_texts)
def test_toml_text_gives_a_config_or_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "ioc.toml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    _check(path)


# ---- the caps and bounds: documents asking for too much, or for times no loop could keep --------

times = st.one_of(
    st.floats(min_value=0.0, max_value=1e-5), st.floats(min_value=1e3, max_value=1e300), some_value,
    st.floats(min_value=0.01, max_value=100.0),
    st.sampled_from([5e-324, 1e-300, 1e-6, 0.001, 0.01, 1000.0, 3600.0, 1e6, 1e15, 1e16, -1e-9]),
)
patterns = st.one_of(
    st.sampled_from(["R{i}", "R{i:03d}", "R{i:01000000000d}", "R{i:.99f}", "R{i!r}", "R{j}", "{}", "R", "R{i:>999}"]),
    st.text(max_size=10).map(lambda t: t + "{i}"),
    st.integers(min_value=990, max_value=1100).map(lambda n: "L" * n + "{i}"),
)
counts = st.one_of(st.integers(min_value=1, max_value=30), st.integers(min_value=MAX_RANGE + 1, max_value=10**400))
pv_keys = {"update_rate": times, "tau": times, "rate": times, "dead_time": times, "noise": times}
small_range = st.fixed_dictionaries(
    {"name": patterns, "count": counts},
    optional={"readback": patterns, "start": st.one_of(st.integers(min_value=0, max_value=10**20), some_value),
              "lag": st.sampled_from(["first_order", "rate"]), **pv_keys},
)
# several ranges each within the range cap, too many together: refused before any name is made
big_ranges = st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(["A{i}", "B{i}", "C{i:07d}"]),
    "readback": st.sampled_from(["RA{i}", "RB{i}"]),
    "count": st.integers(min_value=MAX_PVS // 2 + 1, max_value=MAX_RANGE),
}), min_size=2, max_size=4)
# names of 500 to 990 characters, 60,000 or more of each: past MAX_NAME_BYTES
long_ranges = st.builds(
    lambda n, count: [{"name": "L" * n + "{i}:S", "readback": "L" * n + "{i}:R", "count": count}],
    st.integers(min_value=500, max_value=990),
    st.integers(min_value=MAX_NAME_BYTES // 1000 + 1, max_value=MAX_RANGE),
)
limit_ioc = st.fixed_dictionaries({}, optional={
    "update_rate": times, "time_scale": times, "processes": st.integers(min_value=-1, max_value=70)})
good_names = st.sampled_from(["P:A", "P:B", "P:C", "P:D"])  # valid, so the numbers are what is judged
limit_configs = st.fixed_dictionaries({}, optional={
    "ioc": limit_ioc,
    "setpoint": st.lists(st.fixed_dictionaries(
        {"name": good_names, "lag": st.sampled_from(["first_order", "rate"])},
        optional={"readback": good_names.map(lambda n: n + ":RBV"), **pv_keys}), max_size=3, unique_by=lambda t: t["name"]),
    "observable": st.lists(st.fixed_dictionaries(
        {"name": good_names.map(lambda n: n + ":OB"), "expression": st.just("1")},
        optional={"update_rate": times, "scan": times}), max_size=2, unique_by=lambda t: t["name"]),
    "setpoint_range": st.one_of(st.lists(small_range, max_size=2), big_ranges, long_ranges),
    "observable_range": st.one_of(st.lists(st.fixed_dictionaries(
        {"name": patterns, "count": counts, "expression": st.just("x")},
        optional={"inputs": st.dictionaries(st.just("x"), patterns, max_size=1), "scan": times}), max_size=2),
        big_ranges.map(lambda ranges: [{"name": r["name"], "count": r["count"], "expression": "1"} for r in ranges])),
})


@given(limit_configs)
def test_a_config_asking_too_much_or_for_impossible_times_gives_a_config_error_in_time(data):
    _check(data)
