"""The soft IOC as a stand-in for EPICS base records: clamping, alarm limits, the alarm fault.

What EPICS base itself does is measured in test_epics_base.py and compared side by side in
test_differential.py; these tests pin the soft IOC's own rules over the wire (the alarm
limits in the model and the config checks: tests/unit/test_fidelity.py).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from p4p.client.thread import RemoteError

from softioc import Alarm

SLOW = {"seed": 1, "update_rate": 2.0}  # few steps: an update seen quickly was not a step's
FAST = {"seed": 1, "update_rate": 50.0}
BANDS = {"lolo": -4.0, "low": -3.0, "high": 3.0, "hihi": 4.0}

MACHINE = {"ioc": FAST, "setpoint": [
    {"name": "X:SET", "readback": "X:RBV", "limits": [-5, 5], "alarm_limits": BANDS},
    {"name": "W:SET", "readback": "W:RBV", "type": "double_array", "length": 3, "limits": [0, 1]},
    {"name": "R:SET", "limits": [-5, 5], "limit_action": "reject"},
], "observable": [{"name": "OBS", "expression": "2*x", "inputs": {"x": "X:RBV"}, "alarm_limits": {"high": 4.0}}]}


def alarm(ctx, name):
    raw = ctx.get(name, timeout=5).raw
    return raw["alarm.severity"], raw["alarm.status"], raw["alarm.message"]


def severity_is(expected):
    return lambda v: (v.raw["alarm.severity"], v.raw["alarm.message"]) == expected


# ---- over the wire -----------------------------------------------------------------------------

def test_clamped_puts_and_the_reject_action(softioc_factory, client_for):
    ioc = softioc_factory(MACHINE)
    ctx = client_for(ioc)
    ctx.put("W:SET", [-1.0, 0.5, 7.0], timeout=5)
    assert ctx.get("W:SET", timeout=5).tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(RemoteError, match=re.escape("R:SET: 6.0 is outside the limits [-5.0, 5.0]")):
        ctx.put("R:SET", 6.0, timeout=5)
    assert float(ctx.get("R:SET", timeout=5)) == 0.0
    records = ioc.audit.puts()
    assert [(r.pv, r.outcome) for r in records] == [("W:SET", "accepted"), ("R:SET", "rejected")]
    assert records[0].value.tolist() == [-1.0, 0.5, 7.0] and records[0].applied.tolist() == [0.0, 0.5, 1.0]
    assert records[1].applied is None


def test_readbacks_and_observables_alarm_by_their_limits(softioc_factory, client_for, monitor):
    ioc = softioc_factory(MACHINE)
    ctx = client_for(ioc)
    rbv, obs = monitor(ctx, "X:RBV"), monitor(ctx, "OBS")
    for target, expected, observed in ((3.5, (1, "HIGH"), (1, "HIGH")),
                                       (4.5, (2, "HIHI"), (1, "HIGH")), (-4.5, (2, "LOLO"), (0, "")),
                                       (0.0, (0, ""), (0, ""))):
        ctx.put("X:SET", target, timeout=5)
        update = rbv.wait_value(lambda v, t=target: float(v) == t)
        assert (update.raw["alarm.severity"], update.raw["alarm.message"]) == expected, target
        update = obs.wait_value(lambda v, t=target: float(v) == 2 * t)
        assert (update.raw["alarm.severity"], update.raw["alarm.message"]) == observed, target
    assert alarm(ctx, "X:SET") == (0, 0, "")  # the limits are the readback's, not the setpoint's
    raw = ctx.get("X:RBV", timeout=5).raw
    assert [raw[f"valueAlarm.{k}"] for k in ("lowAlarmLimit", "lowWarningLimit", "highWarningLimit",
                                             "highAlarmLimit")] == [-4.0, -3.0, 3.0, 4.0]


def test_an_initial_value_past_a_limit_alarms_from_the_first_read(softioc_factory, client_for):
    ioc = softioc_factory({"ioc": SLOW, "setpoint": [
        {"name": "X:SET", "readback": "X:RBV", "initial": 5.0, "alarm_limits": {"hihi": 4.0}}]})
    assert alarm(client_for(ioc), "X:RBV") == (2, 1, "HIHI")


@pytest.mark.parametrize("pv", ["X:SET", "X:RBV", "OBS"])
def test_an_alarm_fault_posts_at_once_and_clearing_restores_the_computed_alarm(
        softioc_factory, client_for, monitor, pv):
    ioc = softioc_factory({**MACHINE, "ioc": SLOW})
    ctx = client_for(ioc)
    ctx.put("X:SET", 3.5, timeout=5)
    computed = (1, 1, "HIGH") if pv != "X:SET" else (0, 0, "")
    watch = monitor(ctx, pv)
    watch.wait_value(severity_is(computed[::2]), timeout=5)  # the readback caught up (one slow step)
    before = float(ctx.get(pv, timeout=5))
    steps = ioc.stats.steps
    ioc.faults.arm(pv, Alarm(severity="INVALID", message="power supply off"))
    update = watch.wait_value(severity_is((3, "power supply off")), timeout=5)
    assert float(update) == before and update.raw["alarm.status"] == 1  # the value is unchanged
    assert ioc.stats.steps <= steps + 1  # posted when armed, not by a later update step
    mark = watch.mark()
    ioc.faults.clear(pv)
    assert watch.wait_value(severity_is(computed[::2]), after=mark, timeout=5)
    assert alarm(ctx, pv) == computed


def test_an_alarm_fault_over_fault_arm_with_its_message_and_an_expiry(softioc_factory, client_for, monitor):
    ioc = softioc_factory(MACHINE)
    ctx = client_for(ioc)
    rbv = monitor(ctx, "X:RBV")
    ctx.put("SOFTIOC:FAULT:ARM", "X:RBV alarm severity=INVALID message='power supply off'", timeout=5)
    rbv.wait_value(severity_is((3, "power supply off")))
    # FAULT:ACTIVE is republished by the next update step
    monitor(ctx, "SOFTIOC:FAULT:ACTIVE").wait_value(lambda v: '"kind": "alarm"' in v)
    mark = rbv.mark()
    ctx.put("SOFTIOC:FAULT:CLEAR", "X:RBV", timeout=5)
    rbv.wait_value(severity_is((0, "")), after=mark)
    obs = monitor(ctx, "OBS")  # before arming: the alarm lasts only 0.3 s
    ctx.put("SOFTIOC:FAULT:ARM", "OBS alarm severity=MINOR message=drifting status=2 duration=0.3", timeout=5)
    def minor(v):
        return v.raw["alarm.severity"] == 1 and v.raw["alarm.status"] == 2

    obs.wait_value(minor)
    armed_at = next(i for i, e in enumerate(obs.events) if not isinstance(e, Exception) and minor(e))
    obs.wait_value(severity_is((0, "")), after=armed_at + 1)  # expired by itself
    assert [e.event for e in ioc.audit.faults("OBS", event=None)] == ["armed", "expired"]
    with pytest.raises(RemoteError, match=re.escape("severity must be one of MINOR, MAJOR, INVALID, got 'FATAL'")):
        ctx.put("SOFTIOC:FAULT:ARM", "X:RBV alarm severity=FATAL", timeout=5)
    with pytest.raises(RemoteError, match="'NOPE' is not served"):
        ctx.put("SOFTIOC:FAULT:ARM", "NOPE alarm", timeout=5)


def test_an_alarm_fault_from_the_config_shows_from_the_first_read(softioc_factory, client_for):
    ioc = softioc_factory({**MACHINE, "fault": [
        {"pv": "X:RBV", "kind": "alarm", "severity": "MAJOR", "message": "interlock"}]})
    assert alarm(client_for(ioc), "X:RBV") == (2, 1, "interlock")


def test_an_alarm_survives_an_outage_of_its_pv(softioc_factory, client_for, monitor):
    from softioc import Outage

    ioc = softioc_factory(MACHINE)
    ctx = client_for(ioc)
    ioc.faults.arm("X:SET", Alarm(severity="MAJOR", message="held"))
    watch = monitor(ctx, "X:SET")
    watch.wait_value(severity_is((2, "held")))
    mark = watch.mark()  # before the outage: its disconnect may arrive at once
    ioc.faults.arm("X:SET", Outage(duration=0.3))
    watch.wait_disconnect(mark)
    update = watch.wait_value(lambda v: True, after=mark)  # back, with the alarm
    assert (update.raw["alarm.severity"], update.raw["alarm.message"]) == (2, "held")


def test_udf_until_the_first_put(softioc_factory, client_for):
    ioc = softioc_factory({"ioc": FAST, "setpoint": [{"name": "U:SET", "udf": True}]})
    ctx = client_for(ioc)
    raw = ctx.get("U:SET", timeout=5).raw
    assert alarm(ctx, "U:SET") == (3, 2, "UDF") and raw["timeStamp.secondsPastEpoch"] == 631152000
    ctx.put("U:SET", 1.0, timeout=5)
    assert alarm(ctx, "U:SET") == (0, 0, "")
    assert np.isclose(ctx.get("U:SET", timeout=5).timestamp, ioc.audit.puts()[0].wall_time, atol=1.0)
