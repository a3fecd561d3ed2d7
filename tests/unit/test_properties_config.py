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
