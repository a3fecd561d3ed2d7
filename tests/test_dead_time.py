"""A readback's dead time, over PVAccess: the readback starts moving `dead_time` after the put,
puts arrive in order (the model and the config checks: tests/unit/test_dead_time.py)."""

import math

import pytest

from softioc.faults import ReadbackBias, StuckReadback


def readbacks(sim, pv, steps):
    """The readback `pv` after each of the next `steps` update steps."""
    values = []
    for _ in range(steps):
        sim.step()
        values.append(sim.readbacks[pv])
    return values


RATE = {"seed": 1, "update_rate": 20.0, "time_scale": 10.0}  # dt = 0.5 simulated s per 50 ms step
PERIOD, DT = 1.0 / RATE["update_rate"], RATE["time_scale"] / RATE["update_rate"]


def test_the_readback_starts_its_exponential_dead_time_after_the_put(softioc_factory, client_for, monitor):
    tau, target, delay = 5.0, 2.0, 5
    ioc = softioc_factory({"ioc": RATE, "setpoint": [
        {"name": "X:SET", "readback": "X:RBV", "lag": "first_order", "tau": tau, "dead_time": delay * DT}]})
    ctx = client_for(ioc)
    sp, rbv = monitor(ctx, "X:SET"), monitor(ctx, "X:RBV")
    rbv.wait_value(lambda v: v == 0.0)
    sp.wait_value(lambda v: v == 0.0)
    ctx.put("X:SET", target, timeout=5)
    put = sp.wait_value(lambda v: v == target)
    rbv.wait_for(lambda events: len(events) >= 6)
    a = math.exp(-DT / tau)
    values = rbv.values[1:]
    ks = [math.log(1.0 - float(v) / target) / math.log(a) for v in values]
    assert ks == pytest.approx(list(range(1, len(ks) + 1)), abs=1e-6)  # the whole curve, one step a post
    # its first move is stamped with the step due `delay` + 1 steps after the step the put followed,
    # so within (delay, delay + 1] periods of the put; the loop running up to a period late at the
    # put's moment still leaves it above delay - 1
    waited = values[0].timestamp - put.timestamp
    assert (delay - 1) * PERIOD <= waited <= (delay + 1) * PERIOD + 0.005, waited


def test_two_puts_within_the_dead_time_arrive_in_order_over_pvaccess(softioc_factory, client_for, monitor):
    delay = 6  # 0.3 s of wall time: both puts land within it
    ioc = softioc_factory({"ioc": RATE, "setpoint": [
        {"name": "X:SET", "readback": "X:RBV", "dead_time": delay * DT},
        {"name": "T:SET", "readback": "T:RBV", "noise": 0.1}]})  # posts every step: a step counter
    ctx = client_for(ioc)
    sp, rbv, ticks = monitor(ctx, "X:SET"), monitor(ctx, "X:RBV"), monitor(ctx, "T:RBV")
    rbv.wait_value(lambda v: v == 0.0)
    ctx.put("X:SET", 1.0, timeout=5)
    seen = ticks.mark()
    ticks.wait_for(lambda events: len(events) >= seen + 2)  # a whole step after the first put
    ctx.put("X:SET", 2.0, timeout=5)
    rbv.wait_value(lambda v: v == 2.0)
    first, second = (sp.wait_value(lambda v, x=x: v == x) for x in (1.0, 2.0))
    assert [float(v) for v in rbv.values] == [0.0, 1.0, 2.0]
    one, two = rbv.values[1:]
    assert one.timestamp > second.timestamp  # the first put was still in its dead time at the second
    for value, put in ((one, first), (two, second)):
        waited = value.timestamp - put.timestamp
        assert (delay - 1) * PERIOD <= waited <= (delay + 1) * PERIOD + 0.005, waited


def test_readback_faults_act_on_a_dead_time_readback_over_pvaccess(softioc_factory, client_for, monitor):
    delay = 6
    ioc = softioc_factory({"ioc": RATE, "setpoint": [
        {"name": "X:SET", "readback": "X:RBV", "dead_time": delay * DT},
        {"name": "T:SET", "readback": "T:RBV", "noise": 0.1}]})
    ctx = client_for(ioc)
    sp, rbv, ticks = monitor(ctx, "X:SET"), monitor(ctx, "X:RBV"), monitor(ctx, "T:RBV")
    rbv.wait_value(lambda v: v == 0.0)
    ioc.faults.arm("X:SET", ReadbackBias(bias=0.5))
    rbv.wait_value(lambda v: v == 0.5)  # the bias at once: it is not delayed
    ctx.put("X:SET", 1.0, timeout=5)
    moved = rbv.wait_value(lambda v: v == 1.5)
    waited = moved.timestamp - sp.wait_value(lambda v: v == 1.0).timestamp
    assert (delay - 1) * PERIOD <= waited <= (delay + 1) * PERIOD + 0.005, waited
    ioc.faults.clear()
    rbv.wait_value(lambda v: v == 1.0)
    ioc.faults.arm("X:SET", StuckReadback())
    ctx.put("X:SET", 3.0, timeout=5)
    seen = ticks.mark()
    ticks.wait_for(lambda events: len(events) >= seen + 2 * delay)  # well past the dead time
    assert [float(v) for v in rbv.values] == [0.0, 0.5, 1.5, 1.0]  # 3.0 fell due while stuck
    ioc.faults.clear("X:SET")
    rbv.wait_value(lambda v: v == 3.0)
