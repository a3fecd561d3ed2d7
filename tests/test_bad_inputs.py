"""The bad-input catalogue: every input an optimiser or a config can get wrong, and what it does.

tests/test_interface_inputs.py already covers the basic refusals (NaN and inf for a double, a
string or a list for a double, values beyond the limits, an unknown PV, an empty or non-string
name, a too-long array refused by the server). This module covers the rest of the catalogue:
the same mistakes on the other PV types and at the edges, duplicates, empty calls, validation
functions that raise the unexpected or overrun their own time limit, and configs for PVs that
are not being set. Each case gets a clear error, or a decision that is logged and asserted
here, and leaves the soft IOC's audit exactly as expected.
"""

from __future__ import annotations

import fractions
import logging
import math
import threading
import time
from functools import partial

import numpy as np
import pytest

from epics_pva import (
    Interface,
    InvalidInputError,
    PutError,
    SetValuesError,
    ValidationError,
    wait_for_readback,
)

CONFIG = {
    "ioc": {"seed": 29, "update_rate": 50.0, "time_scale": 10.0},
    "setpoint": [
        {"name": "BI:D:SET", "readback": "BI:D:RBV", "limits": [-10, 10], "lag": "none", "noise": 0.0},
        {"name": "BI:E:SET", "readback": "BI:E:RBV", "limits": [-10, 10], "lag": "none", "noise": 0.0},
        {"name": "BI:FREE:SET"},  # no limits published
        {"name": "BI:N:SET", "type": "int", "limits": [0, 100]},
        {"name": "BI:BIG:SET", "type": "int"},  # int32, no limits
        {"name": "BI:MODE", "type": "enum", "choices": ["Off", "On"]},
        {"name": "BI:NAME", "type": "string"},
        {"name": "BI:WAVE", "type": "double_array", "length": 4, "limits": [-1, 1]},
    ],
}
TIMEOUT = 3.0  # every put here should succeed: within it, on a loaded machine too


@pytest.fixture
def softioc_config():
    return CONFIG


@pytest.fixture
def interface(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), timeout=TIMEOUT, retry_delay=0.05) as itf:
        yield itf


def settle(readback: str, count_down: float = 5.0) -> partial:
    return partial(wait_for_readback, readback_pv=readback, tolerance=0.01, count_down=count_down,
                   offset=0.0)


def audited(ioc) -> list[tuple[str, object, str]]:
    return [(r.pv, r.value, r.outcome) for r in ioc.audit.puts()]


# ---- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, key, why", [
    ("   ", "   ", "empty PV name"),
    (None, "None", "a PV name must be a string, not NoneType"),
    (b"BI:D:SET", "b'BI:D:SET'", "a PV name must be a string, not bytes"),
    (("BI", "D"), "('BI', 'D')", "a PV name must be a string, not tuple"),
    (1.5, "1.5", "a PV name must be a string, not float"),
    ("BI:D:SET\n", "BI:D:SET\n", "whitespace"),
])
def test_bad_names_are_refused_for_reads_and_sets_alike(soft_ioc, interface, name, key, why):
    with pytest.raises(InvalidInputError) as read:
        interface.get_values(["BI:D:SET", name])
    with pytest.raises(InvalidInputError) as put:
        interface.set_values({"BI:D:SET": 1.0, name: 1.0})
    for error in (read.value, put.value):
        assert list(error.problems) == [key] and why in error.problems[key]
    assert str(read.value).startswith("Refused to read anything")
    assert str(put.value).startswith("Refused to set anything")
    assert audited(soft_ioc) == []  # not even the good PV was set


def test_an_unknown_pv_among_good_ones_stops_the_call_and_names_only_itself(soft_ioc, interface):
    with pytest.raises(InvalidInputError) as info:
        interface.set_values({"BI:D:SET": 1.0, "BI:NOPE:SET": 1.0, "BI:N:SET": 5})
    assert list(info.value.problems) == ["BI:NOPE:SET"]
    assert info.value.problems["BI:NOPE:SET"] == (
        f"cannot read the PV: no reply within {TIMEOUT:g} s (unknown PV, or its server is down)")
    with pytest.raises(InvalidInputError, match="BI:NOPE:SET: cannot read the PV"):
        interface.set_value("BI:NOPE:SET", 1.0)
    assert audited(soft_ioc) == []


def test_an_unknown_readback_in_a_validation_is_a_validation_failure_after_one_put(soft_ioc, interface):
    with pytest.raises(ValidationError) as info:
        interface.set_value("BI:D:SET", 2.0, validation_function=settle("BI:NOPE:RBV"))
    assert str(info.value).startswith(
        f"BI:D:SET = 2.0: validation failed: PV BI:D:SET: readback BI:NOPE:RBV sent no value "
        f"within {TIMEOUT:g} s")
    assert audited(soft_ioc) == [("BI:D:SET", 2.0, "accepted")]  # set once, not re-put


def test_duplicate_names_cannot_reach_a_set(soft_ioc, interface):
    # a dict holds each name once; given any other way (pairs) the call is refused as malformed
    with pytest.raises(InvalidInputError, match="expected a dict of PV name -> value, not list"):
        interface.set_values([("BI:D:SET", 1.0), ("BI:D:SET", 2.0)])
    with pytest.raises(InvalidInputError, match="BI:D:SET: PV name given more than once"):
        interface.get_values(["BI:D:SET", "BI:N:SET", "BI:D:SET"])
    assert audited(soft_ioc) == []


# ---- empty calls ---------------------------------------------------------------------------

def test_an_empty_set_touches_nothing_not_even_the_network(soft_ioc, caplog):
    ran = []
    stopped = {"EPICS_PVA_ADDR_LIST": "127.0.0.1:9", "EPICS_PVA_AUTO_ADDR_LIST": "NO"}  # no server
    with Interface(conf=stopped, timeout=TIMEOUT) as itf, caplog.at_level(logging.INFO, logger="epics_pva"):
        assert itf.set_values({}, configs={"BI:D:SET": lambda **kw: ran.append(kw)}) == {}
        assert itf.get_values([]) == {}
        assert itf._context is None  # no client context was even opened
    assert ran == [] and audited(soft_ioc) == []
    assert "set_values called with no inputs: nothing to set" in caplog.text


# ---- values --------------------------------------------------------------------------------

@pytest.mark.parametrize("pv, value, why", [
    # NaN and infinities on every numeric kind, whatever the PV's limits
    ("BI:N:SET", math.nan, "nan is not a finite number"),
    ("BI:N:SET", -math.inf, "-inf is not a finite number"),
    ("BI:FREE:SET", math.inf, "inf is not a finite number"),  # no limits, still refused
    ("BI:FREE:SET", np.float32("nan"), "nan is not a finite number"),
    ("BI:MODE", math.nan, "nan is neither a choice ('Off', 'On') nor a choice index"),
    ("BI:NAME", math.nan, "nan (float) is not a string, but the PV holds one"),
    ("BI:WAVE", [0.5, -math.inf], "contains NaN or infinite elements"),
    # strings for numbers
    ("BI:N:SET", "7", "'7' is a string, but the PV holds a number"),
    ("BI:D:SET", "  ", "'  ' is a string, but the PV holds a number"),
    ("BI:D:SET", b"1.0", "b'1.0' (bytes) is bytes, not text: decode it first"),
    # arrays for scalars
    ("BI:D:SET", [], "[] is an array, but the PV holds a single number"),
    ("BI:D:SET", np.array([1.0]), "[1.] is an array, but the PV holds a single number"),
    ("BI:D:SET", (1.0,), "(1.0,) is an array, but the PV holds a single number"),
    ("BI:N:SET", [1], "[1] is an array, but the PV holds a single number"),
    ("BI:MODE", ["On"], "['On'] is neither a choice ('Off', 'On') nor a choice index"),
    ("BI:NAME", ["a"], "['a'] (list) is not a string, but the PV holds one"),
    # limits and ranges, at the edges
    ("BI:D:SET", np.nextafter(10.0, 11.0), "10.000000000000002 is outside the PV's control limits [-10, 10]"),
    ("BI:D:SET", -10.000001, "is outside the PV's control limits [-10, 10]"),
    ("BI:BIG:SET", 2**31, "2147483648 does not fit the PV's integer type (range -2147483648..2147483647)"),
    ("BI:WAVE", [1.0, 1.0000001], "element 1 (1) is outside the PV's control limits [-1, 1]"),
])
def test_bad_values_are_refused_before_any_put(soft_ioc, interface, pv, value, why):
    with pytest.raises(InvalidInputError) as info:
        interface.set_values({pv: value, "BI:E:SET": 1.0})
    assert list(info.value.problems) == [pv] and why in info.value.problems[pv]
    assert audited(soft_ioc) == []


@pytest.mark.parametrize("pv, value, sent", [
    ("BI:D:SET", 10.0, 10.0),  # the limits themselves are inside
    ("BI:D:SET", -10, -10.0),
    ("BI:D:SET", -0.0, -0.0),
    ("BI:D:SET", fractions.Fraction(1, 4), 0.25),  # any real number type converts
    ("BI:BIG:SET", -(2**31), -(2**31)),
    ("BI:WAVE", [-1.0, 1.0], [-1.0, 1.0]),
])
def test_values_at_the_edges_are_accepted(soft_ioc, interface, pv, value, sent):
    assert interface.set_value(pv, value).status == "set"
    ((got_pv, got, outcome),) = audited(soft_ioc)
    assert (got_pv, outcome) == (pv, "accepted") and np.array_equal(got, sent)


def test_an_oversized_array_is_one_rejected_put_with_a_short_message(soft_ioc):
    # the PV does not publish its length: the IOC refuses it, once (not retried), and the
    # message shows the start of the array, not a million numbers
    big = np.zeros(1_000_000)
    with Interface(conf=soft_ioc.client_conf(), timeout=10.0) as itf:  # 8 MB on the wire
        with pytest.raises(SetValuesError) as info:
            itf.set_values({"BI:WAVE": big, "BI:E:SET": 1.0})
    result = info.value.results["BI:WAVE"]
    assert (result.status, result.attempts, type(result.error)) == ("failed", 1, PutError)
    assert "BI:WAVE: 1000000 elements, at most 4 allowed" in str(info.value)
    assert len(str(info.value)) < 400
    assert info.value.results["BI:E:SET"].status == "set"  # the other PV was set (parallel)
    assert sorted((pv, outcome) for pv, _, outcome in audited(soft_ioc)) == [
        ("BI:E:SET", "accepted"), ("BI:WAVE", "rejected")]


# ---- validation functions that misbehave ------------------------------------------------------

def _raises(exc):
    def validate(**kwargs):
        raise exc
    return validate


def _wrong_signature(pv, value):  # not the documented keyword signature: refused before the put
    return value


def _writes_a_readback(set_pv, set_value, context, timeout):
    context.put(set_pv.replace(":SET", ":RBV"), set_value, timeout=timeout)


@pytest.mark.parametrize("function, cause, text, also_audited", [
    (_raises(TimeoutError("readback server did not answer")), TimeoutError,
     "readback server did not answer", []),
    (_raises(RecursionError()), RecursionError, "RecursionError", []),
    (_writes_a_readback, RuntimeError, "BI:D:RBV is read-only (not a setpoint)",
     [("BI:D:RBV", 3.0, "rejected")]),
])
def test_whatever_a_validation_function_raises_fails_that_pv_only_and_is_never_re_put(
        soft_ioc, interface, function, cause, text, also_audited):
    with pytest.raises(SetValuesError) as info:
        interface.set_values({"BI:D:SET": 3.0, "BI:E:SET": 3.0},
                             configs={"BI:D:SET": function, "BI:E:SET": settle("BI:E:RBV")})
    result = info.value.results["BI:D:SET"]
    assert (result.status, result.attempts, type(result.error)) == ("failed", 1, ValidationError)
    assert isinstance(result.error.cause, cause) and text in str(result.error)
    assert info.value.results["BI:E:SET"].status == "set"
    # a TimeoutError from validation is not a put timeout: the setpoint was put exactly once
    assert sorted(audited(soft_ioc)) == sorted(
        [("BI:D:SET", 3.0, "accepted"), ("BI:E:SET", 3.0, "accepted"), *also_audited])


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "in_order"])
def test_a_validation_function_calling_sys_exit_is_a_validation_failure(soft_ioc, parallel):
    """The contract (issue 4): whatever the function raises becomes a validation failure for
    that PV. max_workers=1 queues the parallel tasks, so the race is deterministic."""
    itf = Interface(conf=soft_ioc.client_conf(), timeout=TIMEOUT, parallel=parallel, max_workers=1)
    inputs = {"BI:D:SET": 1.0, "BI:E:SET": 2.0, "BI:FREE:SET": 3.0}
    try:
        itf.set_values(inputs, configs={"BI:D:SET": _raises(SystemExit("validation called exit"))})
        raised: BaseException | None = None
    except BaseException as exc:  # noqa: BLE001 - SystemExit is the point of the test
        raised = exc
    at_return = audited(soft_ioc)
    threading.Event().wait(0.3)  # long enough for a still-queued task's put to arrive
    later = audited(soft_ioc)
    itf.close()
    assert later == at_return, f"puts reached the IOC after set_values had returned: {later[len(at_return):]}"
    assert isinstance(raised, SetValuesError), f"set_values raised {raised!r}"
    statuses = {pv: r.status for pv, r in raised.results.items()}
    assert statuses["BI:D:SET"] == "failed"
    assert isinstance(raised.results["BI:D:SET"].error, ValidationError)
    assert statuses["BI:E:SET"] == statuses["BI:FREE:SET"] == ("set" if parallel else "not_attempted")


def test_a_validation_function_that_overruns_its_own_count_down_is_waited_for(soft_ioc, interface, caplog):
    """Decision: the interface cannot interrupt a Python function, so it waits for it; what the
    function returns is its result, the overrun shows in `elapsed` and in the INFO line of the
    call's total time, and in parallel mode the other PVs are not held up by it."""
    other_done = threading.Event()

    def overrunning(set_pv, set_value, context, timeout, count_down):
        time.sleep(count_down + 0.4)  # ignores its own limit (a slow function, not a synchronisation)
        other_done.wait(30.0)  # and keeps running until the other PV's validation has finished
        return "late"

    def other(**kwargs):
        result = settle("BI:E:RBV")(**kwargs)
        other_done.set()
        return result

    with caplog.at_level(logging.INFO, logger="epics_pva"):
        results = interface.set_values(
            {"BI:D:SET": 4.0, "BI:E:SET": 4.0},
            configs={"BI:D:SET": partial(overrunning, count_down=0.2), "BI:E:SET": other})
    slow, other_result = results["BI:D:SET"], results["BI:E:SET"]
    assert (slow.status, slow.validation_result) == ("set", "late")
    assert slow.elapsed > 0.6  # waited for past its count_down of 0.2 s
    # the other PV finished while the overrunning function still ran: it was not held up by it
    assert other_done.is_set() and other_result.status == "set"
    assert any(r.getMessage().startswith("set 2 PV(s) in ") for r in caplog.records)
    assert sorted(audited(soft_ioc)) == [("BI:D:SET", 4.0, "accepted"), ("BI:E:SET", 4.0, "accepted")]


def test_wait_for_readback_with_a_nan_count_down_is_refused_before_any_put(soft_ioc, interface):
    with pytest.raises(InvalidInputError, match="BI:D:SET: wait_for_readback: count_down must be a finite number of "
                                                "seconds > 0, not nan"):
        interface.set_value("BI:D:SET", 5.0, validation_function=settle("BI:D:RBV", count_down=math.nan))
    assert audited(soft_ioc) == []


# ---- configs -----------------------------------------------------------------------------

def test_configs_for_pvs_not_being_set_are_ignored_and_logged(soft_ioc, interface, caplog):
    ran = []
    configs = {
        "BI:E:SET": lambda **kw: ran.append(kw["set_pv"]),  # a PV that is not being set
        "BI:N:SET": "not callable",  # not callable, but not used either: no refusal
        5: print,  # not even a name
        "BI:D:SET": None,  # explicitly no validation
    }
    with caplog.at_level(logging.DEBUG, logger="epics_pva"):
        results = interface.set_values({"BI:D:SET": 6.0}, configs=configs)
    assert (results["BI:D:SET"].status, results["BI:D:SET"].validation_result) == ("set", None)
    assert ran == []
    assert "no input for configs key(s) ['BI:E:SET', 'BI:N:SET', 5]: their validation is not run" in caplog.text
    assert audited(soft_ioc) == [("BI:D:SET", 6.0, "accepted")]


@pytest.mark.parametrize("names", [None, 3.0, "DEMO:Q1:RBV"])
def test_get_values_refuses_what_is_not_a_list_of_names_as_set_values_does(soft_ioc, interface, names):
    with pytest.raises(InvalidInputError, match="list of PV names"):
        interface.get_values(names)
    with pytest.raises(InvalidInputError):
        interface.set_values(names)


# ---- validation functions that cannot take the call's arguments ------------------------------

def _no_timeout(set_pv, set_value, context):  # takes no `timeout`
    raise AssertionError("never called")


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("function, missing", [
    (partial(wait_for_readback, readback_pv="BI:D:RBV", count_down=5.0, offset=0.0), "tolerance"),
    (partial(wait_for_readback, readback_pv="BI:D:RBV", tolerance=0.1, offset=0.0), "count_down"),
    (_no_timeout, "timeout"),
    (_wrong_signature, "missing a required argument: 'pv'"),
])
def test_a_validation_function_that_cannot_take_the_call_is_refused_before_any_put(
        soft_ioc, function, missing, parallel):
    with Interface(conf=soft_ioc.client_conf(), timeout=TIMEOUT, parallel=parallel) as itf:
        with pytest.raises(InvalidInputError) as caught:
            itf.set_values({"BI:E:SET": 1.0, "BI:D:SET": 2.0},
                           {"BI:E:SET": settle("BI:E:RBV"), "BI:D:SET": function})
    assert list(caught.value.problems) == ["BI:D:SET"]
    why = caught.value.problems["BI:D:SET"]
    assert "validation function" in why and missing in why
    assert audited(soft_ioc) == []  # nothing was sent, not even the PV with a good function


@pytest.mark.parametrize("name, why", [
    ("BI:D:\ud800", r"'\ud800'"),  # no UTF-8: p4p raised a raw UnicodeEncodeError
    ("BI:D:SET\x00", r"'\x00'"),  # NUL would end the name on the wire
])
def test_names_pvaccess_cannot_carry_are_refused_for_reads_and_sets_alike(soft_ioc, interface, name, why):
    with pytest.raises(InvalidInputError) as read:
        interface.get_values(["BI:D:SET", name])
    with pytest.raises(InvalidInputError) as put:
        interface.set_values({"BI:D:SET": 1.0, name: 1.0})
    for error in (read.value, put.value):
        assert list(error.problems) == [name] and why in error.problems[name]
    assert audited(soft_ioc) == []


@pytest.mark.parametrize("value", [10**400, -(10**309)])
def test_an_integer_beyond_float_range_is_refused_for_a_double_pv(soft_ioc, interface, value):
    with pytest.raises(InvalidInputError, match="beyond float range"):
        interface.set_values({"BI:D:SET": value})  # was a raw OverflowError
    assert audited(soft_ioc) == []


def test_a_name_nested_thousands_deep_is_refused_not_a_recursion_error(soft_ioc, interface):
    deep: list = ["BI:D:SET"]
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidInputError, match="a PV name must be a string, not list"):
        interface.get_values([deep])
    with pytest.raises(InvalidInputError, match="BI:D:SET"):
        interface.set_values({"BI:D:SET": deep})
    assert audited(soft_ioc) == []


@pytest.mark.parametrize("text", ["a\x00b", "\ud800"])
def test_a_string_pvaccess_cannot_carry_is_refused_before_any_put(soft_ioc, interface, text):
    name = next(sp.name for sp in soft_ioc.config.setpoints if sp.type == "string")
    with pytest.raises(InvalidInputError, match="which PVAccess cannot carry"):
        interface.set_values({name: text})
    assert audited(soft_ioc) == []
