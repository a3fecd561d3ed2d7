"""The soft IOC over PVAccess, as a p4p client sees it: lag, offset, limits, types,
observables, seeded noise, time scale, audit, several IOCs, start/stop cycles."""

import gc
import math
import threading
import time
import weakref

import numpy as np
import pytest
from p4p.client.thread import RemoteError

from softioc import SoftIOC, load_config
from softioc.model import Simulation
from softioc.pytest_plugin import demo_config_path
from softioc.server import ACCEPTED, REJECTED, PostBatch

FAST = {"seed": 1, "update_rate": 100.0, "time_scale": 10.0}  # dt = 0.1 simulated s per 10 ms


def test_demo_config_is_served_as_written(soft_ioc, pva_client):
    names = soft_ioc.pv_names()
    assert names == ["DEMO:Q1:SET", "DEMO:Q1:RBV", "DEMO:Q2:SET", "DEMO:Q2:RBV", "DEMO:OBJ"]
    values = pva_client.get(names, timeout=5)
    # the setpoints start at their initial values (0.5, -1.0), the readbacks there too
    assert [float(v) for v in values[:4]] == [0.5, pytest.approx(0.5, abs=0.02), -1.0, -1.0]
    assert float(values[4]) == pytest.approx((0.5 - 1.5)**2 + (-1.0 + 0.5)**2, abs=0.05)
    assert set(soft_ioc.pv_names(control=True)) > set(names) | {"SOFTIOC:FAULT:ARM", "SOFTIOC:PUTS"}


def test_first_order_readback_follows_the_exponential(softioc_factory, client_for, monitor):
    tau, dt, target = 1.0, FAST["time_scale"] / FAST["update_rate"], 2.0
    ioc = softioc_factory({"ioc": FAST, "setpoint": [
        {"name": "X:SET", "readback": "X:RBV", "lag": "first_order", "tau": tau}]})
    ctx = client_for(ioc)
    rbv = monitor(ctx, "X:RBV")
    rbv.wait_value(lambda v: v == 0.0)
    ctx.put("X:SET", target, timeout=5)
    rbv.wait_value(lambda v: v > 0.98 * target)
    a = math.exp(-dt / tau)
    steps = []
    for value in rbv.values[1:]:
        # each posted value is the model k whole simulated steps (k * dt seconds) after the put
        k = math.log(1.0 - float(value) / target) / math.log(a)
        assert k == pytest.approx(round(k), abs=1e-6), (value, k)
        steps.append(round(k))
    assert steps == list(range(1, len(steps) + 1))  # one update per step, none skipped
    # after one time constant (k * dt == tau) the readback is 63.2 % of the way
    after_tau = float(rbv.values[round(tau / dt)])
    assert after_tau / target == pytest.approx(1.0 - math.exp(-1.0), abs=1e-9)


def test_a_late_update_loop_posts_each_step_stamped_at_the_time_it_stands_for(softioc_factory, client_for, monitor):
    """A loop held up for 0.2 s runs the steps it missed back to back; a client fitting the
    readback's timing sees each at its own time, one period apart, never bunched."""
    period = 1.0 / FAST["update_rate"]
    ioc = softioc_factory({"ioc": FAST, "setpoint": [
        {"name": "X:SET", "readback": "X:RBV", "lag": "first_order", "tau": 100.0}]})
    ctx = client_for(ioc)
    rbv = monitor(ctx, "X:RBV")
    rbv.wait_value(lambda v: v == 0.0)
    ctx.put("X:SET", 1.0, timeout=5)  # a slow approach: every step posts a new value
    settled = rbv.wait_for(lambda events: len(events) >= 5)
    with ioc._lock:  # the machine busy, as under a slow put: about 20 steps fall due meanwhile
        held_from = time.time()
        time.sleep(0.2)
    held_until = time.time()
    rbv.wait_for(lambda events: len(events) >= len(settled) + 40)
    stamps = [v.timestamp for v in rbv.values[len(settled):]]
    gaps = np.diff(stamps)
    assert gaps.min() >= 0.5 * period, gaps  # without the fix, the caught-up steps came ms apart
    caught_up = [s for s in stamps if held_from <= s < held_until - period]  # due while it was held
    assert len(caught_up) >= 10, stamps


def test_a_put_while_the_update_loop_is_late_moves_the_readback_from_the_time_it_was_made(
        softioc_factory, client_for, monitor):
    """A put handled while the loop is behind waits for the steps already due: the readback
    starts to move at the first step due after the put, and each later step is a period on,
    as when the loop keeps time (a late loop must not show a response faster than the model)."""
    period = 1.0 / FAST["update_rate"]
    tau = 1.0
    ioc = softioc_factory({"ioc": FAST, "setpoint": [
        {"name": "X:SET", "readback": "X:RBV", "lag": "first_order", "tau": tau}]})
    ctx = client_for(ioc)
    rbv, sp = monitor(ctx, "X:RBV"), monitor(ctx, "X:SET")
    rbv.wait_value(lambda v: v == 0.0)
    sp.wait_value(lambda v: v == 0.0)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with ioc._lock:  # the machine busy for 0.3 s: about 30 steps fall due meanwhile
            held.set()
            release.wait(0.3)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5.0)
        ctx.put("X:SET", 2.0, timeout=5)  # handled once the machine is free, the loop still behind
    finally:
        holder.join(5.0)
    put_at = sp.wait_value(lambda v: v == 2.0).timestamp
    rbv.wait_value(lambda v: v > 0.5)
    moved = [v for v in rbv.values if v > 0.0]
    a = math.exp(-FAST["time_scale"] * period / tau)
    for n, value in enumerate(moved[:20], start=1):
        assert float(value) == pytest.approx(2.0 * (1.0 - a ** n), rel=1e-9)  # one post per step
        assert value.timestamp >= put_at + (n - 1) * period - 1e-3, (n, value.timestamp - put_at)


def test_rate_readback_ramps_at_rate_units_per_second(softioc_factory, client_for, monitor):
    rate, dt = 2.0, FAST["time_scale"] / FAST["update_rate"]
    ioc = softioc_factory({"ioc": FAST, "setpoint": [
        {"name": "X:SET", "readback": "X:RBV", "lag": "rate", "rate": rate}]})
    ctx = client_for(ioc)
    rbv = monitor(ctx, "X:RBV")
    rbv.wait_value(lambda v: v == 0.0)
    ctx.put("X:SET", 3.0, timeout=5)
    rbv.wait_value(lambda v: v == 3.0)
    ramp = [float(v) for v in rbv.values[1:]]
    # rate * dt = 0.2 units per simulated step of 0.1 s, one update per step, until on target
    assert ramp == pytest.approx([rate * dt * k for k in range(1, 16)], abs=1e-9)
    assert ramp[-1] == 3.0
    mark = rbv.mark()
    ctx.put("X:SET", 2.0, timeout=5)  # down again, at the same rate
    assert float(rbv.wait_value(lambda v: v < 3.0, after=mark)) == pytest.approx(2.8, abs=1e-9)


def test_no_lag_readback_equals_setpoint_at_the_next_update(softioc_factory, client_for, monitor):
    ioc = softioc_factory({"ioc": FAST, "setpoint": [{"name": "X:SET", "readback": "X:RBV"}]})
    ctx = client_for(ioc)
    rbv = monitor(ctx, "X:RBV")
    ctx.put("X:SET", -4.25, timeout=5)
    rbv.wait_value(lambda v: v == -4.25)
    assert [float(v) for v in rbv.values] == [0.0, -4.25]


def test_offset_readback_settles_at_setpoint_plus_offset(softioc_factory, client_for, monitor):
    ioc = softioc_factory({"ioc": FAST, "setpoint": [
        {"name": "X:SET", "readback": "X:RBV", "offset": 0.25, "lag": "first_order", "tau": 0.05}]})
    ctx = client_for(ioc)
    rbv = monitor(ctx, "X:RBV")
    assert float(rbv.wait_value(lambda v: True)) == 0.25  # offset from the start
    ctx.put("X:SET", 1.0, timeout=5)
    rbv.wait_value(lambda v: abs(v - 1.25) < 1e-9)
    assert float(ctx.get("X:SET", timeout=5)) == 1.0


LIMITED = {"ioc": FAST, "setpoint": [
    {"name": "X:SET", "readback": "X:RBV", "limits": [-10.0, 10.0], "units": "A", "precision": 3,
     "description": "quad current"},
    {"name": "N:SET", "type": "int", "limits": [0, 5], "initial": 2},
]}


REJECTING = {"ioc": FAST, "setpoint": [{**sp, "limit_action": "reject"} for sp in LIMITED["setpoint"]]}


def test_limits_clamp_puts_as_an_ao_does_and_the_audit_keeps_both_values(softioc_factory, client_for):
    ioc = softioc_factory(LIMITED)
    ctx = client_for(ioc)
    for pv, value, held in (("X:SET", 10.5, 10.0), ("X:SET", -11.0, -10.0), ("X:SET", 3.0, 3.0),
                            ("N:SET", 6, 5), ("N:SET", -1, 0)):
        ctx.put(pv, value, timeout=5)  # no error, as from a real record
        raw = ctx.get(pv, timeout=5).raw
        assert raw["value"] == held, (pv, value)
        assert (raw["alarm.severity"], raw["alarm.message"]) == (0, "")
    assert [(r.pv, r.value, r.applied, r.outcome) for r in ioc.audit.puts()] == [
        ("X:SET", 10.5, 10.0, ACCEPTED), ("X:SET", -11.0, -10.0, ACCEPTED), ("X:SET", 3.0, 3.0, ACCEPTED),
        ("N:SET", 6, 5, ACCEPTED), ("N:SET", -1, 0, ACCEPTED)]


def test_limits_reject_puts_with_a_remote_error_naming_pv_and_limits(softioc_factory, client_for):
    ioc = softioc_factory(REJECTING)
    ctx = client_for(ioc)
    ctx.put("X:SET", 10.0, timeout=5)  # the limits themselves are allowed
    for value in (10.5, -11):
        with pytest.raises(RemoteError, match=r"X:SET: .* is outside the limits \[-10.0, 10.0\]"):
            ctx.put("X:SET", value, timeout=5)
    with pytest.raises(RemoteError, match=r"N:SET: 6 is outside the limits \[0.0, 5.0\]"):
        ctx.put("N:SET", 6, timeout=5)
    assert float(ctx.get("X:SET", timeout=5)) == 10.0 and int(ctx.get("N:SET", timeout=5)) == 2
    outcomes = [(r.pv, r.value, r.applied, r.outcome) for r in ioc.audit.puts()]
    assert outcomes == [("X:SET", 10.0, 10.0, ACCEPTED), ("X:SET", 10.5, None, REJECTED),
                        ("X:SET", -11.0, None, REJECTED), ("N:SET", 6, None, REJECTED)]


def test_setpoint_publishes_limits_units_precision(softioc_factory, client_for):
    ioc = softioc_factory(LIMITED)
    ctx = client_for(ioc)
    setpoint = ctx.get("X:SET", timeout=5).raw
    assert (setpoint.control.limitLow, setpoint.control.limitHigh) == (-10.0, 10.0)
    assert (setpoint.display.limitLow, setpoint.display.limitHigh) == (-10.0, 10.0)
    assert (setpoint.display.units, setpoint.display.precision) == ("A", 3)
    assert setpoint.display.description == "quad current"
    readback = ctx.get("X:RBV", timeout=5).raw  # as QSRV serves a calc: no limits of its own
    assert (readback.display.units, readback.display.limitHigh, readback.control.limitHigh) == ("A", 0.0, 0.0)
    integer = ctx.get("N:SET", timeout=5).raw
    assert (integer.control.limitLow, integer.control.limitHigh) == (0, 5)


TYPED = {"ioc": FAST, "setpoint": [
    {"name": "I:SET", "readback": "I:RBV", "type": "int", "initial": 3},
    {"name": "E:SET", "readback": "E:RBV", "type": "enum", "choices": ["OFF", "ON", "FAULT"]},
    {"name": "S:SET", "readback": "S:RBV", "type": "string", "initial": "idle"},
    {"name": "W:SET", "readback": "W:RBV", "type": "double_array", "length": 4, "lag": "rate", "rate": 100.0},
]}


def test_int_enum_string_and_array_pvs_are_served_and_puttable(softioc_factory, client_for, monitor):
    ioc = softioc_factory(TYPED)
    ctx = client_for(ioc)
    assert int(ctx.get("I:RBV", timeout=5)) == 3 and ctx.get("S:RBV", timeout=5) == "idle"
    enum = ctx.get("E:SET", timeout=5)
    assert enum.raw.value.choices == ["OFF", "ON", "FAULT"] and int(enum) == 0
    readbacks = {pv: monitor(ctx, pv) for pv in ("I:RBV", "E:RBV", "S:RBV", "W:RBV")}
    ctx.put("I:SET", 7, timeout=5)
    ctx.put("E:SET", "FAULT", timeout=5)  # by label
    ctx.put("S:SET", "ramping", timeout=5)
    ctx.put("W:SET", np.array([1.0, 2.0, 3.0, 4.0]), timeout=5)
    assert readbacks["I:RBV"].wait_value(lambda v: v == 7) == 7
    assert readbacks["E:RBV"].wait_value(lambda v: v == 2).raw.value.choices[2] == "FAULT"
    assert readbacks["S:RBV"].wait_value(lambda v: v == "ramping") == "ramping"
    assert readbacks["W:RBV"].wait_value(lambda v: v.tolist() == [1.0, 2.0, 3.0, 4.0]) is not None
    ctx.put("E:SET", 1, timeout=5)  # by index
    assert readbacks["E:RBV"].wait_value(lambda v: v == 1) == 1
    assert int(ctx.get("E:SET", timeout=5)) == 1
    with pytest.raises(RemoteError, match="W:SET: 5 elements, at most 4 allowed"):
        ctx.put("W:SET", np.arange(5.0), timeout=5)
    with pytest.raises(RemoteError, match=r"E:SET: 5 is not a valid index of 3 choices"):
        ctx.put("E:SET", 5, timeout=5)


def test_readbacks_and_observables_are_read_only(softioc_factory, client_for):
    ioc = softioc_factory(load_config(demo_config_path()))
    ctx = client_for(ioc)
    for pv in ("DEMO:Q1:RBV", "DEMO:OBJ"):
        with pytest.raises(RemoteError, match=f"{pv} is read-only"):
            ctx.put(pv, 1.0, timeout=5)
    assert [(r.pv, r.outcome) for r in ioc.audit.puts()] == [("DEMO:Q1:RBV", REJECTED), ("DEMO:OBJ", REJECTED)]


def test_observable_is_computed_from_readbacks(softioc_factory, client_for, monitor):
    ioc = softioc_factory({"ioc": FAST, "setpoint": [
        {"name": "Q1:SET", "readback": "Q1:RBV"}, {"name": "Q2:SET", "readback": "Q2:RBV", "offset": 0.5}],
        "observable": [{"name": "OBJ", "expression": "(q1 - 1.5)**2 + (q2 + 0.5)**2 + sqrt(abs(q1))",
                        "inputs": {"q1": "Q1:RBV", "q2": "Q2:RBV"}, "units": "a.u."}]})
    ctx = client_for(ioc)
    obj = monitor(ctx, "OBJ")
    assert float(obj.wait_value(lambda v: True)) == pytest.approx(1.5**2 + 1.0**2)
    ctx.put(["Q1:SET", "Q2:SET"], [1.5, -1.0], timeout=5)
    expected = (1.5 - 1.5) ** 2 + (-0.5 + 0.5) ** 2 + math.sqrt(1.5)
    obj.wait_value(lambda v: abs(v - expected) < 1e-12)
    assert ctx.get("OBJ", timeout=5).raw.display.units == "a.u."


NOISY = {"setpoint": [{"name": "N:SET", "readback": "N:RBV", "noise": 0.01}],
         "observable": [{"name": "N:OBJ", "expression": "n * 2", "inputs": {"n": "N:RBV"}, "noise": 0.01}]}


def model_series(config, pv, steps):
    """The values the model gives `pv` at start and after each step (what the IOC must post)."""
    sim = Simulation(load_config(config))
    series = [sim.readbacks.get(pv, sim.observed.get(pv))]
    series += [sim.step()[pv] for _ in range(steps)]
    return series


def in_order_within(values, series):
    """True when every value occurs in `series`, at increasing positions."""
    position = -1
    for value in values:
        try:
            position = series.index(value, position + 1)
        except ValueError:
            return False
    return True


def test_same_seed_gives_the_same_noise_sequence_different_seed_differs(softioc_factory, client_for, monitor):
    configs = {name: {"ioc": {"seed": seed, "update_rate": 100.0}, **NOISY}
               for name, seed in (("a", 42), ("b", 42), ("c", 43))}
    recorders = {}
    for name, config in configs.items():
        ctx = client_for(softioc_factory(config))
        recorders[name] = (monitor(ctx, "N:RBV"), monitor(ctx, "N:OBJ"))
    for rbv, obj in recorders.values():
        rbv.wait_for(lambda events: len(events) > 20)
        obj.wait_for(lambda events: len(events) > 20)
    for pv, which in (("N:RBV", 0), ("N:OBJ", 1)):
        expected = model_series(configs["a"], pv, 3000)
        seen = {name: [float(v) for v in recorder[which].values[:20]] for name, recorder in recorders.items()}
        assert len(set(seen["a"])) == 20  # it is noise
        assert in_order_within(seen["a"], expected)
        assert in_order_within(seen["b"], expected)
        assert not set(seen["c"]) & set(expected)


def test_time_scale_speeds_the_simulation(softioc_factory, client_for, monitor):
    def ramp(time_scale):
        return {"ioc": {"update_rate": 100.0, "time_scale": time_scale},
                "setpoint": [{"name": "X:SET", "readback": "X:RBV", "lag": "rate", "rate": 1.0}]}

    started = time.monotonic()
    fast, slow = softioc_factory(ramp(20.0)), softioc_factory(ramp(0.5))
    fast_ctx, slow_ctx = client_for(fast), client_for(slow)
    fast_rbv = monitor(fast_ctx, "X:RBV")
    slow_ctx.get("X:RBV", timeout=5)
    fast_ctx.put("X:SET", 2.0, timeout=5)
    slow_ctx.put("X:SET", 2.0, timeout=5)
    # 2 simulated seconds of ramp: 0.1 s of wall time at time_scale 20, 4 s at time_scale 0.5
    fast_rbv.wait_value(lambda v: v == 2.0)
    assert float(slow_ctx.get("X:RBV", timeout=5)) < 1.0
    # simulated time never runs ahead of wall time * time_scale (one step of slack)
    assert 2.0 <= fast.sim_time <= 20.0 * (time.monotonic() - started) + 0.2


def test_audit_sees_every_put(softioc_factory, client_for, monitor):
    ioc = softioc_factory({**TYPED, "setpoint": [*TYPED["setpoint"], *LIMITED["setpoint"]],
                           "observable": [{"name": "OBJ", "expression": "x", "inputs": {"x": "X:RBV"}}]})
    ctx = client_for(ioc)
    puts = [("X:SET", 1.5), ("X:SET", 99.0), ("X:RBV", 1.0), ("OBJ", 2.0), ("I:SET", 4),
            ("E:SET", "ON"), ("S:SET", "text"), ("W:SET", [0.5]), ("E:RBV", 1), ("N:SET", -1)]
    for pv, value in puts:
        try:
            ctx.put(pv, value, timeout=5)
        except RemoteError:
            pass
    records = ioc.audit.puts()
    assert [r.pv for r in records] == [pv for pv, _ in puts]
    assert [r.outcome for r in records] == [ACCEPTED, ACCEPTED, REJECTED, REJECTED, ACCEPTED,
                                           ACCEPTED, ACCEPTED, ACCEPTED, REJECTED, ACCEPTED]
    assert [r.value for r in records[:7]] == [1.5, 99.0, 1.0, 2.0, 4, 1, "text"]
    assert [r.applied for r in records[:7]] == [1.5, 10.0, None, None, 4, 1, "text"]  # 99 clamped
    assert (records[9].value, records[9].applied) == (-1, 0)
    assert records[7].value.tolist() == [0.5]
    assert "read-only" in records[2].message
    assert all(r.peer for r in records)  # the client's address
    assert [r.wall_time for r in records] == sorted(r.wall_time for r in records)
    assert ioc.audit.puts("X:RBV", outcome=REJECTED) == [records[2]]
    assert ioc.audit.put_count() == len(puts)
    assert len(ioc.audit.puts(outcome=ACCEPTED)) == 7
    monitor(ctx, "SOFTIOC:PUTS").wait_value(lambda v: v == len(puts))  # also published over the wire
    ioc.audit.clear()
    assert ioc.audit.puts() == []


def test_two_iocs_side_by_side(softioc_factory, client_for):
    def config(initial):
        return {"ioc": FAST, "setpoint": [{"name": "X:SET", "readback": "X:RBV", "initial": initial}]}

    one, two = softioc_factory(config(1.0)), softioc_factory(config(2.0))
    assert one.client_conf() != two.client_conf()
    ctx_one, ctx_two = client_for(one), client_for(two)
    assert float(ctx_one.get("X:SET", timeout=5)) == 1.0
    assert float(ctx_two.get("X:SET", timeout=5)) == 2.0
    ctx_two.put("X:SET", 5.0, timeout=5)
    assert float(ctx_one.get("X:SET", timeout=5)) == 1.0
    assert [r.value for r in two.audit.puts()] == [5.0] and one.audit.puts() == []


def test_concurrent_puts_to_many_pvs_all_complete(softioc_factory, client_for):
    names = [f"P{i}:SET" for i in range(40)]
    ioc = softioc_factory({"ioc": FAST, "setpoint": [{"name": n, "readback": n[:-3] + "RBV"} for n in names]})
    ctx = client_for(ioc)
    ctx.get(names, timeout=5)
    results = ctx.put(names, [float(i) for i in range(40)], timeout=5, throw=False)
    assert results == [None] * 40
    assert sorted(r.value for r in ioc.audit.puts(outcome=ACCEPTED)) == [float(i) for i in range(40)]


def test_start_stop_start_repeatedly(client_for):
    config = {"ioc": FAST, "setpoint": [{"name": "X:SET", "readback": "X:RBV", "initial": 1.0}]}
    ioc = SoftIOC(config)
    assert not ioc.running
    with pytest.raises(RuntimeError, match="start the soft IOC"):
        ioc.client_conf()
    for cycle in range(5):
        ioc.start()
        assert ioc.running
        ctx = client_for(ioc)
        assert float(ctx.get("X:SET", timeout=5)) == 1.0  # every start is a fresh simulation
        ctx.put("X:SET", float(cycle + 2), timeout=5)
        assert float(ctx.get("X:SET", timeout=5)) == cycle + 2
        ctx.close()
        ioc.stop()
        ioc.stop()  # idempotent
        assert not ioc.running
    assert [r.value for r in ioc.audit.puts()] == [2.0, 3.0, 4.0, 5.0, 6.0]


def test_context_manager_and_misuse(client_for):
    config = {"ioc": FAST, "setpoint": [{"name": "X:SET"}]}
    with SoftIOC(config) as ioc:
        assert ioc.running and "running" in repr(ioc)
        with pytest.raises(RuntimeError, match="already running"):
            ioc.start()
        assert float(client_for(ioc).get("X:SET", timeout=5)) == 0.0
    assert not ioc.running and "stopped" in repr(ioc)
    with pytest.raises(RuntimeError, match="not running"):
        ioc.restart(0.1)


def test_builds_from_file_dict_or_config(tmp_path, client_for):
    path = tmp_path / "one.toml"
    path.write_text('[[setpoint]]\nname = "F:SET"\ninitial = 4.5\n')
    for ioc in (SoftIOC(path), SoftIOC(str(path)), SoftIOC({"setpoint": [{"name": "F:SET", "initial": 4.5}]}),
                SoftIOC(load_config(path))):
        with ioc:
            assert float(client_for(ioc).get("F:SET", timeout=5)) == 4.5
    assert SoftIOC(path).config.source == str(path)


def test_stopped_ioc_leaves_nothing_behind(client_for):
    """After stop() the IOC, its server and PVs can be garbage collected, and no thread stays."""
    config = {"ioc": FAST, "setpoint": [{"name": "X:SET", "readback": "X:RBV"}]}
    with SoftIOC(config) as warm:  # p4p starts its own long-lived helper threads on first use
        client_for(warm).put("X:SET", 1.0, timeout=5)
    before = {t.ident for t in threading.enumerate()}
    ioc = SoftIOC(config).start()
    ctx = client_for(ioc)
    ctx.put("X:SET", 2.0, timeout=5)
    ctx.close()
    ioc.stop()
    ref = weakref.ref(ioc)
    del ioc
    gc.collect()
    assert ref() is None
    assert {t.ident for t in threading.enumerate()} <= before


def test_snapshot_reports_devices_and_observables(softioc_factory, client_for, monitor):
    ioc = softioc_factory({"ioc": FAST, "setpoint": [{"name": "X:SET", "readback": "X:RBV", "offset": 1.0}],
                           "observable": [{"name": "O", "expression": "x", "inputs": {"x": "X:RBV"}}]})
    ctx = client_for(ioc)
    obs = monitor(ctx, "O")
    ctx.put("X:SET", 2.0, timeout=5)
    obs.wait_value(lambda v: v == 3.0)
    device, observable = ioc.snapshot()
    assert device["setpoint_pv"] == "X:SET" and device["setpoint"] == 2.0
    assert device["readback"] == 3.0 and device["distance"] == 0.0 and device["online"]
    assert observable["readback_pv"] == "O" and observable["readback"] == 3.0


def test_a_post_batch_posts_every_type_with_its_stamp_and_skips_a_pv_closed_meanwhile(softioc_factory, client_for):
    # one update step a minute: nothing but this batch posts while the test reads
    ioc = softioc_factory({"ioc": {"seed": 1, "update_rate": 1 / 60}, "setpoint": [
        *TYPED["setpoint"], {"name": "D:SET", "readback": "D:RBV"}, {"name": "G:SET", "readback": "G:RBV"}]})
    ctx = client_for(ioc)
    ctx.get(ioc.pv_names(), timeout=5)
    channels = ioc._channels
    channels["G:RBV"].close()
    stamp = time.time() - 3.25
    batch = PostBatch(stamp, time.monotonic())
    sent = {"D:RBV": 1.5, "I:RBV": 4, "E:RBV": 2, "G:RBV": 9.0, "S:RBV": "busy",
            "W:RBV": np.array([1.0, 2.0, 3.0, 4.0]), "D:SET": 2.5}  # types interleaved, one closed
    batch.pending.extend((channels[name], value) for name, value in sent.items())
    batch.send()
    assert batch.posts == len(sent) - 1 and batch.pending == []
    names = [n for n in sent if n != "G:RBV"]
    got = dict(zip(names, ctx.get(names, timeout=5), strict=True))
    assert [float(got[n]) for n in ("D:RBV", "D:SET")] == [1.5, 2.5]
    assert int(got["I:RBV"]) == 4 and int(got["E:RBV"]) == 2 and got["S:RBV"].raw.value == "busy"
    assert got["E:RBV"].raw.value.choices == ["OFF", "ON", "FAULT"]
    assert list(got["W:RBV"]) == [1.0, 2.0, 3.0, 4.0]
    assert all(v.timestamp == pytest.approx(stamp, abs=1e-6) for v in got.values())
    assert channels["G:RBV"].last == 9.0  # reopens with it
    channels["G:RBV"].reopen()
    assert float(ctx.get("G:RBV", timeout=5)) == 9.0
