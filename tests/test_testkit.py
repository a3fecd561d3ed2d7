"""The testing kit against a served soft IOC: the `pva_interface` fixture, config variants,
faults on observables and ForcedValue (from Python, the config file and the control PVs),
Python observables, the wait helpers and the units in the snapshot."""

from __future__ import annotations

import logging
import math
import re
import threading
import time

import pytest

from epics_pva import Interface
from softioc import (
    Alarm,
    ConfigError,
    ForcedValue,
    Outage,
    ReadbackBias,
    SlowReadback,
    SoftIOC,
    StuckReadback,
)
from softioc.testing import WaitTimeout, wait_for_severity, wait_for_updates, wait_for_value

FAST = {"seed": 5, "update_rate": 50.0, "time_scale": 10.0}
MACHINE = {
    "ioc": FAST,
    # a little noise: the readback posts every update step (an unchanged value is not posted again)
    "setpoint": [{"name": "K:SET", "readback": "K:RBV", "limits": [-10, 10], "lag": "none", "units": "A",
                  "noise": 1e-4}],
    "observable": [{"name": "K:LOSS", "expression": "2 * k", "inputs": {"k": "K:RBV"}, "units": "mW"}],
}


@pytest.fixture
def softioc_config():
    return MACHINE


def near(target, tolerance=0.01):
    def close_to(value):
        return abs(float(value) - target) <= tolerance
    close_to.__name__ = f"near_{target:g}"
    return close_to


# 1. fixtures -------------------------------------------------------------------------------------
def test_pva_interface_talks_to_soft_ioc_only(soft_ioc, pva_interface):
    assert isinstance(pva_interface, Interface)
    assert pva_interface.conf == soft_ioc.client_conf()
    pva_interface.set_value("K:SET", 1.5)
    assert [r.value for r in soft_ioc.audit.puts("K:SET")] == [1.5]
    wait_for_value(soft_ioc, "K:LOSS", near(3.0))
    assert pva_interface.get_value("K:LOSS") == pytest.approx(3.0, abs=0.01)


def test_a_variant_of_the_config_for_one_test(softioc_factory):
    ioc = softioc_factory(MACHINE, overrides={"ioc": {"time_scale": 20}, "setpoint": {"K:SET": {"initial": 2.0}},
                                              "observable": {"K:LOSS": {"expression": "3 * k"}}})
    assert ioc.config.ioc.time_scale == 20 and ioc.config.ioc.update_rate == 50.0
    wait_for_value(ioc, "K:LOSS", near(6.0))
    assert MACHINE["ioc"]["time_scale"] == 10.0  # the base config is left as it was


def test_a_variant_of_a_toml_file(softioc_factory, tmp_path):
    path = tmp_path / "machine.toml"
    path.write_text('[ioc]\nupdate_rate = 50.0\n[[setpoint]]\nname = "T:SET"\nreadback = "T:RBV"\n')
    ioc = softioc_factory(path, overrides={"setpoint": {"T:SET": {"initial": 4.0}}})
    wait_for_value(ioc, "T:RBV", 4.0)
    assert "with overrides" in ioc.config.source


@pytest.mark.parametrize(("overrides", "message"), [
    ({"ioc": {"time_scael": 10}}, "key 'time_scael'"),
    ({"ioc": {"time_scale": -1}}, "time_scale"),
    ({"setpoint": {"NOPE:SET": {"initial": 1}}}, "no entry named 'NOPE:SET'"),
    ({"ioc": {"seed": {"x": 1}}}, "key 'seed' is a value in the config"),
])
def test_a_bad_override_names_the_key(softioc_factory, overrides, message):
    with pytest.raises(ConfigError, match=message):
        softioc_factory(MACHINE, overrides=overrides)


def test_a_loaded_config_takes_ioc_settings_only():
    from softioc.config import load_config, with_overrides

    config = load_config(MACHINE)
    faster = with_overrides(config, {"ioc": {"time_scale": 100.0}})
    assert faster.ioc.time_scale == 100.0 and faster.setpoints == config.setpoints
    with pytest.raises(ConfigError, match="time_scal"):
        with_overrides(config, {"ioc": {"time_scal": 100.0}})
    with pytest.raises(ConfigError, match="update_rate"):
        with_overrides(config, {"ioc": {"update_rate": 0}})
    with pytest.raises(ConfigError, match="key 'setpoint' cannot be merged into an already loaded IOCConfig"):
        with_overrides(config, {"setpoint": {"K:SET": {"initial": 1.0}}})


# 2. faults on observables ------------------------------------------------------------------------
def test_stuck_observable_stops_following_its_inputs(soft_ioc, pva_client):
    pva_client.put("K:SET", 1.0)
    wait_for_value(soft_ioc, "K:LOSS", near(2.0))
    soft_ioc.faults.arm("K:LOSS", StuckReadback())
    pva_client.put("K:SET", 3.0)
    wait_for_value(soft_ioc, "K:RBV", near(3.0))
    wait_for_updates(pva_client, "K:RBV", 3)
    assert pva_client.get("K:LOSS") == pytest.approx(2.0, abs=0.01)
    soft_ioc.faults.clear("K:LOSS")
    wait_for_value(soft_ioc, "K:LOSS", near(6.0))


def test_biased_observable_reads_off_by_the_bias(soft_ioc, pva_client):
    pva_client.put("K:SET", 1.0)
    soft_ioc.faults.arm("K:LOSS", ReadbackBias(bias=0.5))
    wait_for_value(soft_ioc, "K:LOSS", near(2.5))
    soft_ioc.faults.clear("K:LOSS")
    wait_for_value(soft_ioc, "K:LOSS", near(2.0))


def test_slow_observable_stops_posting(soft_ioc, pva_client):
    soft_ioc.faults.arm("K:LOSS", SlowReadback(rate=0.0))
    pva_client.put("K:SET", 2.0)
    wait_for_updates(pva_client, "K:RBV", 2)
    with pytest.raises(WaitTimeout, match=r"K:LOSS: waited 0.3 s for 1 fresh update, got 0, last saw .* "
                                          r"\(1 read\); then: that is the value it held when the wait began"):
        wait_for_updates(pva_client, "K:LOSS", 1, timeout=0.3)
    soft_ioc.faults.clear("K:LOSS")
    wait_for_value(soft_ioc, "K:LOSS", near(4.0))


def test_alarm_and_outage_on_an_observable(soft_ioc, pva_client):
    soft_ioc.faults.arm("K:LOSS", Alarm(severity="MAJOR", message="detector saturated"))
    value = wait_for_severity(pva_client, "K:LOSS", "MAJOR")
    assert value.raw.alarm.message == "detector saturated"
    soft_ioc.faults.clear("K:LOSS")
    wait_for_severity(pva_client, "K:LOSS", 0)
    soft_ioc.faults.arm("K:LOSS", Outage(duration=30.0))
    with pytest.raises(TimeoutError):
        pva_client.get("K:LOSS", timeout=0.3)
    assert pva_client.get("K:RBV", timeout=2) is not None  # only the observable went away


def test_setpoint_faults_still_refused_on_a_readback_pv(soft_ioc):
    with pytest.raises(ValueError, match="'K:RBV' is not a setpoint, so does not take fault 'stuck_readback'"):
        soft_ioc.faults.arm("K:RBV", StuckReadback())
    with pytest.raises(ValueError, match="'K:SET' is a setpoint, which does not take fault 'forced_value'"):
        soft_ioc.faults.arm("K:SET", ForcedValue(1.0))


def test_forced_value_from_python(soft_ioc, pva_client):
    soft_ioc.faults.arm("K:LOSS", ForcedValue(7.5, severity=2, message="forced by test"))
    value = wait_for_value(pva_client, "K:LOSS", 7.5)
    assert value.severity == 2 and value.raw.alarm.message == "forced by test"
    soft_ioc.faults.arm("K:RBV", ForcedValue(-3.0, severity="MINOR"))
    assert wait_for_value(pva_client, "K:RBV", -3.0).severity == 1
    pva_client.put("K:SET", 1.0)  # the machine moves; the forced PVs do not
    wait_for_updates(pva_client, "SOFTIOC:TIME", 3)  # three update steps later
    assert pva_client.get("K:RBV") == -3.0 and pva_client.get("K:LOSS") == 7.5
    events = [(e.pv, e.kind, e.event) for e in soft_ioc.audit.faults(event=None)]
    assert ("K:LOSS", "forced_value", "armed") in events and ("K:RBV", "forced_value", "armed") in events
    assert soft_ioc.audit.faults(event="armed")[0].detail == {
        "kind": "forced_value", "value": 7.5, "severity": 2, "message": "forced by test", "duration": None}
    soft_ioc.faults.clear()
    wait_for_value(pva_client, "K:RBV", near(1.0))
    assert wait_for_value(pva_client, "K:LOSS", near(2.0)).severity == 0
    assert ("K:LOSS", "forced_value", "cleared") in [(e.pv, e.kind, e.event) for e in soft_ioc.audit.faults(event=None)]


def test_forced_value_from_the_config_file(softioc_factory, tmp_path):
    path = tmp_path / "machine.toml"
    path.write_text(
        '[ioc]\nupdate_rate = 50.0\n'
        '[[setpoint]]\nname = "F:SET"\nreadback = "F:RBV"\n'
        '[[observable]]\nname = "F:OBS"\nexpression = "f + 1"\ninputs = { f = "F:RBV" }\n'
        '[[fault]]\npv = "F:OBS"\nkind = "forced_value"\nvalue = 42.0\nseverity = "INVALID"\nmessage = "dead"\n'
    )
    ioc = softioc_factory(path)
    value = wait_for_value(ioc, "F:OBS", 42.0)
    assert value.severity == 3 and value.raw.alarm.message == "dead"
    assert [(e.pv, e.kind) for e in ioc.audit.faults(event="armed")] == [("F:OBS", "forced_value")]


def test_forced_value_over_the_control_pvs(soft_ioc, pva_client):
    pva_client.put("SOFTIOC:FAULT:ARM", "K:LOSS forced_value value=9 severity=MAJOR message='beam lost'", timeout=5)
    value = wait_for_value(pva_client, "K:LOSS", 9.0)
    assert value.severity == 2 and value.raw.alarm.message == "beam lost"
    assert [(e.pv, e.kind) for e in soft_ioc.audit.faults(event="armed")] == [("K:LOSS", "forced_value")]
    pva_client.put("SOFTIOC:FAULT:CLEAR", "K:LOSS", timeout=5)
    wait_for_severity(pva_client, "K:LOSS", 0)


@pytest.mark.parametrize(("params", "message"), [
    ({"value": True}, "value"),
    ({"value": 1.0, "severity": 4}, "severity must be 0-3"),
    ({"value": 1.0, "severity": "LOUD"}, "severity must be 0-3"),
    ({"value": float("inf")}, "finite"),
])
def test_forced_value_refuses_bad_parameters(params, message):
    from softioc.faults import fault_from_dict

    with pytest.raises(ValueError, match=message):
        fault_from_dict("forced_value", params)


# 3. Python observables ---------------------------------------------------------------------------
PY_MACHINE = {
    "ioc": FAST,
    "setpoint": [{"name": f"P:{i}:SET", "readback": f"P:{i}:RBV", "lag": "none", "noise": 1e-4} for i in (1, 2)],
    "observable": [
        {"name": "P:SUM", "inputs": {"a": "P:1:RBV", "b": "P:2:RBV"}, "units": "mm"},
        {"name": "P:BAD", "inputs": {"a": "P:1:RBV"}},
        {"name": "P:EXPR", "expression": "a * 10", "inputs": {"a": "P:1:RBV"}},
    ],
}


def test_python_observable_gets_its_inputs_by_name(softioc_factory, client_for):
    def fragile(a):
        if a > 1.5:
            raise RuntimeError("quench detected")
        return a

    ioc = softioc_factory(PY_MACHINE, observables={"P:SUM": lambda a, b: a + 2 * b, "P:BAD": fragile})
    client = client_for(ioc)
    client.put(["P:1:SET", "P:2:SET"], [1.0, 3.0])
    wait_for_value(client, "P:SUM", near(7.0))
    assert wait_for_value(client, "P:BAD", near(1.0)).severity == 0
    client.put("P:1:SET", 2.0)
    value = wait_for_severity(client, "P:BAD", "INVALID")
    assert "RuntimeError: quench detected" in value.raw.alarm.message
    wait_for_value(client, "P:EXPR", near(20.0))  # an expression beside them works as before
    client.put("P:1:SET", 0.5)
    assert wait_for_severity(client, "P:BAD", 0) == pytest.approx(0.5, abs=0.01)
    stats = ioc.observable_stats()
    assert stats["P:BAD"].errors >= 1 and "quench" in stats["P:BAD"].last_error
    assert stats["P:SUM"].calls > 0 and stats["P:SUM"].errors == 0
    assert {row["readback_pv"]: row["units"] for row in ioc.snapshot()}["P:SUM"] == "mm"


def test_a_slow_python_observable_never_stalls_the_others(softioc_factory, client_for, caplog):
    release = threading.Event()

    def slow(a):
        release.wait(2.0)  # far past the budget of one step
        return a

    caplog.set_level(logging.WARNING, logger="softioc.model._functions")
    ioc = softioc_factory(PY_MACHINE, observables={"P:SUM": lambda a, b: a + b, "P:BAD": slow})
    client = client_for(ioc)
    client.put("P:1:SET", 1.0)
    began = time.monotonic()
    updates = wait_for_updates(client, "P:EXPR", 10, timeout=5.0)  # 50 Hz: about 0.2 s
    assert time.monotonic() - began < 2.0 and updates[-1] == pytest.approx(10.0, abs=0.1)
    release.set()
    stats = ioc.observable_stats()["P:BAD"]
    assert stats.over_budget >= 1 and stats.skipped >= 5
    assert any("P:BAD ran past its budget" in r.getMessage() for r in caplog.records)
    wait_for_value(client, "P:BAD", near(1.0))


def test_python_observables_are_checked_when_built():
    with pytest.raises(ValueError, match="'P:NOPE' is not an observable of the config"):
        SoftIOC(PY_MACHINE, observables={"P:NOPE": lambda: 0, "P:SUM": abs, "P:BAD": abs})
    with pytest.raises(ValueError, match="observable 'P:BAD' has no expression"):
        SoftIOC(PY_MACHINE, observables={"P:SUM": lambda a, b: a + b})
    with pytest.raises(TypeError, match="must be a function"):
        SoftIOC(PY_MACHINE, observables={"P:SUM": 3, "P:BAD": abs})


def test_python_observable_with_faults(softioc_factory, client_for):
    ioc = softioc_factory(PY_MACHINE, observables={"P:SUM": lambda a, b: a + b, "P:BAD": lambda a: a})
    client = client_for(ioc)
    client.put("P:1:SET", 1.0)
    wait_for_value(client, "P:SUM", near(1.0))
    ioc.faults.arm("P:SUM", ReadbackBias(bias=0.25))
    wait_for_value(client, "P:SUM", near(1.25))
    ioc.faults.arm("P:SUM", ForcedValue(-1.0))
    wait_for_value(client, "P:SUM", -1.0)


# 4. wait helpers ---------------------------------------------------------------------------------
def test_wait_timeout_says_what_it_saw_last(soft_ioc, pva_client):
    pva_client.put("K:SET", 1.0)
    wait_for_value(pva_client, "K:RBV", near(1.0))
    with pytest.raises(WaitTimeout) as caught:
        wait_for_value(soft_ioc, "K:RBV", near(5.0), timeout=0.2)
    message = str(caught.value)
    assert re.match(r"K:RBV: waited 0.2 s for a value satisfying near_5, last saw [01]\.\d+ \(\d+ reads?\)", message)
    assert caught.value.last == pytest.approx(1.0, abs=0.01) and caught.value.seen >= 1
    assert isinstance(caught.value, AssertionError) and isinstance(caught.value, TimeoutError)
    with pytest.raises(WaitTimeout, match=r"alarm severity 2 \(MAJOR\), last saw [01]\.\d+ \(\d+ reads?\)"):
        wait_for_severity(pva_client, "K:RBV", "MAJOR", timeout=0.2)
    with pytest.raises(WaitTimeout, match="NOPE:PV: waited 0.2 s for the value 1.0, never read it"):
        wait_for_value(pva_client, "NOPE:PV", 1.0, timeout=0.2)


def test_wait_for_updates_counts_fresh_posts(soft_ioc, pva_client):
    updates = wait_for_updates(soft_ioc, "SOFTIOC:TIME", 3)
    assert len(updates) == 3 and updates[0] < updates[1] < updates[2]
    with pytest.raises(ValueError, match="count must be >= 1"):
        wait_for_updates(soft_ioc, "K:RBV", 0)
    with pytest.raises(TypeError, match="a started soft IOC or a p4p Context"):
        wait_for_value(object(), "K:RBV", 0.0)


# 5. snapshot units -------------------------------------------------------------------------------
def test_snapshot_reports_observable_units_and_faults(soft_ioc):
    soft_ioc.faults.arm("K:LOSS", StuckReadback())
    rows = {row["readback_pv"]: row for row in soft_ioc.snapshot()}
    assert rows["K:RBV"]["units"] == "A"
    assert rows["K:LOSS"]["units"] == "mW" and rows["K:LOSS"]["faults"] == ["stuck_readback"]
    assert not math.isnan(rows["K:LOSS"]["readback"])
