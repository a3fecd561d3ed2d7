"""Interface basics over PVAccess against the soft IOC: life cycle, reads, sets, read-only, recovery."""

from __future__ import annotations

import logging
import math
import threading
import time
from functools import partial

import numpy as np
import pytest
from p4p.client.thread import Context

from epics_pva import Interface, InvalidInputError, ReadError, SetResult, wait_for_readback
from softioc import Outage

CONFIG = {
    "ioc": {"seed": 7, "update_rate": 50.0, "time_scale": 10.0},
    "setpoint": [
        {"name": "T:Q1:SET", "readback": "T:Q1:RBV", "initial": 0.5, "limits": [-10, 10],
         "lag": "first_order", "tau": 0.5, "noise": 0.0},
        {"name": "T:Q2:SET", "readback": "T:Q2:RBV", "initial": -0.5, "limits": [-5, 5],
         "lag": "none", "noise": 0.0},
        {"name": "T:N:SET", "type": "int", "initial": 3, "limits": [0, 100]},
        {"name": "T:MODE", "type": "enum", "choices": ["Off", "On", "Standby"], "initial": "On"},
        {"name": "T:NAME", "type": "string", "initial": "quad"},
        {"name": "T:WAVE", "type": "double_array", "length": 3, "initial": [1.0, 2.0, 3.0]},
    ],
    "observable": [
        {"name": "T:OBJ", "expression": "(q1 - 1.5)**2", "inputs": {"q1": "T:Q1:RBV"}, "noise": 0.0},
    ],
}


@pytest.fixture
def softioc_config():
    return CONFIG


@pytest.fixture
def interface(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), timeout=1.0, retry_delay=0.1) as itf:
        yield itf


def readback(pv: str, **kwargs) -> partial:
    """wait_for_readback configured the way a Badger environment does it."""
    return partial(wait_for_readback, readback_pv=pv, **{"tolerance": 0.01, "count_down": 3.0,
                                                         "offset": 0.0, **kwargs})


# ---- life cycle ----------------------------------------------------------------------------

def test_construction_needs_no_argument_and_connects_lazily(soft_ioc):
    itf = Interface(conf=soft_ioc.client_conf())
    assert itf._context is None  # nothing opened by construction
    assert Interface()._context is None  # bare construction, as Badger does it
    itf.get_values(["T:OBJ"])
    first = itf._context
    assert isinstance(first, Context)
    itf.get_values(["T:Q1:RBV"])
    itf.set_values({"T:Q2:SET": 1.0})
    assert itf._context is first  # one context for the life of the object
    itf.close()
    assert itf._context is None


def test_close_then_use_reconnects_and_context_manager_closes(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), timeout=1.0) as itf:
        assert itf.get_value("T:N:SET") == 3
    assert itf._context is None
    assert itf.get_value("T:N:SET") == 3  # usable again: reconnects lazily
    itf.close()
    itf.close()  # idempotent


@pytest.mark.parametrize("bad", [
    {"timeout": 0}, {"put_attempts": 0}, {"put_attempts": 1.5}, {"retry_delay": -1},
    {"max_workers": 0}, {"conf": "EPICS_PVA_ADDR_LIST=x"},
])
def test_bad_construction_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        Interface(**bad)


# ---- reading -------------------------------------------------------------------------------

def test_get_values_returns_python_values_in_the_order_asked(interface):
    names = ["T:WAVE", "T:OBJ", "T:MODE", "T:N:SET", "T:NAME", "T:Q1:RBV"]
    values = interface.get_values(names)
    assert list(values) == names
    assert type(values["T:Q1:RBV"]) is float and values["T:Q1:RBV"] == pytest.approx(0.5)
    assert type(values["T:OBJ"]) is float and values["T:OBJ"] == pytest.approx(1.0)
    assert type(values["T:N:SET"]) is int and values["T:N:SET"] == 3
    assert values["T:MODE"] == "On"  # enum -> its label
    assert type(values["T:NAME"]) is str and values["T:NAME"] == "quad"
    assert type(values["T:WAVE"]) is np.ndarray  # a plain array, not p4p's wrapper
    np.testing.assert_array_equal(values["T:WAVE"], [1.0, 2.0, 3.0])
    assert interface.get_value("T:MODE") == "On"
    assert interface.get_values([]) == {}


def test_get_values_names_every_unreadable_pv_after_reading_the_others(interface):
    with pytest.raises(ReadError) as info:
        interface.get_values(["T:OBJ", "T:MISSING:A", "T:N:SET", "T:MISSING:B"])
    error = info.value
    assert set(error.failures) == {"T:MISSING:A", "T:MISSING:B"}
    assert error.values == {"T:OBJ": pytest.approx(1.0), "T:N:SET": 3}
    message = str(error)
    assert "Could not read 2 of 4 PV(s)" in message
    assert "T:MISSING:A: no reply within 1 s" in message and "T:MISSING:B" in message
    assert "T:OBJ" not in message


def test_get_values_can_return_nan_for_failed_reads(soft_ioc, caplog):
    itf = Interface(conf=soft_ioc.client_conf(), timeout=0.5, nan_on_read_error=True)
    with itf, caplog.at_level(logging.WARNING, logger="epics_pva"):
        values = itf.get_values(["T:MISSING", "T:N:SET"])
    assert list(values) == ["T:MISSING", "T:N:SET"]
    assert math.isnan(values["T:MISSING"]) and values["T:N:SET"] == 3
    assert "T:MISSING" in caplog.text and "NaN" in caplog.text


@pytest.mark.parametrize("names, why", [
    ("T:OBJ", "not one string"),
    (["T:OBJ", "T:OBJ"], "more than once"),
    (["T:OBJ", ""], "empty PV name"),
    ([3], "must be a string"),
    (["T:OBJ X"], "whitespace"),
])
def test_get_values_refuses_bad_names(interface, names, why):
    with pytest.raises(InvalidInputError, match=why):
        interface.get_values(names)


def test_get_values_reads_again_after_the_ioc_restarts(soft_ioc):
    # the read during the downtime must give up (0.5 s) well before the server returns (2 s)
    interface = Interface(conf=soft_ioc.client_conf(), timeout=0.5)
    assert interface.get_value("T:N:SET") == 3
    soft_ioc.restart(downtime=2.0, wait=False)
    with pytest.raises(ReadError, match="T:N:SET"):
        interface.get_values(["T:N:SET"])
    deadline = time.monotonic() + 15.0
    while True:  # the same Interface reconnects by itself once the server is back
        try:
            assert interface.get_value("T:N:SET") == 3
            break
        except ReadError:
            assert time.monotonic() < deadline, "not readable 15 s after the restart"
    interface.set_values({"T:N:SET": 7})
    assert [r.value for r in soft_ioc.audit.puts("T:N:SET")] == [7]
    interface.close()


def test_an_outage_of_one_pv_fails_only_that_pv_and_it_comes_back(soft_ioc):
    interface = Interface(conf=soft_ioc.client_conf(), timeout=0.5)
    soft_ioc.faults.arm("T:N:SET", Outage(duration=2.0))
    with pytest.raises(ReadError) as info:
        interface.get_values(["T:N:SET", "T:NAME"])
    assert list(info.value.failures) == ["T:N:SET"] and info.value.values == {"T:NAME": "quad"}
    deadline = time.monotonic() + 15.0
    while True:
        try:
            assert interface.get_value("T:N:SET") == 3
            break
        except ReadError:
            assert time.monotonic() < deadline, "PV not back 15 s after its outage"
    interface.close()


# ---- setting -------------------------------------------------------------------------------

def test_set_values_puts_each_value_and_reports_each_outcome(soft_ioc, interface):
    results = interface.set_values(
        {"T:Q1:SET": 1.5, "T:Q2:SET": -1.0, "T:MODE": "Standby"},
        configs={"T:Q1:SET": readback("T:Q1:RBV"), "T:Q2:SET": readback("T:Q2:RBV")},
    )
    assert list(results) == ["T:Q1:SET", "T:Q2:SET", "T:MODE"]
    assert all(isinstance(r, SetResult) and r.status == "set" and r.ok for r in results.values())
    q1 = results["T:Q1:SET"]
    assert q1.pv == "T:Q1:SET" and q1.value == 1.5 and q1.attempts == 1 and q1.error is None
    assert abs(q1.validation_result - 1.5) <= 0.01  # the settled readback is kept
    assert q1.elapsed > 0
    assert results["T:MODE"].validation_result is None
    puts = {r.pv: r.value for r in soft_ioc.audit.puts(outcome="accepted")}
    assert puts == {"T:Q1:SET": 1.5, "T:Q2:SET": -1.0, "T:MODE": 2}
    assert interface.get_value("T:MODE") == "Standby"


def test_set_value_sets_one_pv_and_returns_its_result(soft_ioc, interface):
    result = interface.set_value("T:Q2:SET", 0.2, validation_function=readback("T:Q2:RBV"))
    assert result.status == "set" and result.validation_result == pytest.approx(0.2, abs=0.01)
    assert interface.set_value("T:N:SET", 9).status == "set"
    assert [(r.pv, r.value) for r in soft_ioc.audit.puts()] == [("T:Q2:SET", 0.2), ("T:N:SET", 9)]


def test_empty_inputs_set_nothing_and_say_so(soft_ioc, interface, caplog):
    with caplog.at_level(logging.INFO, logger="epics_pva"):
        assert interface.set_values({}) == {}
    assert "nothing to set" in caplog.text
    assert soft_ioc.audit.puts() == []


def test_configs_for_pvs_not_being_set_are_ignored(soft_ioc, interface):
    called = []
    results = interface.set_values(
        {"T:Q2:SET": 0.3}, configs={"T:Q1:SET": lambda **kw: called.append(kw)})
    assert results["T:Q2:SET"].status == "set" and called == []
    assert [r.pv for r in soft_ioc.audit.puts()] == ["T:Q2:SET"]


def test_logging_put_debug_and_total_time_info(soft_ioc, interface, caplog):
    with caplog.at_level(logging.DEBUG, logger="epics_pva"):
        interface.set_values({"T:Q2:SET": 0.1, "T:N:SET": 4})
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert "put T:Q2:SET = 0.1 (attempt 1 of 2)" in debug
    assert "put T:N:SET = 4 (attempt 1 of 2)" in debug
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.startswith("set 2 PV(s) in ") and "2 set, 0 failed" in m for m in info)


# ---- read-only -----------------------------------------------------------------------------

def test_read_only_sends_nothing_runs_no_validation_and_logs_what_it_would_set(soft_ioc, caplog):
    calls = []

    def sneaky(set_pv, set_value, context, timeout):
        calls.append(set_pv)
        context.put(set_pv, 9.0)  # a validation function must never get the chance to write

    itf = Interface(read_only=True, conf=soft_ioc.client_conf(), timeout=1.0)
    with itf, caplog.at_level(logging.INFO, logger="epics_pva"):
        results = itf.set_values({"T:Q1:SET": 2.0, "T:Q2:SET": 1.0},
                                 configs={"T:Q1:SET": sneaky, "T:Q2:SET": sneaky})
        single = itf.set_value("T:N:SET", 5, validation_function=sneaky)
        values = itf.get_values(["T:Q1:SET", "T:N:SET"])  # reading works as usual
    assert soft_ioc.audit.puts() == []
    assert calls == []
    assert {r.status for r in results.values()} == {"read_only"} and single.status == "read_only"
    assert values == {"T:Q1:SET": 0.5, "T:N:SET": 3}
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "read-only: would set T:Q1:SET = 2.0, T:Q2:SET = 1.0" in logged
    assert "read-only: would set T:N:SET = 5" in logged


def test_read_only_still_refuses_what_a_real_run_would_refuse(soft_ioc):
    with Interface(read_only=True, conf=soft_ioc.client_conf(), timeout=1.0) as itf:
        with pytest.raises(InvalidInputError, match="outside the PV's control limits"):
            itf.set_values({"T:Q1:SET": 50.0})
    assert soft_ioc.audit.puts() == []


# ---- threads -------------------------------------------------------------------------------

def test_one_interface_shared_by_threads(soft_ioc, interface):
    errors: list[BaseException] = []
    rounds = 15

    def worker(k: int) -> None:
        try:
            for i in range(rounds):
                interface.set_values({"T:N:SET": k * 10 + i % 10, "T:Q2:SET": k * 0.1})
                assert set(interface.get_values(["T:OBJ", "T:N:SET", "T:MODE"])) == {
                    "T:OBJ", "T:N:SET", "T:MODE"}
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(soft_ioc.audit.puts(outcome="accepted")) == 8 * rounds * 2

