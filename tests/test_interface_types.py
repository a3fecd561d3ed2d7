"""PV types the soft IOC does not serve (bool, unsigned, float32, integer and string arrays,
plain structures), served by a small p4p server on loopback: conversion and input checks."""

from __future__ import annotations

import numpy as np
import pytest
from p4p import Type, Value
from p4p.nt import NTEnum, NTScalar
from p4p.server import Server
from p4p.server.thread import SharedPV

from epics_pva import Interface, InvalidInputError, ReadError


class Recorder:
    """Put handler: applies every put and remembers the values the server received."""

    def __init__(self, received: list):
        self.received = received

    def put(self, pv, op):
        value = op.value()
        self.received.append((op.name(), value.raw["value"] if hasattr(value, "raw") else value))
        pv.post(value)
        op.done()


@pytest.fixture
def served():
    received: list = []
    handler = Recorder(received)
    specs = {
        "X:BOOL": (NTScalar("?"), True),
        "X:U8": (NTScalar("B"), 3),
        "X:F32": (NTScalar("f"), 0.5),
        "X:NOLIM": (NTScalar("d", control=True), 1.0),  # control limits 0/0: none published
        "X:AI": (NTScalar("ai"), np.array([1, 2, 3], dtype=np.int32)),
        "X:AU8": (NTScalar("aB"), np.array([1], dtype=np.uint8)),
        "X:AS": (NTScalar("as"), ["a", "b"]),
        "X:ENUM": (NTEnum(), {"index": 5, "choices": ["only"]}),  # index without a label
    }
    pvs = {name: SharedPV(nt=nt, initial=initial, handler=handler)
           for name, (nt, initial) in specs.items()}
    pvs["X:STRUCT"] = SharedPV(initial=Value(Type([("x", "d")]), {"x": 1.0}), handler=handler)
    server = Server(providers=[pvs], isolate=True)
    with Interface(conf=server.conf(), timeout=1.0) as interface:
        yield interface, received
    server.stop()


def test_values_of_every_type_come_back_as_plain_python(served):
    interface, _ = served
    values = interface.get_values(["X:BOOL", "X:U8", "X:F32", "X:AI", "X:AS", "X:ENUM"])
    assert values["X:BOOL"] is True
    assert values["X:U8"] == 3 and type(values["X:U8"]) is int
    assert values["X:F32"] == 0.5 and type(values["X:F32"]) is float
    assert type(values["X:AI"]) is np.ndarray and values["X:AI"].dtype == np.int32
    assert values["X:AS"] == ["a", "b"]
    assert values["X:ENUM"] == 5  # no label for that index: the index itself


def test_a_structure_without_a_value_field_is_reported_not_guessed(served):
    interface, _ = served
    with pytest.raises(ReadError, match="X:STRUCT: unreadable value: no 'value' field"):
        interface.get_values(["X:STRUCT", "X:BOOL"])


@pytest.mark.parametrize("pv, given, sent", [
    ("X:BOOL", False, False),
    ("X:BOOL", 1, True),
    ("X:U8", 255, 255),
    ("X:F32", np.float64(0.25), 0.25),
    ("X:NOLIM", 1e9, 1e9),
    ("X:AI", [4, 5.0], [4, 5]),
    ("X:AU8", np.array([0, 255]), [0, 255]),
    ("X:AS", ("x", "y"), ["x", "y"]),
])
def test_accepted_values_reach_the_server(served, pv, given, sent):
    interface, received = served
    assert interface.set_value(pv, given).status == "set"
    ((name, value),) = received
    assert name == pv
    assert (list(value) if isinstance(value, (list, np.ndarray)) else value) == sent


@pytest.mark.parametrize("pv, given, why", [
    ("X:BOOL", 2, "2 is not a bool"),
    ("X:BOOL", "yes", "is not a bool"),
    ("X:U8", 256, "256 does not fit the PV's integer type (range 0..255)"),
    ("X:U8", -1, "does not fit the PV's integer type"),
    ("X:AI", [1.5], "not whole numbers"),
    ("X:AU8", [256], "outside the PV's integer type range"),
    ("X:AS", ["x", 1], "not a list of strings"),
    ("X:AS", "xy", "not a list of strings"),
])
def test_values_that_do_not_fit_are_refused_before_any_put(served, pv, given, why):
    interface, received = served
    with pytest.raises(InvalidInputError) as info:
        interface.set_value(pv, given)
    assert why in info.value.problems[pv]
    assert received == []
