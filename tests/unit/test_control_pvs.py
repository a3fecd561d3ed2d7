"""Control PVs without a server: the fault spec a FAULT:ARM put carries, and the table of control
PVs (over the wire: tests/test_control_pvs.py)."""

import re

import pytest

from softioc.server import CONTROL_PVS, control_pvs, parse_fault_spec


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("X:SET put_timeout", {"pv": "X:SET", "kind": "put_timeout"}),
        ("X:SET put_timeout count=2 apply=true complete_after=0.5",
         {"pv": "X:SET", "kind": "put_timeout", "count": 2, "apply": True, "complete_after": 0.5}),
        ("X:SET put_reject count=null message='beam permit lost'",
         {"pv": "X:SET", "kind": "put_reject", "count": None, "message": "beam permit lost"}),
        ('X:SET put_reject message="3"', {"pv": "X:SET", "kind": "put_reject", "message": 3}),
        ("* outage duration=1.5", {"pv": "*", "kind": "outage", "duration": 1.5}),
        ("X:SET readback_bias bias=-0.25 drift=1e-3", {"pv": "X:SET", "kind": "readback_bias", "bias": -0.25, "drift": 0.001}),
    ],
)
def test_parse_fault_spec(text, spec):
    assert parse_fault_spec(text) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected 'PV KIND key=value ...'"),
        ("X:SET", "expected 'PV KIND key=value ...'"),
        ("X:SET put_timeout count", "expected key=value, got 'count'"),
        ("X:SET put_timeout =2", "expected key=value, got '=2'"),
        ("X:SET put_reject message='open", "cannot parse"),
    ],
)
def test_parse_fault_spec_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_fault_spec(text)


def test_a_handler_for_a_control_pv_outside_the_table_is_refused():
    made = []
    with pytest.raises(ValueError, match=r"not in the table: \['FAULT:ARMED'\]"):
        control_pvs("P:", CONTROL_PVS, lambda *row: made.append(row), {"FAULT:ARMED": object()})
    assert made == []  # refused before any PV is made


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("X:SET put_reject count=1 count=2", "key 'count' is given twice"),
        ("X:SET put_reject message=a message=b", "key 'message' is given twice"),
        ("X:SET put_reject pv=Y:SET", "key 'pv' is the first word"),
        ("X:SET put_reject kind=put_timeout", "key 'kind' is the second word"),
        ("X:SET put_reject message=\x01", r"contains the character '\x01'"),
        ("X:SET put_reject message=\ud800", "contains the character '\\ud800'"),
        ("x" * 10_001, "10,001 characters long; the limit is 10,000"),
        ("X:SET put_reject message=" + "m" * 10**6, "1,000,025 characters long"),
        ("X:SET put_reject count=" + "[" * 5000 + "]" * 5000, "count"),
    ],
)
def test_fault_specs_that_override_or_overflow_are_refused(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_fault_spec(text)
