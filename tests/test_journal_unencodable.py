"""The journal never decides a PV's outcome: what it cannot encode it records as a bounded repr
or as "unencodable: <type>", and the PV's result is what the machine did.

A validation function may return anything; a `before` or put value may be anything the
journal is handed. Each case here is set through an Interface journaling to a file, against
a soft IOC on loopback, in parallel and in sequential mode, with the soft IOC's audit
saying what the machine received.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from epics_pva import Interface
from epics_pva.journal import Journal, decode_value, encode_value, read_journal

CONFIG = {
    "ioc": {"seed": 11, "update_rate": 50.0},
    "setpoint": [{"name": f"U:{n}:SET", "limits": [-10, 10]} for n in range(3)],
}
PVS = [f"U:{n}:SET" for n in range(3)]
REPR_LIMIT = 200


@pytest.fixture
def softioc_config():
    return CONFIG


class ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class FloatRaises(float):
    def __float__(self) -> float:
        raise RuntimeError("no float for you")


class KeyStrRaises:
    def __str__(self) -> str:
        raise RuntimeError("no key for you")

    def __repr__(self) -> str:
        return "KeyStrRaises()"

    def __hash__(self) -> int:
        return 1


class LongRepr:
    def __repr__(self) -> str:
        return "x" * 100_000


def deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def cyclic() -> list:
    value: list = [1.0]
    value.append(value)
    return value


def huge_int() -> int:
    return 10**5000  # beyond the 4,300 digits int <-> str allows


def mapping_with_raising_key() -> dict:
    return {KeyStrRaises(): 1.0, "fine": 2.0}


class ItemsRaise(dict):
    def items(self):  # type: ignore[override]
        raise RuntimeError("no items for you")


RETURNS = {
    "deep_list": lambda: deep_list(100_000),
    "repr_raises": ReprRaises,
    "huge_int": huge_int,
    "cycle": cyclic,
    "float_raises": lambda: FloatRaises(1.5),
    "key_str_raises": mapping_with_raising_key,
    "items_raise": lambda: ItemsRaise(a=1),
    "long_repr": LongRepr,
    "array_of_objects": lambda: np.array([ReprRaises(), 1], dtype=object),
}


def returning(make):
    def validate(set_pv, set_value, context, timeout):
        return make()
    return validate


def walk(value, depth=0):
    """Every leaf of a decoded journal value (and fails beyond 100 levels: the line is bounded)."""
    assert depth < 100, "the journal wrote a value nested more than 100 levels"
    if isinstance(value, list):
        for v in value:
            yield from walk(v, depth + 1)
    elif isinstance(value, dict):
        for v in value.values():
            yield from walk(v, depth + 1)
    else:
        yield value


def is_bounded_record(text) -> bool:
    return isinstance(text, str) and (text.startswith("unencodable: ") or len(text) <= REPR_LIMIT)


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "in_order"])
@pytest.mark.parametrize("kind", list(RETURNS))
def test_a_result_the_journal_cannot_encode_does_not_fail_the_pv(soft_ioc, tmp_path, kind, parallel):
    path = tmp_path / "journal.jsonl"
    inputs = {pv: 1.0 + n for n, pv in enumerate(PVS)}
    configs = {PVS[0]: returning(RETURNS[kind])}
    with Interface(conf=soft_ioc.client_conf(), timeout=10.0, journal=str(path), parallel=parallel) as itf:
        results = itf.set_values(inputs, configs)  # raises SetValuesError if any PV failed
    assert {pv: r.status for pv, r in results.items()} == dict.fromkeys(PVS, "set")
    assert type(results[PVS[0]].validation_result).__name__ == type(RETURNS[kind]()).__name__
    # the machine received each put once, the next PV included (sequential mode went on)
    assert sorted((p.pv, p.value, p.outcome) for p in soft_ioc.audit.puts()) == sorted(
        (pv, v, "accepted") for pv, v in inputs.items())
    # the journal is readable and records a bounded stand-in for what it could not encode
    (validation,) = [e for e in read_journal(path) if e.event == "validation"]
    assert validation.pv == PVS[0] and "error" not in validation.fields
    leaves = list(walk(validation.result))
    assert leaves and all(not isinstance(v, str) or is_bounded_record(v) for v in leaves)
    assert max(len(line) for line in path.read_bytes().splitlines()) < 10_000


def test_an_error_whose_str_raises_is_journaled_and_fails_only_its_pv(soft_ioc, tmp_path):
    path = tmp_path / "journal.jsonl"

    def validate(set_pv, set_value, context, timeout):
        raise StrRaises()

    with Interface(conf=soft_ioc.client_conf(), timeout=10.0, journal=str(path)) as itf:
        with pytest.raises(Exception) as info:
            itf.set_values({PVS[0]: 1.0, PVS[1]: 2.0}, {PVS[0]: validate})
    results = info.value.results
    assert results[PVS[0]].status == "failed" and type(results[PVS[0]].error).__name__ == "ValidationError"
    assert results[PVS[1]].status == "set"
    (validation,) = [e for e in read_journal(path) if e.event == "validation"]
    assert "StrRaises" in validation.error


ODD_VALUES = [deep_list(50_000), ReprRaises(), huge_int(), cyclic(), FloatRaises(2.5),
              mapping_with_raising_key(), LongRepr(), np.array([ReprRaises()], dtype=object)]


@pytest.mark.parametrize("value", ODD_VALUES, ids=[type(v).__name__ for v in ODD_VALUES])
def test_before_put_and_read_only_lines_take_any_value(tmp_path: Path, value) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        call = journal.new_call()
        journal.before(call, {"A": value}, {"B": StrRaises()})
        journal.put(call, "A", value, 1)
        journal.read_only(call, {"A": value})
        journal.validation(call, "A", result=value, trace={"readback": "A:RBV", "samples": value})
        journal.validation(call, "A", error=StrRaises())
    entries = read_journal(path)
    assert [e.event for e in entries] == ["before", "before", "put", "read_only", "validation", "validation"]
    for entry in entries:
        for key in ("value", "result", "trace", "error"):
            if key in entry.fields:
                assert all(not isinstance(v, str) or is_bounded_record(v) for v in walk(entry.fields[key]))


def test_what_can_be_encoded_still_round_trips_losslessly() -> None:
    value = {"a": [1.5, -math.inf, np.float32(0.25), 2**64, -(10**300), "text", None, True],
             "$odd": {"b": np.arange(3)}, "nan": math.nan}
    back = decode_value(json.loads(json.dumps(encode_value(value), allow_nan=False)))
    assert math.isnan(back.pop("nan"))
    assert back == {"a": [1.5, -math.inf, 0.25, 2**64, -(10**300), "text", None, True],
                    "$odd": {"b": [0, 1, 2]}}


@pytest.mark.parametrize("value, recorded", [
    (ReprRaises(), "unencodable: ReprRaises"),
    (huge_int(), "unencodable: int"),
    (LongRepr(), "x" * REPR_LIMIT),
], ids=["repr_raises", "huge_int", "long_repr"])
def test_the_stand_in_says_what_it_stands_for(value, recorded) -> None:
    decoded = decode_value(json.loads(json.dumps(encode_value(value), allow_nan=False)))
    assert decoded == recorded or (isinstance(decoded, str) and decoded.startswith(recorded))
    assert len(decoded) <= REPR_LIMIT


def test_a_float_subclass_is_recorded_as_its_value_not_its_dunder() -> None:
    class OddFloat(float):
        def __float__(self) -> float:
            return 99.0

    class OddInt(int):
        def __int__(self) -> int:
            return 99

        def __index__(self) -> int:
            return 99

    class OddStr(str):
        def __str__(self) -> str:
            return "other"

    assert encode_value([OddFloat(1.5), OddInt(5), OddStr("text")]) == [1.5, 5, "text"]
