"""Puts of a PV whose kind its monitor gave skip p4p's Get before the Put; every kind still lands.

Against the soft IOC, EPICS base's softIoc (QSRV) and a plain p4p server (kinds and enum choices
the others do not change). Which puts were made with a Get first is recorded by a subclass of
the transport's one function that starts a put, which notes its arguments and then starts it.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np
import pytest
from p4p import Type, Value
from p4p.client.thread import Context
from p4p.nt import NTEnum, NTScalar
from p4p.server import Server
from p4p.server.thread import SharedPV

from epics_pva import Interface, InvalidInputError
from epics_pva.transport import _batch as compat
from softioc.server import ACCEPTED

TIMEOUT = 5.0


@pytest.fixture
def puts_made(monkeypatch) -> list[tuple[str, bool]]:
    """(PV name on the wire, whether a Get came first) of every put the interface issues."""
    made: list[tuple[str, bool]] = []
    start_put = compat.start_put

    def recording(context: Any, wire: str, handler: Any, builder: Any, get: bool) -> Any:
        made.append((wire, bool(get)))
        return start_put(context, wire, handler, builder, get)

    monkeypatch.setattr(compat, "start_put", recording)
    return made


# ---- the soft IOC ------------------------------------------------------------------------

TYPED = {"ioc": {"seed": 1, "update_rate": 50.0}, "setpoint": [
    {"name": "T:D", "initial": 0.0, "limits": [-10.0, 10.0]},
    {"name": "T:I", "type": "int", "initial": 3},
    {"name": "T:E", "type": "enum", "choices": ["OFF", "ON", "FAULT"]},
    {"name": "T:S", "type": "string", "initial": "idle"},
    {"name": "T:W", "type": "double_array", "length": 3},
]}


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "in_order"])
def test_every_soft_ioc_type_is_put_without_a_get_and_lands(softioc_factory, puts_made, parallel):
    ioc = softioc_factory(TYPED)
    inputs = {"T:D": 2.5, "T:I": 7, "T:E": "FAULT", "T:S": "ramping", "T:W": [1.0, 2.0, 3.0]}
    with Interface(conf=ioc.client_conf(), timeout=TIMEOUT, parallel=parallel) as itf:
        results = itf.set_values(inputs)
        assert all(r.status == "set" for r in results.values())
        assert puts_made == [(pv, False) for pv in inputs]
        applied = {r.pv: r.applied for r in ioc.audit.puts(outcome=ACCEPTED)}
        assert applied["T:D"] == 2.5 and applied["T:I"] == 7 and applied["T:E"] == 2
        assert applied["T:S"] == "ramping" and list(applied["T:W"]) == [1.0, 2.0, 3.0]
        values = itf.get_values(list(inputs))
        assert values["T:E"] == "FAULT" and values["T:S"] == "ramping" and values["T:I"] == 7
        assert list(values["T:W"]) == [1.0, 2.0, 3.0] and values["T:D"] == 2.5
        itf.set_value("T:E", 1)  # by index as well as by label
        assert itf.get_value("T:E") == "ON"
    assert all(get is False for _, get in puts_made)


def test_a_put_the_soft_ioc_refuses_is_still_that_pvs_failure(softioc_factory, puts_made):
    ioc = softioc_factory({"ioc": {"seed": 1}, "setpoint": [
        {"name": "R:A", "initial": 0.0, "limits": [-1.0, 1.0], "limit_action": "reject"},
        {"name": "R:B", "initial": 0.0}]})
    with Interface(conf=ioc.client_conf(), timeout=TIMEOUT) as itf:
        itf.set_values({"R:A": 0.5, "R:B": 0.5})  # monitors open: their kinds are known
        # past the interface's own check, straight to the IOC, which refuses R:A only
        outcome = compat.put_many(itf._connection.context(), ["R:A", "R:B"], [5.0, 1.5], TIMEOUT,
                                  itf._monitors.infos(["R:A", "R:B"]))
    assert "outside the limits" in str(outcome[0]) and outcome[1] is None
    assert [(r.pv, r.outcome) for r in ioc.audit.puts()][-2:] in (
        [("R:A", "rejected"), ("R:B", "accepted")], [("R:B", "accepted"), ("R:A", "rejected")])
    assert all(get is False for _, get in puts_made)


# ---- EPICS base (QSRV) ---------------------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="EPICS base IOC runner is Linux only")
@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "in_order"])
def test_every_epics_base_record_type_is_put_without_a_get_and_lands(epics_base_ioc, puts_made, parallel):
    p = "BASE:"
    inputs = {p + "Q1:SET": 1.25, p + "COUNT": 42, p + "MODE": "On", p + "LABEL": "no-get",
              p + "WAVE": [1.5, -2.0, 3.25, 0.0, 4.0]}
    with (Interface(conf=epics_base_ioc.client_conf(), timeout=TIMEOUT, parallel=parallel) as itf,
          Context("pva", conf=epics_base_ioc.client_conf(), useenv=False) as ctx):
        results = itf.set_values(inputs)
        assert all(r.status == "set" for r in results.values())
        assert float(ctx.get(p + "Q1:SET", timeout=TIMEOUT)) == 1.25
        assert int(ctx.get(p + "COUNT", timeout=TIMEOUT)) == 42
        assert ctx.get(p + "MODE", timeout=TIMEOUT).raw["value.index"] == 2
        assert ctx.get(p + "LABEL", timeout=TIMEOUT).raw["value"] == "no-get"
        assert list(ctx.get(p + "WAVE", timeout=TIMEOUT)) == [1.5, -2.0, 3.25, 0.0, 4.0]
        itf.set_value(p + "MODE", 0)
        assert itf.get_value(p + "MODE") == "Off"
        itf.set_values({p + "MODE": "Standby", p + "COUNT": 1})
        assert itf.get_values([p + "MODE", p + "COUNT"]) == {p + "MODE": "Standby", p + "COUNT": 1}
    assert puts_made and all(get is False for _, get in puts_made)


# ---- kinds and choices only a plain p4p server changes ---------------------------------------

class Recorder:
    """Put handler: applies every put and remembers what the server received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def put(self, pv: SharedPV, op: Any) -> None:
        value = op.value()
        raw = value.raw if hasattr(value, "raw") else value
        with self.lock:
            self.received.append((op.name(), raw["value.index"] if "NTEnum" in raw.getID() else raw["value"]))
        pv.post(value)
        op.done()


@pytest.fixture
def plain_server():
    handler = Recorder()
    pvs = {
        "P:BOOL": SharedPV(nt=NTScalar("?"), initial=False, handler=handler),
        "P:U8": SharedPV(nt=NTScalar("B"), initial=1, handler=handler),
        "P:AS": SharedPV(nt=NTScalar("as"), initial=["a"], handler=handler),
        "P:AI": SharedPV(nt=NTScalar("ai"), initial=np.array([1], dtype=np.int32), handler=handler),
        "P:ENUM": SharedPV(nt=NTEnum(), initial={"index": 0, "choices": ["A", "B"]}, handler=handler),
        "P:ANY": SharedPV(initial=Value(Type([("value", "v")]), {"value": 0.0}), handler=handler),
    }
    server = Server(providers=[pvs], isolate=True)
    yield server, pvs, handler
    server.stop()


def test_bools_unsigned_and_arrays_of_a_plain_server_land_without_a_get(plain_server, puts_made):
    server, _, handler = plain_server
    with Interface(conf=server.conf(), timeout=TIMEOUT) as itf:
        itf.set_values({"P:BOOL": True, "P:U8": 200, "P:AS": ["x", "y"], "P:AI": [4, 5, 6]})
        values = itf.get_values(["P:BOOL", "P:U8", "P:AS", "P:AI"])
    got = dict(handler.received)
    assert got["P:BOOL"] is True and got["P:U8"] == 200 and list(got["P:AS"]) == ["x", "y"]
    assert list(got["P:AI"]) == [4, 5, 6]
    assert values["P:BOOL"] is True and values["P:U8"] == 200 and values["P:AS"] == ["x", "y"]
    assert sorted(puts_made) == sorted((pv, False) for pv in ("P:BOOL", "P:U8", "P:AS", "P:AI"))


def test_a_value_of_unknown_kind_is_put_with_a_get_first(plain_server, puts_made):
    server, _, handler = plain_server
    with Interface(conf=server.conf(), timeout=TIMEOUT) as itf:
        itf.set_value("P:ANY", 2.5)  # a variant union: p4p's own builder fills it in, after a Get
    assert handler.received == [("P:ANY", 2.5)]
    assert puts_made == [("P:ANY", True)]


def test_an_enum_label_is_sent_as_the_index_of_the_choices_its_monitor_last_pushed(plain_server, puts_made):
    server, pvs, handler = plain_server
    with Interface(conf=server.conf(), timeout=TIMEOUT) as itf:
        itf.set_value("P:ENUM", "B")
        pvs["P:ENUM"].post({"index": 0, "choices": ["C", "D", "B"]})  # the server's choices change
        assert itf._monitors.wait_for(
            "P:ENUM", lambda state, v: v is not None and list(v.raw["value.choices"]) == ["C", "D", "B"], TIMEOUT)
        itf.set_value("P:ENUM", "B")
        with pytest.raises(InvalidInputError, match="'A' is not one of the PV's choices"):
            itf.set_value("P:ENUM", "A")
        assert itf.get_value("P:ENUM") == "B"
    assert handler.received == [("P:ENUM", 1), ("P:ENUM", 2)]
    assert puts_made == [("P:ENUM", False), ("P:ENUM", False)]


def test_the_put_builder_skips_the_get_only_for_kinds_it_can_fill_in():
    from epics_pva.transport import PvInfo

    for kind in ("float", "int", "bool", "string", "array", "string_array"):
        assert compat._put_builder(1, PvInfo(kind))[1] is False, kind
    assert compat._put_builder("B", PvInfo("enum", choices=("A", "B")))[1] is False
    assert compat._put_builder(1, PvInfo("enum", choices=("A", "B")))[1] is False
    assert compat._put_builder("Z", PvInfo("enum", choices=("A", "B")))[1] is True  # the server judges
    assert compat._put_builder(1.0, PvInfo("other"))[1] is True
    assert compat._put_builder(1.0, None)[1] is True
