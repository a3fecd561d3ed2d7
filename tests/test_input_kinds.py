"""Every kind of value numpy and Python can hand over is put as the value it means, or refused
before any put with an error naming the PV, the value and why; what reached the server is
checked where it arrived (the soft IOC's audit, or what a p4p server's put handler saw).

And every parameter of wait_for_readback in a config is checked before the first put.
"""

from __future__ import annotations

import decimal
import fractions
import math
import numbers
from functools import partial

import numpy as np
import pytest
from p4p.nt import NTScalar
from p4p.server import Server
from p4p.server.thread import SharedPV

from epics_pva import Interface, InvalidInputError, wait_for_readback

CONFIG = {
    "ioc": {"seed": 13, "update_rate": 50.0},
    "setpoint": [
        {"name": "K:D:SET", "readback": "K:D:RBV", "limits": [-100, 100], "lag": "none", "noise": 0.0},
        {"name": "K:E:SET", "readback": "K:E:RBV", "limits": [-100, 100], "lag": "none", "noise": 0.0},
        {"name": "K:N:SET", "type": "int"},
        {"name": "K:MODE", "type": "enum", "choices": ["Off", "On"]},
        {"name": "K:NAME", "type": "string"},
        {"name": "K:WAVE", "type": "double_array", "length": 4},
    ],
}


@pytest.fixture
def softioc_config():
    return CONFIG


@pytest.fixture
def interface(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), timeout=2.0) as itf:
        yield itf


class OddFloat(float):
    """A float whose __float__ lies: the value it holds (and shows, and computes with) is its own."""

    def __float__(self) -> float:
        return 99.0


class FloatRaises(float):
    def __float__(self) -> float:
        raise RuntimeError("no float for you")


class OddInt(int):
    def __int__(self) -> int:
        return 99

    def __index__(self) -> int:
        return 99

    def __float__(self) -> float:
        return 99.0


class OddStr(str):
    """A str that says it equals anything and prints as something else."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return "On"


class Opaque(numbers.Real):
    """A number type known only by its registration as a Real: its __float__ is all it has."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def __float__(self) -> float:
        if self.fail:
            raise ArithmeticError("cannot say")
        return 0.75

    def __repr__(self) -> str:
        return f"Opaque({self.fail})"

    # the abstract methods of numbers.Real, unused
    __abs__ = __add__ = __ceil__ = __eq__ = __floor__ = __floordiv__ = __le__ = __lt__ = __mod__ = None  # type: ignore
    __mul__ = __neg__ = __pos__ = __pow__ = __radd__ = __rfloordiv__ = __rmod__ = __rmul__ = None  # type: ignore
    __round__ = __rpow__ = __rtruediv__ = __truediv__ = __trunc__ = None  # type: ignore
    __hash__ = object.__hash__


ACCEPTED = [
    # (PV, value given, what must arrive)
    ("K:D:SET", OddFloat(1.5), 1.5),
    ("K:D:SET", FloatRaises(2.5), 2.5),
    ("K:D:SET", OddInt(5), 5.0),
    ("K:D:SET", np.float32(2.5), 2.5),
    ("K:D:SET", np.float16(-0.5), -0.5),
    ("K:D:SET", np.longdouble("1.25"), 1.25),
    ("K:D:SET", np.int8(-7), -7.0),
    ("K:D:SET", np.uint64(42), 42.0),
    ("K:D:SET", np.array(3.0), 3.0),  # 0-d array
    ("K:D:SET", np.ma.array(2.0), 2.0),  # a 0-d masked array, nothing masked
    ("K:D:SET", np.ma.array([1.0, 6.5])[1], 6.5),  # an element of a masked array, not masked
    ("K:D:SET", fractions.Fraction(1, 4), 0.25),
    ("K:D:SET", decimal.Decimal("0.5"), 0.5),
    ("K:D:SET", Opaque(fail=False), 0.75),
    ("K:N:SET", OddInt(5), 5),
    ("K:N:SET", np.uint8(7), 7),
    ("K:N:SET", decimal.Decimal("7"), 7),
    ("K:N:SET", fractions.Fraction(8, 2), 4),
    ("K:N:SET", 6.0, 6),
    ("K:N:SET", True, 1),
    ("K:N:SET", np.bool_(True), 1),
    ("K:MODE", np.str_("On"), 1),
    ("K:MODE", np.int64(1), 1),
    ("K:NAME", OddStr("abc"), "abc"),
    ("K:NAME", np.str_("text"), "text"),
    ("K:WAVE", [OddFloat(1.5), OddInt(2), np.float32(0.25)], [1.5, 2.0, 0.25]),
    ("K:WAVE", np.ma.array([1.0, 2.0], mask=[False, False]), [1.0, 2.0]),
    ("K:WAVE", (np.int16(1), 2.5), [1.0, 2.5]),
]


@pytest.mark.parametrize("pv, value, arrives", ACCEPTED, ids=[f"{pv}-{type(v).__name__}" for pv, v, _ in ACCEPTED])
def test_a_value_is_put_as_the_value_it_means(soft_ioc, interface, pv, value, arrives):
    assert interface.set_values({pv: value})[pv].status == "set"
    ((record,),) = [soft_ioc.audit.puts()]
    assert record.pv == pv and record.outcome == "accepted"
    got = record.value.tolist() if hasattr(record.value, "tolist") else record.value
    assert got == arrives and type(got) is type(arrives)


REFUSED = [
    # (PV, value given, what the refusal says)
    ("K:D:SET", np.ma.masked, "is masked: it holds no value"),
    ("K:D:SET", np.ma.array([1.0], mask=[True])[0], "is masked: it holds no value"),
    ("K:D:SET", np.ma.array(2.0, mask=True), "is masked: it holds no value"),
    ("K:D:SET", decimal.Decimal("NaN"), "Decimal('NaN') is not a finite number"),
    ("K:D:SET", decimal.Decimal("sNaN"), "Decimal('sNaN') is not a finite number"),
    ("K:D:SET", decimal.Decimal("-Infinity"), "Decimal('-Infinity') is not a finite number"),
    ("K:D:SET", decimal.Decimal("1e400"), "Decimal('1E+400') is beyond the range of a double"),
    ("K:D:SET", fractions.Fraction(10**400, 3), "is beyond the range of a double"),
    ("K:D:SET", np.longdouble("1e400"), "is beyond the range of a double"),
    ("K:D:SET", Opaque(fail=True), "Opaque(True) (Opaque) cannot be read as a number: ArithmeticError: cannot say"),
    ("K:D:SET", complex(1, 0), "(1+0j) is a complex number"),
    ("K:D:SET", np.complex64(1), "is a complex number"),
    ("K:D:SET", np.datetime64("2020-01-01"), "datetime64('2020-01-01') (datetime64) is a time, not a number"),
    ("K:D:SET", np.timedelta64(5, "s"), "(timedelta64) is a time, not a number"),
    ("K:D:SET", True, "True is a bool, but the PV holds a floating-point number"),
    ("K:D:SET", None, "None is not a value"),
    ("K:D:SET", 10**400, "beyond float range"),
    ("K:D:SET", np.array(["1.0"]), "is an array, but the PV holds a single number"),
    ("K:NAME", b"abc", "b'abc' (bytes) is bytes, not text: decode it first"),
    ("K:NAME", bytearray(b"abc"), "(bytearray) is bytes, not text"),
    ("K:NAME", np.bytes_(b"abc"), "is bytes, not text"),
    ("K:N:SET", fractions.Fraction(2**60 + 1, 2), "Fraction(1152921504606846977, 2) is not a whole number"),
    ("K:N:SET", decimal.Decimal("7.5"), "Decimal('7.5') is not a whole number"),
    ("K:N:SET", decimal.Decimal("NaN"), "is not a finite number"),
    ("K:N:SET", 2.5, "2.5 is not a whole number"),
    ("K:MODE", OddStr("x"), "'x' is not one of the PV's choices ('Off', 'On')"),
    ("K:MODE", True, "True is neither a choice"),
    ("K:WAVE", np.ma.array([1.0, 2.0], mask=[False, True]), "element 1 is masked"),
    ("K:WAVE", [1.0, np.ma.masked], "element 1 is masked"),
    ("K:WAVE", [True, False], "element 0 (True) is a bool, but the PV holds numbers"),
    ("K:WAVE", np.array([True, False]), "holds bools, but the PV holds numbers"),
    ("K:WAVE", [1.0, decimal.Decimal("2")], "element 1 (Decimal('2')) is not a plain number"),
    ("K:WAVE", [1.0, None], "element 1 (None) is not a value"),
    ("K:WAVE", np.array([1, 2], dtype=object), "has elements that are not numbers (object)"),
    ("K:WAVE", [1.0, "2"], "element 1 ('2') is a string"),
]


@pytest.mark.parametrize("pv, value, why", REFUSED, ids=[f"{pv}-{type(v).__name__}" for pv, v, _ in REFUSED])
def test_a_value_that_means_nothing_the_pv_holds_is_refused_before_any_put(soft_ioc, interface, pv, value, why):
    with pytest.raises(InvalidInputError) as info:
        interface.set_values({pv: value, "K:E:SET": 1.0})
    assert list(info.value.problems) == [pv], info.value.problems
    assert why in info.value.problems[pv], info.value.problems[pv]
    assert f"{pv}: " in str(info.value)  # the message names the PV
    assert soft_ioc.audit.puts() == []  # not even the good PV was put


# ---- PV types the soft IOC does not serve: a p4p server on loopback records what arrived -------

class Received:
    def __init__(self) -> None:
        self.values: list = []

    def put(self, pv, op):
        value = op.value()
        raw = value.raw["value"] if hasattr(value, "raw") else value
        self.values.append((op.name(), raw.tolist() if hasattr(raw, "tolist") else raw))
        pv.post(value)
        op.done()


@pytest.fixture
def served():
    received = Received()
    specs = {"X:BOOL": ("?", True), "X:F32": ("f", 0.5), "X:AF32": ("af", np.zeros(2, np.float32)),
             "X:ABOOL": ("a?", np.array([False])), "X:AI": ("ai", np.zeros(2, np.int32)),
             "X:AL": ("al", np.zeros(2, np.int64)), "X:AS": ("as", ["a"])}
    pvs = {name: SharedPV(nt=NTScalar(code), initial=initial, handler=received)
           for name, (code, initial) in specs.items()}
    server = Server(providers=[pvs], isolate=True)
    with Interface(conf=server.conf(), timeout=2.0) as itf:
        yield itf, received
    server.stop()


@pytest.mark.parametrize("pv, value, arrives", [
    ("X:BOOL", decimal.Decimal("1"), True),
    ("X:BOOL", fractions.Fraction(0, 1), False),
    ("X:BOOL", np.bool_(True), True),
    ("X:F32", 3.0e38, pytest.approx(3.0e38, rel=1e-6)),
    ("X:F32", OddFloat(0.25), 0.25),
    ("X:AF32", [1.5, -3.0e38], [1.5, pytest.approx(-3.0e38, rel=1e-6)]),
    ("X:ABOOL", [0, 1, True], [False, True, True]),
    ("X:ABOOL", np.array([1.0, 0.0]), [True, False]),
    ("X:AI", [OddInt(3), np.int64(-4)], [3, -4]),
    ("X:AL", [2**62, -(2**63)], [2**62, -(2**63)]),
    ("X:AS", [OddStr("a"), np.str_("b")], ["a", "b"]),
])
def test_values_of_other_types_arrive_as_meant(served, pv, value, arrives):
    interface, received = served
    assert interface.set_values({pv: value})[pv].status == "set"
    assert received.values == [(pv, arrives)]


@pytest.mark.parametrize("pv, value, why", [
    ("X:BOOL", 0.5, "0.5 is not a bool"),
    ("X:BOOL", decimal.Decimal("2"), "is not a bool"),
    ("X:F32", 1e39, "1e+39 is beyond the range of a float32"),
    ("X:F32", -math.inf, "-inf is not a finite number"),
    ("X:AF32", [1.0, 1e39], "element 1 (1e+39) is beyond the range of a float32"),
    ("X:ABOOL", [0, 0.5], "element 1 (0.5) is not a bool (True/False or 0/1)"),
    ("X:ABOOL", [0, 2], "element 1 (2) is not a bool"),
    ("X:AL", [float(2**63)], "outside the PV's integer type range"),
    ("X:AL", np.array([9.3e18]), "outside the PV's integer type range"),
    ("X:AI", [1, 2**40], "outside the PV's integer type range"),
    ("X:AS", ["a", "b\x00c"], "element 1 ('b\\x00c') contains the character '\\x00'"),
    ("X:AS", ["a", b"b"], "element 1 (b'b') is not a string"),
])
def test_values_of_other_types_that_do_not_fit_are_refused(served, pv, value, why):
    interface, received = served
    with pytest.raises(InvalidInputError) as info:
        interface.set_values({pv: value})
    assert why in info.value.problems[pv], info.value.problems[pv]
    assert received.values == []


# ---- wait_for_readback's parameters, checked before the first put ------------------------------------

def readback(**changes):
    keywords = {"readback_pv": "K:D:RBV", "tolerance": 0.01, "count_down": 5.0, "offset": 0.0, **changes}
    return partial(wait_for_readback, **keywords)


BAD_PARAMETERS = [
    ({"tolerance": math.nan}, "tolerance", "nan"),
    ({"tolerance": -0.1}, "tolerance", "-0.1"),
    ({"tolerance": math.inf}, "tolerance", "inf"),
    ({"tolerance": "0.1"}, "tolerance", "'0.1'"),
    ({"tolerance": None}, "tolerance", "None"),
    ({"tolerance": True}, "tolerance", "True"),
    ({"tolerance": decimal.Decimal("0.1")}, "tolerance", "Decimal('0.1')"),
    ({"tolerance": [0.1]}, "tolerance", "[0.1]"),
    ({"count_down": math.nan}, "count_down", "nan"),
    ({"count_down": -1.0}, "count_down", "-1.0"),
    ({"count_down": "5"}, "count_down", "'5'"),
    ({"count_down": np.bool_(True)}, "count_down", "True"),
    ({"count_down": 0}, "count_down", "0"),
    ({"count_down": math.inf}, "count_down", "inf"),
    ({"offset": math.nan}, "offset", "nan"),
    ({"offset": math.inf}, "offset", "inf"),
    ({"offset": -math.inf}, "offset", "-inf"),
    ({"offset": "0"}, "offset", "'0'"),
    ({"readback_pv": 5}, "readback_pv", "5"),
    ({"readback_pv": ""}, "readback_pv", "''"),
    ({"readback_pv": "K:D RBV"}, "readback_pv", "'K:D RBV'"),
    ({"readback_pv": None}, "readback_pv", "None"),
]


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "in_order"])
@pytest.mark.parametrize("changes, name, shown", BAD_PARAMETERS,
                         ids=[f"{n}={s}" for _, n, s in BAD_PARAMETERS])
def test_a_bad_wait_for_readback_parameter_is_refused_before_any_put(soft_ioc, changes, name, shown, parallel):
    with Interface(conf=soft_ioc.client_conf(), timeout=2.0, parallel=parallel) as itf:
        with pytest.raises(InvalidInputError) as info:
            itf.set_values({"K:E:SET": 1.0, "K:D:SET": 2.0}, {"K:D:SET": readback(**changes)})
    assert list(info.value.problems) == ["K:D:SET"]
    why = info.value.problems["K:D:SET"]
    assert f"wait_for_readback: {name} " in why and shown in why, why
    assert soft_ioc.audit.puts() == []


def test_nested_partials_are_checked_too(soft_ioc, interface):
    nested = partial(partial(wait_for_readback, readback_pv="K:D:RBV", offset=0.0), tolerance=-1, count_down=1.0)
    with pytest.raises(InvalidInputError, match="K:D:SET: wait_for_readback: tolerance must be"):
        interface.set_values({"K:D:SET": 2.0}, {"K:D:SET": nested})
    assert soft_ioc.audit.puts() == []


@pytest.mark.parametrize("good", [
    {"tolerance": 0}, {"tolerance": np.float32(0.5)}, {"tolerance": fractions.Fraction(1, 10)},
    {"count_down": 0.5}, {"count_down": np.int64(3)},
    {"offset": -2, "tolerance": 3.0},  # expects 0 within 3 of a readback of 2
], ids=lambda d: "-".join(f"{k}={v!r}" for k, v in d.items()))
def test_parameters_at_the_edges_are_taken(soft_ioc, interface, good):
    result = interface.set_values({"K:D:SET": 2.0}, {"K:D:SET": readback(**good)})
    assert result["K:D:SET"].status == "set"


def test_wait_for_readback_called_directly_checks_its_parameters(pva_client):
    with pytest.raises(ValueError, match="wait_for_readback: tolerance must be a finite number >= 0, not nan"):
        wait_for_readback("K:D:SET", 1.0, "K:D:RBV", math.nan, 1.0, 0.0, pva_client, 1.0)
    with pytest.raises(ValueError, match="wait_for_readback: readback_pv "):
        wait_for_readback("K:D:SET", 1.0, "", 0.1, 1.0, 0.0, pva_client, 1.0)
