"""Properties of the Interface's input checks, against one soft IOC for the whole module.

set_values/get_values with generated names, values and configs: an InvalidInputError (with
nothing sent, as the soft IOC's audit shows) or the correct result; never a raw exception,
and the IOC still answers afterwards.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _hypothesis import within
from hypothesis import example, given
from hypothesis import strategies as st

from epics_pva import Interface, InvalidInputError, ReadError, SetValuesError
from softioc import SoftIOC, load_config

CONFIG = {
    "ioc": {"seed": 2, "update_rate": 50.0},
    "setpoint": [
        {"name": "H:D:SET", "readback": "H:D:RBV", "limits": [-10, 10]},
        {"name": "H:N:SET", "type": "int", "limits": [0, 100]},
        {"name": "H:MODE", "type": "enum", "choices": ["Off", "On"]},
        {"name": "H:NAME", "type": "string"},
        {"name": "H:WAVE", "type": "double_array", "length": 3, "limits": [-1, 1]},
    ],
}
SETPOINTS = ["H:D:SET", "H:N:SET", "H:MODE", "H:NAME", "H:WAVE"]
# a put to the readback is the server's rejection (SetValuesError), so only reads go there
SERVED = [*SETPOINTS, "H:D:RBV"]

# values a PV accepts, per PV, and what the server then holds
valid = st.one_of(
    st.tuples(st.just("H:D:SET"), st.floats(min_value=-10, max_value=10)),
    st.tuples(st.just("H:N:SET"), st.integers(min_value=0, max_value=100)),
    st.tuples(st.just("H:MODE"), st.sampled_from(["Off", "On", 0, 1])),
    st.tuples(st.just("H:NAME"), st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=40)),
    st.tuples(st.just("H:WAVE"), st.lists(st.floats(min_value=-1, max_value=1), min_size=1, max_size=3)),
)
bad_names = st.one_of(
    st.sampled_from(["", " ", "H:D:SET\x00", "H:D:SET ", "\ud800", "H" * 100_000]),
    st.text(alphabet=st.sampled_from("\x00\x01\n\t \ud800é"), min_size=1, max_size=5),
)
# np.zeros(10**5): far beyond any waveform's length, and as a list of names for get_values
# (which checks each) a tenth of the CPU of a million, which under load outran the 10 s bound
# of `within`; the million-element put is test_bad_inputs.py's own test
odd_values = st.one_of(
    st.floats(), st.integers(), st.integers(min_value=10**300, max_value=10**400), st.booleans(),
    st.none(), st.text(max_size=5), st.sampled_from(["\x00", "a\x00b", "\ud800", "x" * 100_000]),
    st.just(math.nan), st.just(np.float64("inf")), st.just(np.zeros(10**5)),
    st.just(1 + 2j), st.just(b"1"), st.just({"value": 1}),
    st.integers(min_value=1, max_value=10_000).map(lambda n: _nested(n)),
)


class _Deep(list):
    """A list nested `depth` levels deep, with a short repr (a failing example must print)."""

    def __repr__(self) -> str:
        return f"<list nested {self.depth} deep>"


def _nested(depth: int) -> list:
    value: list = [1.0]
    for _ in range(depth):
        value = [value]
    deep = _Deep(value)
    deep.depth = depth
    return deep


entries = st.one_of(valid, st.tuples(st.sampled_from(SETPOINTS), odd_values), st.tuples(bad_names, odd_values | st.floats()))
inputs = st.lists(entries, max_size=4).map(dict)
configs = st.one_of(st.none(), st.dictionaries(st.sampled_from(SETPOINTS), st.one_of(st.none(), st.just("x"), st.just(42)), max_size=2))


@pytest.fixture(scope="module")
def machine():
    ioc = SoftIOC(load_config(CONFIG)).start()
    with Interface(conf=ioc.client_conf(), timeout=1.0, retry_delay=0.05) as normal, \
            Interface(conf=ioc.client_conf(), timeout=1.0, read_only=True) as read_only:
        yield ioc, normal, read_only
    ioc.stop()


def _still_answering(interface: Interface) -> None:
    kind, result = within(interface.get_values, ["H:D:SET", "H:MODE"])
    assert kind == "value" and set(result) == {"H:D:SET", "H:MODE"}, result


def _same(sent, expected) -> bool:
    if isinstance(expected, list):
        return list(sent) == [float(x) for x in expected]
    if isinstance(expected, str) and not isinstance(sent, str):  # an enum put by label
        return sent == ["Off", "On"].index(expected)
    return sent == expected


@given(inputs, configs)
def test_read_only_set_values_refuses_or_sends_nothing(machine, values, config):
    ioc, _, read_only = machine
    before = ioc.audit.put_count()
    kind, result = within(read_only.set_values, values, config)
    if kind == "error":
        assert isinstance(result, InvalidInputError), f"{values!r:.300} raised {result!r:.300}"
    else:
        assert set(result) == set(values)
        assert all(r.status == "read_only" and r.attempts == 0 for r in result.values())
    assert ioc.audit.put_count() == before
    _still_answering(read_only)


@given(inputs, configs)
# found by the fuzz run: a lone surrogate made p4p's encoder fail in its worker, so the put
# never completed and timed out (a SetValuesError); a NUL was cut on the wire
@example({"H:NAME": "\ud800"}, None)
@example({"H:NAME": "a\x00b", "H:D:SET": 1.0}, None)
def test_set_values_refuses_before_sending_or_sets_every_pv(machine, values, config):
    ioc, normal, _ = machine
    before = ioc.audit.put_count()
    kind, result = within(normal.set_values, values, config)
    sent = ioc.audit.puts()[before:]
    if kind == "error" and isinstance(result, SetValuesError):
        # documented: an array longer than the array PV's length is the server's rejection
        failed = [pv for pv, r in result.results.items() if r.status == "failed"]
        assert failed and all(pv == "H:WAVE" and np.size(values[pv]) > 3 for pv in failed), result
        assert all("at most 3 allowed" in str(result.results[pv].error) for pv in failed), result
        assert [r.outcome for r in sent if r.pv == "H:WAVE"] == ["rejected"], sent
    elif kind == "error":
        assert isinstance(result, InvalidInputError), f"{values!r:.300} raised {result!r:.300}"
        assert sent == [], f"refused {values!r:.200} but sent {sent!r:.200}"
    else:
        assert [r.status for r in result.values()] == ["set"] * len(values)
        assert sorted(r.pv for r in sent) == sorted(values)  # parallel puts arrive in any order
        for record in sent:
            assert record.outcome == "accepted" and _same(record.value, values[record.pv]), (record, values)
    _still_answering(normal)


@given(st.one_of(
    st.lists(st.one_of(st.sampled_from(SERVED), bad_names, st.integers(), st.none()), max_size=4),
    odd_values,
))
def test_get_values_refuses_or_reads_what_was_asked(machine, names):
    _, normal, _ = machine
    kind, result = within(normal.get_values, names)
    if kind == "error":
        assert isinstance(result, (InvalidInputError, ReadError)), f"{names!r:.300} raised {result!r:.300}"
    else:
        assert list(result) == list(dict.fromkeys(names))
    _still_answering(normal)
