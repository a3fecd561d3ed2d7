"""Fault injection: every fault as a p4p client sees it (the fault book on its own:
tests/unit/test_faults.py)."""

import re
import threading
import time

import pytest
from p4p.client.thread import RemoteError

from softioc import (
    Outage,
    PutReject,
    PutTimeout,
    ReadbackBias,
    SlowReadback,
    SoftIOC,
    StuckReadback,
)
from softioc.server import ACCEPTED, REJECTED, TIMED_OUT

FAST = {"seed": 3, "update_rate": 100.0, "time_scale": 10.0}  # 0.1 simulated s per 10 ms step
DT = 0.1
MACHINE = {"ioc": FAST, "setpoint": [
    {"name": "X:SET", "readback": "X:RBV", "limits": [-10, 10]},
    {"name": "Y:SET", "readback": "Y:RBV"},
]}
# client timeout (s) for puts that are meant to time out: with the channels already connected
# (see ctx), it covers only the put's own Get and put on loopback, never a search
SHORT = 0.5


@pytest.fixture
def ioc(softioc_factory):
    return softioc_factory(MACHINE)


@pytest.fixture
def ctx(ioc, client_for):
    """A client with every PV of the machine connected: a put timing out is the fault's doing."""
    context = client_for(ioc)
    context.get(ioc.pv_names(), timeout=10)
    return context


def steps_later(ioc, until, steps):
    """Wait until the simulation has run `steps` more steps."""
    target = ioc.sim_time + steps * DT - 1e-9
    until(lambda: ioc.sim_time >= target, what=f"{steps} simulation steps")


def put_in_thread(ctx, pv, value, timeout):
    """Start a put in a thread; returns (thread, outcome list that gets the result or exception)."""
    outcome = []

    def run():
        started = time.monotonic()
        try:
            ctx.put(pv, value, timeout=timeout)
            outcome.append(("ok", time.monotonic() - started))
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome.append((exc, time.monotonic() - started))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_put_timeout_fires_count_times_then_puts_work(ioc, ctx):
    ioc.faults.arm("X:SET", PutTimeout(count=2))
    for value in (1.0, 2.0):
        with pytest.raises(TimeoutError):
            ctx.put("X:SET", value, timeout=SHORT)
    ctx.put("X:SET", 3.0, timeout=5)
    ctx.put("X:SET", 4.0, timeout=5)
    assert [(r.value, r.outcome, r.fault) for r in ioc.audit.puts()] == [
        (1.0, TIMED_OUT, "put_timeout"), (2.0, TIMED_OUT, "put_timeout"), (3.0, ACCEPTED, None), (4.0, ACCEPTED, None)]
    assert [f.detail["value"] for f in ioc.audit.faults("X:SET")] == [1.0, 2.0]


def test_put_timeout_without_apply_leaves_the_value_unapplied(ioc, ctx, monitor, until):
    rbv = monitor(ctx, "X:RBV")
    ioc.faults.arm("X:SET", PutTimeout(count=1, apply=False))
    with pytest.raises(TimeoutError):
        ctx.put("X:SET", 5.0, timeout=SHORT)
    steps_later(ioc, until, 3)
    assert float(ctx.get("X:SET", timeout=5)) == 0.0
    assert [float(v) for v in rbv.values] == [0.0]
    assert ioc.faults.clear() == 0  # the count is spent; clearing still releases the held put
    assert ioc.faults.held() == []
    steps_later(ioc, until, 3)
    assert float(ctx.get("X:SET", timeout=5)) == 0.0  # abandoned, never applied


def test_put_timeout_with_apply_sets_the_value_while_the_put_hangs(ioc, ctx, monitor):
    rbv = monitor(ctx, "X:RBV")
    ioc.faults.arm("X:SET", PutTimeout(count=1, apply=True))
    with pytest.raises(TimeoutError):
        ctx.put("X:SET", 5.0, timeout=SHORT)
    assert float(ctx.get("X:SET", timeout=5)) == 5.0
    rbv.wait_value(lambda v: v == 5.0)  # and the readback follows
    assert len(ioc.faults.held()) == 1


@pytest.mark.parametrize("apply", [False, True])
def test_put_timeout_complete_after_completes_late(ioc, ctx, monitor, apply):
    setpoint = monitor(ctx, "X:SET")
    setpoint.wait_value(lambda v: v == 0.0)
    mark = setpoint.mark()
    ioc.faults.arm("X:SET", PutTimeout(count=1, apply=apply, complete_after=0.3))
    ctx.put("X:SET", 2.5, timeout=5)  # no TimeoutError: the client waits longer than 0.3 s
    (held,) = ioc.audit.puts(outcome=TIMED_OUT)
    posted = setpoint.wait_value(lambda v: v == 2.5, after=mark)
    if apply:  # applied at once, completed late
        assert posted.timestamp < held.wall_time + 0.3
    else:  # applied only when the put completes
        assert posted.timestamp >= held.wall_time + 0.3 - 0.005
    assert ioc.faults.held() == []


def test_held_put_gets_an_error_when_the_fault_is_cleared(ioc, ctx, until):
    ioc.faults.arm("X:SET", PutTimeout(count=None))
    thread, outcome = put_in_thread(ctx, "X:SET", 1.0, timeout=10)
    until(lambda: ioc.audit.puts(outcome=TIMED_OUT), what="the put to be held")
    assert len(ioc.faults.held()) == 1
    assert ioc.faults.clear("X:SET") == 1
    thread.join(timeout=10)
    (error, _), = outcome
    assert isinstance(error, RemoteError) and "X:SET: put abandoned (fault cleared)" in str(error)
    assert ioc.faults.held() == []
    ctx.put("X:SET", 2.0, timeout=5)  # and puts work again


def test_held_put_gets_an_error_when_the_ioc_stops(ioc, ctx, until):
    ioc.faults.arm("X:SET", PutTimeout(count=None))
    thread, outcome = put_in_thread(ctx, "X:SET", 1.0, timeout=10)
    until(lambda: ioc.audit.puts(outcome=TIMED_OUT), what="the put to be held")
    ioc.stop()
    thread.join(timeout=10)
    (error, waited), = outcome
    assert isinstance(error, RemoteError) and "soft IOC stopped before completing this put" in str(error)
    assert waited < 10
    assert ioc.faults.held() == [] and ioc.faults.active() == []


def test_put_reject_fires_count_times_with_its_message(ioc, ctx):
    ioc.faults.arm("X:SET", PutReject(count=2, message="interlock: vacuum"))
    for value in (1.0, 2.0):
        with pytest.raises(RemoteError, match="interlock: vacuum"):
            ctx.put("X:SET", value, timeout=5)
    ctx.put("X:SET", 3.0, timeout=5)
    assert float(ctx.get("X:SET", timeout=5)) == 3.0
    assert [(r.value, r.outcome, r.fault, r.message) for r in ioc.audit.puts()] == [
        (1.0, REJECTED, "put_reject", "interlock: vacuum"), (2.0, REJECTED, "put_reject", "interlock: vacuum"),
        (3.0, ACCEPTED, None, "")]


def test_limits_are_checked_before_faults(ioc, ctx):
    """A put the device refuses anyway does not use up a fault's shot."""
    ioc.faults.arm("X:SET", PutReject(count=1, message="fault"))
    with pytest.raises(RemoteError, match="not a finite number"):
        ctx.put("X:SET", float("nan"), timeout=5)
    with pytest.raises(RemoteError, match="fault"):
        ctx.put("X:SET", 1.0, timeout=5)


def test_stuck_readback_freezes_until_cleared(ioc, ctx, monitor, until):
    rbv = monitor(ctx, "X:RBV")
    ctx.put("X:SET", 1.0, timeout=5)
    rbv.wait_value(lambda v: v == 1.0)
    ioc.faults.arm("X:SET", StuckReadback())
    ctx.put("X:SET", 5.0, timeout=5)
    steps_later(ioc, until, 20)
    assert [float(v) for v in rbv.values] == [0.0, 1.0]  # 5.0 never reached the readback
    assert float(ctx.get("X:RBV", timeout=5)) == 1.0
    ioc.faults.clear("X:SET")
    rbv.wait_value(lambda v: v == 5.0)


def test_readback_bias_settles_off_target_and_drift_grows(ioc, ctx, monitor, until):
    rbv = monitor(ctx, "X:RBV")
    ctx.put("X:SET", 1.0, timeout=5)
    rbv.wait_value(lambda v: v == 1.0)
    ioc.faults.arm("X:SET", ReadbackBias(bias=0.5))
    rbv.wait_value(lambda v: v == 1.5)
    mark = rbv.mark()
    ioc.faults.clear()
    rbv.wait_value(lambda v: v == 1.0, after=mark)
    mark = rbv.mark()
    ioc.faults.arm("X:SET", ReadbackBias(drift=2.0))  # units per simulated second: 0.2 per step
    rbv.wait_for(lambda events: len(events) >= mark + 10)
    drifting = [float(v) for v in rbv.since(mark)[:10]]
    assert [b - a for a, b in zip(drifting, drifting[1:], strict=False)] == pytest.approx([0.2] * 9, abs=1e-9)
    mark = rbv.mark()
    ioc.faults.clear("X:SET")
    rbv.wait_value(lambda v: v == 1.0, after=mark)  # back on target once cleared


def test_slow_readback_rate_zero_stops_posting_until_cleared(ioc, ctx, monitor, until):
    rbv = monitor(ctx, "X:RBV")
    rbv.wait_value(lambda v: v == 0.0)
    ioc.faults.arm("X:SET", SlowReadback(rate=0.0))
    mark = rbv.mark()
    ctx.put("X:SET", 3.0, timeout=5)
    steps_later(ioc, until, 20)
    assert rbv.since(mark) == []
    assert float(ctx.get("X:RBV", timeout=5)) == 0.0  # clients read the last posted value
    ioc.faults.clear("X:SET")
    rbv.wait_value(lambda v: v == 3.0, after=mark)


def test_slow_readback_resumes_after_its_duration(ioc, ctx, monitor, until):
    rbv = monitor(ctx, "X:RBV")
    rbv.wait_value(lambda v: v == 0.0)
    ioc.faults.arm("X:SET", SlowReadback(rate=0.0, duration=0.3))
    mark = rbv.mark()
    ctx.put("X:SET", 3.0, timeout=5)
    posted = rbv.wait_value(lambda v: v == 3.0, after=mark)
    (armed,) = [f for f in ioc.audit.faults("X:SET", event="armed")]
    assert posted.timestamp >= armed.wall_time + 0.3 - 0.005
    assert [f.event for f in ioc.audit.faults("X:SET", event=None)] == ["armed", "expired"]


def test_slow_readback_rate_limits_posts(softioc_factory, client_for, monitor):
    ioc = softioc_factory({"ioc": FAST, "setpoint": [{"name": "X:SET", "readback": "X:RBV", "noise": 0.01}]})
    ctx = client_for(ioc)
    rbv = monitor(ctx, "X:RBV")
    rbv.wait_for(lambda events: len(events) > 3)  # noise: a post every 10 ms step
    ioc.faults.arm("X:SET", SlowReadback(rate=20.0))
    (armed,) = ioc.audit.faults("X:SET", event="armed")

    def limited(events):  # posted well after arming, so surely under the fault
        return [e.timestamp for e in events if not isinstance(e, Exception) and e.timestamp > armed.wall_time + 0.1]

    stamps = limited(rbv.wait_for(lambda events: len(limited(events)) >= 5))
    assert min(b - a for a, b in zip(stamps, stamps[1:], strict=False)) >= 1 / 20.0 - 0.005


def test_outage_of_a_pv_disconnects_it_until_cleared(ioc, ctx, monitor):
    rbv = monitor(ctx, "X:RBV")
    rbv.wait_value(lambda v: True)
    connected = rbv.mark()
    ioc.faults.arm("X:SET", Outage(duration=60.0))
    rbv.wait_disconnect(after=connected)
    for pv in ("X:SET", "X:RBV"):  # a setpoint goes away with its readback
        with pytest.raises(TimeoutError):
            ctx.get(pv, timeout=SHORT)
    with pytest.raises(TimeoutError):
        ctx.put("X:SET", 1.0, timeout=SHORT)
    assert float(ctx.get("Y:SET", timeout=5)) == 0.0  # the rest of the IOC is still there
    mark = rbv.mark()
    ioc.faults.clear("X:SET")
    rbv.wait_value(lambda v: v == 0.0, timeout=15, after=mark)  # the same context reconnects
    ctx.put("X:SET", 1.0, timeout=15)
    assert [f.event for f in ioc.audit.faults("X:SET", event=None)] == ["armed", "fired", "cleared"]


def test_outage_of_a_pv_ends_after_its_duration(ioc, ctx, monitor):
    rbv = monitor(ctx, "Y:RBV")
    rbv.wait_value(lambda v: True)
    connected = rbv.mark()
    ioc.faults.arm("Y:RBV", Outage(duration=0.3))  # a readback alone
    rbv.wait_disconnect(after=connected)
    ctx.put("Y:SET", 2.0, timeout=5)  # its setpoint still answers
    rbv.wait_value(lambda v: v == 2.0, timeout=15, after=connected)
    assert [f.event for f in ioc.audit.faults("Y:RBV", event=None)] == ["armed", "fired", "expired"]


def test_whole_server_restart_comes_back_on_the_same_ports(ioc, ctx, monitor):
    rbv = monitor(ctx, "X:RBV")
    rbv.wait_value(lambda v: True)
    connected = rbv.mark()
    conf = ioc.client_conf()
    ioc.restart(60.0, wait=False)
    rbv.wait_disconnect(after=connected)
    with pytest.raises(TimeoutError):
        ctx.get("Y:SET", timeout=SHORT)
    down = rbv.mark()
    ioc.restart(0.0)  # back now
    assert ioc.client_conf() == conf
    assert float(ctx.get("Y:SET", timeout=15)) == 0.0  # the same client context, no new settings
    rbv.wait_value(lambda v: True, timeout=15, after=down)


def test_whole_server_outage_fault_disconnects_and_reconnects(ioc, ctx, monitor):
    rbv = monitor(ctx, "X:RBV")
    rbv.wait_value(lambda v: True)
    connected = rbv.mark()
    conf = ioc.client_conf()
    ioc.faults.arm("*", Outage(duration=0.3))
    rbv.wait_disconnect(after=connected)
    ctx.put("X:SET", 4.0, timeout=15)  # succeeds once the server is back
    assert ioc.client_conf() == conf
    rbv.wait_value(lambda v: v == 4.0, timeout=15)
    assert [f.event for f in ioc.audit.faults("*", event=None)][:2] == ["armed", "fired"]


def test_probabilistic_faults_replay_identically(softioc_factory, client_for):
    def outcomes(seed):
        ioc = softioc_factory({**MACHINE, "ioc": {**FAST, "seed": seed}})
        ctx = client_for(ioc)
        ioc.faults.arm("X:SET", PutReject(probability=0.3, message="unlucky"))
        ioc.faults.arm("X:SET", PutTimeout(probability=0.2))
        seen = []
        for i in range(16):
            try:
                ctx.put("X:SET", i / 2, timeout=SHORT)
                seen.append("ok")
            except RemoteError as exc:
                seen.append(str(exc))
            except TimeoutError:
                seen.append("timeout")
        assert [r.outcome for r in ioc.audit.puts()] == [
            {"ok": ACCEPTED, "timeout": TIMED_OUT}.get(s, REJECTED) for s in seen]
        return seen

    first = outcomes(21)
    assert set(first) == {"ok", "unlucky", "timeout"}
    assert outcomes(21) == first
    assert outcomes(22) != first


def test_faults_from_config_at_start_and_at_a_simulated_time(softioc_factory, client_for, until):
    ioc = softioc_factory({**MACHINE, "fault": [
        {"pv": "X:SET", "kind": "put_reject", "count": 1, "message": "from config"},
        {"pv": "Y:SET", "kind": "put_reject", "count": 1, "message": "scheduled", "at": 2.0},
    ]})
    ctx = client_for(ioc)
    with pytest.raises(RemoteError, match="from config"):
        ctx.put("X:SET", 1.0, timeout=5)
    ctx.put("X:SET", 1.0, timeout=5)
    until(lambda: ioc.faults.active("Y:SET"), what="the scheduled fault")
    (armed,) = ioc.audit.faults("Y:SET", event="armed")
    assert 2.0 <= armed.sim_time <= 2.0 + DT + 1e-9  # armed at simulated time `at`
    with pytest.raises(RemoteError, match="scheduled"):
        ctx.put("Y:SET", 1.0, timeout=5)


@pytest.mark.parametrize("pv", ["Y:RBV", "*"])
def test_outage_from_config_holds_from_start_up_until_cleared(softioc_factory, client_for, pv):
    ioc = softioc_factory({**MACHINE, "fault": [{"pv": pv, "kind": "outage", "duration": 60.0}]})
    ctx = client_for(ioc)
    with pytest.raises(TimeoutError):
        ctx.get("Y:RBV", timeout=SHORT)
    assert [f.event for f in ioc.audit.faults(pv, event=None)] == ["armed", "fired"]
    ioc.faults.clear(pv)
    assert float(ctx.get("Y:RBV", timeout=15)) == 0.0


def test_every_fired_fault_sits_beside_the_puts_it_affected(ioc, ctx):
    ioc.faults.arm("X:SET", PutReject(count=2))
    ioc.faults.arm("X:SET", PutTimeout(count=1))
    for value in (1.0, 2.0, 3.0, 4.0):
        try:
            ctx.put("X:SET", value, timeout=SHORT)
        except (RemoteError, TimeoutError):
            pass
    faulted = [r for r in ioc.audit.puts() if r.fault]
    fired = ioc.audit.faults(event="fired")
    assert [(f.pv, f.kind, f.detail["value"]) for f in fired] == [(r.pv, r.fault, r.value) for r in faulted] == [
        ("X:SET", "put_reject", 1.0), ("X:SET", "put_reject", 2.0), ("X:SET", "put_timeout", 3.0)]
    for put, fault in zip(faulted, fired, strict=True):
        assert put.wall_time <= fault.wall_time < put.wall_time + 1.0
        assert put.sim_time == fault.sim_time
    assert ioc.audit.puts()[-1].outcome == ACCEPTED
    assert {f.event for f in ioc.audit.faults(event=None)} >= {"armed", "fired", "expired"}


def test_arming_is_checked(ioc):
    with pytest.raises(ValueError, match=re.escape("'*' (the whole server) does not take fault 'put_reject'")):
        ioc.faults.arm("*", PutReject())
    with pytest.raises(ValueError, match="'NOPE' is not served"):
        ioc.faults.arm("NOPE", Outage())
    with pytest.raises(ValueError, match="'X:RBV' is not a setpoint"):
        ioc.faults.arm("X:RBV", StuckReadback())
    with pytest.raises(ValueError, match="'pv' is missing"):
        ioc.faults.arm_from_dict({"kind": "outage"})
    armed = ioc.faults.arm_from_dict({"pv": "X:SET", "kind": "put_reject", "count": 2})
    assert ioc.faults.active() == [armed] and armed.to_dict()["remaining"] == 2


def test_no_thread_or_held_operation_is_left_behind(client_for, monitor, until):
    def exercise(ioc, ctx):
        for pv in ("X:RBV", "Y:RBV", "X:SET", "Y:SET"):  # four monitors use all of p4p's callback queues
            monitor(ctx, pv).wait_value(lambda v: True)
        ioc.faults.arm("X:SET", PutTimeout(count=None))
        ioc.faults.arm("Y:SET", Outage(duration=60.0))
        with pytest.raises(TimeoutError):
            ctx.put("X:SET", 1.0, timeout=SHORT)
        thread, outcome = put_in_thread(ctx, "X:SET", 2.0, timeout=10)
        until(lambda: len(ioc.faults.held()) == 2, what="two held puts")
        return thread, outcome

    warm = SoftIOC(MACHINE).start()  # p4p keeps a few helper threads after first use
    thread, _ = exercise(warm, client_for(warm))
    warm.stop()
    thread.join(timeout=10)
    before = {t.ident for t in threading.enumerate()}

    ioc = SoftIOC(MACHINE).start()
    ctx = client_for(ioc)
    thread, outcome = exercise(ioc, ctx)
    assert ioc.faults.clear() == 2
    thread.join(timeout=10)
    assert isinstance(outcome[0][0], RemoteError)  # the pending put got an error, not a hang
    assert ioc.faults.held() == [] and ioc.faults.active() == []
    ioc.stop()
    ctx.close()
    assert ioc.faults.held() == []
    assert {t.ident for t in threading.enumerate()} <= before
