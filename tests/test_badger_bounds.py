"""bounds_from_limits: an environment's bounds from its PVs' control limits (no Badger needed but
for the plugin class), against the demo soft IOC and p4p servers publishing odd limits."""

from __future__ import annotations

import traceback

import pytest
from p4p.nt import NTScalar
from p4p.server import Server
from p4p.server.thread import SharedPV

from epics_pva import Interface, ReadError
from epics_pva.badger import BoundsError, PvFailure, bounds_from_limits
from softioc.pytest_plugin import demo_config_path

Q1, Q2 = "DEMO:Q1:SET", "DEMO:Q2:SET"


@pytest.fixture
def demo(softioc_factory):
    ioc = softioc_factory(demo_config_path())
    with Interface(conf=ioc.client_conf(), timeout=2.0) as interface:
        yield interface


def test_the_bounds_are_the_control_limits(demo):
    assert bounds_from_limits(demo, [Q1, Q2]) == {Q1: [-10.0, 10.0], Q2: [-10.0, 10.0]}
    # Badger passes its `variables` dict when it loads an environment: its keys are the names
    assert bounds_from_limits(demo, {Q2: [-2.0, 2.0]}) == {Q2: [-10.0, 10.0]}
    assert bounds_from_limits(demo, []) == {}


def test_a_fraction_of_the_span_or_a_delta_around_the_current_value(demo):
    # the demo starts at Q1 = 0.5, Q2 = -1.0, both within [-10, 10]
    assert bounds_from_limits(demo, [Q1, Q2], fraction=0.1) == {Q1: [-0.5, 1.5], Q2: [-2.0, 0.0]}
    assert bounds_from_limits(demo, [Q1], delta=0.25) == {Q1: [0.25, 0.75]}
    # clipped to the limits
    assert bounds_from_limits(demo, [Q1, Q2], delta=10.0) == {Q1: [-9.5, 10.0], Q2: [-10.0, 9.0]}
    assert bounds_from_limits(demo, [Q1], fraction=1.0) == {Q1: [-9.5, 10.0]}


@pytest.mark.parametrize("kwargs, message", [
    ({"fraction": 0.0}, "fraction must be within"),
    ({"fraction": 1.5}, "fraction must be within"),
    ({"delta": -1.0}, "delta must be a finite number > 0"),
    ({"delta": float("inf")}, "delta must be a finite number > 0"),
    ({"fraction": 0.1, "delta": 1.0}, "give fraction or delta, not both"),
])
def test_bad_options_are_refused(demo, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bounds_from_limits(demo, [Q1], **kwargs)


def served(**pvs):
    return Server(providers=[pvs], isolate=True)


def test_a_pv_without_limits_is_refused_naming_it():
    bare = SharedPV(nt=NTScalar("d"), initial=1.0)  # no control structure at all
    nt = NTScalar("d", control=True)
    unset = SharedPV(nt=nt, initial=1.0)  # control limits left at EPICS's 0/0
    good = SharedPV(nt=nt, initial=nt.wrap({"value": 1.0, "control": {"limitLow": 0.0, "limitHigh": 2.0}}))
    with served(**{"X:BARE": bare, "X:UNSET": unset, "X:GOOD": good}) as server:
        with Interface(conf=server.conf(), timeout=2.0) as interface:
            assert bounds_from_limits(interface, ["X:GOOD"]) == {"X:GOOD": [0.0, 2.0]}
            with pytest.raises(BoundsError) as caught:
                bounds_from_limits(interface, ["X:GOOD", "X:BARE", "X:UNSET"])
    error = caught.value
    assert list(error.problems) == ["X:BARE", "X:UNSET"] and isinstance(error, ValueError)
    assert str(error).splitlines() == [
        "No bounds from the machine for 2 of 3 variable(s):",
        "  X:BARE: publishes no control limits (no control structure); give its bounds in the environment",
        "  X:UNSET: publishes no usable control limits (low 0, high 0; DRVL/DRVH unset?); give its bounds "
        "in the environment",
    ]
    # Badger's dialogs print the chain: the PVs and why come first
    printed = "".join(traceback.format_exception(error))
    assert printed.startswith("epics_pva.badger.PvFailure: X:BARE: publishes no control limits")
    assert isinstance(error.__cause__, PvFailure)


def test_no_window_around_a_value_outside_its_limits_or_in_invalid_alarm():
    nt = NTScalar("d", control=True)
    outside = SharedPV(nt=nt, initial=nt.wrap({"value": 5.0, "control": {"limitLow": -1.0, "limitHigh": 1.0}}))
    invalid = SharedPV(nt=nt, initial=nt.wrap({"value": 0.0, "control": {"limitLow": -1.0, "limitHigh": 1.0},
                                              "alarm": {"severity": 3, "message": "UDF"}}))
    with served(**{"X:OUT": outside, "X:UDF": invalid}) as server:
        with Interface(conf=server.conf(), timeout=2.0) as interface:
            # the limits themselves need no current value
            assert bounds_from_limits(interface, ["X:OUT", "X:UDF"]) == {"X:OUT": [-1.0, 1.0], "X:UDF": [-1.0, 1.0]}
            with pytest.raises(BoundsError) as caught:
                bounds_from_limits(interface, ["X:OUT", "X:UDF"], delta=1.0)
    assert caught.value.problems == {
        "X:OUT": "current value 5 lies outside its control limits [-1, 1]: no window within them",
        "X:UDF": "current value 0 is in alarm INVALID (UDF): no window around it",
    }


def test_an_unreachable_pv_raises_read_error_naming_it(demo):
    with Interface(timeout=0.5, conf=demo.settings.conf) as quick, pytest.raises(ReadError, match="DEMO:NOPE") as caught:
        bounds_from_limits(quick, [Q1, "DEMO:NOPE"])
    assert isinstance(caught.value.__cause__, PvFailure) and "DEMO:NOPE" in str(caught.value.__cause__)


def test_only_epics_pvas_interface_is_read():
    with pytest.raises(TypeError, match="reads through epics_pva's interface, not a dict"):
        bounds_from_limits({}, [Q1])
    with pytest.raises(ValueError, match="the environment has no interface"):
        bounds_from_limits(None, [Q1])


def test_the_badger_plugin_reads_through_its_delegate(softioc_factory):
    pytest.importorskip("badger")
    from epics_pva.badger import Interface as BadgerInterface

    ioc = softioc_factory(demo_config_path())
    with BadgerInterface(conf=ioc.client_conf(), timeout=2.0) as interface:
        assert bounds_from_limits(interface, [Q1]) == {Q1: [-10.0, 10.0]}
