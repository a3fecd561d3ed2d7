"""wait_for_readback and validation functions, over PVAccess against the soft IOC."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from functools import partial

import pytest
from p4p.client.raw import Context as RawContext
from p4p.client.thread import Context

from epics_pva import Interface, SetValuesError, ValidationError, wait_for_readback
from epics_pva.core import _readback
from epics_pva.transport import _monitor
from softioc import Outage, SlowReadback, StuckReadback

CONFIG = {
    "ioc": {"seed": 9, "update_rate": 50.0, "time_scale": 10.0},
    "setpoint": [
        {"name": "V:A:SET", "readback": "V:A:RBV", "limits": [-10, 10], "lag": "first_order",
         "tau": 1.0, "noise": 0.0},
        {"name": "V:OFF:SET", "readback": "V:OFF:RBV", "lag": "none", "noise": 0.0, "offset": 0.2},
        {"name": "V:B:SET", "readback": "V:B:RBV", "lag": "none", "noise": 0.0},
    ],
}


@pytest.fixture
def softioc_config():
    return CONFIG


class SpyContext(Context):
    """A real p4p context that remembers the monitors wait_for_readback opened on it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.subscriptions = []


@pytest.fixture
def context(soft_ioc, monkeypatch):
    ctx = SpyContext("pva", conf=soft_ioc.client_conf(), useenv=False)

    def spied(context, *args, **kwargs):
        monitor = _monitor.Monitor(context, *args, **kwargs)
        if context is ctx:
            ctx.subscriptions.append(weakref.ref(monitor))
        return monitor

    monkeypatch.setattr(_readback, "Monitor", spied)
    yield ctx
    ctx.close()


def assert_no_subscription_left(ctx: SpyContext) -> None:
    gc.collect()
    assert ctx.subscriptions and all(ref() is None or not ref().open for ref in ctx.subscriptions)


def wait(ctx, set_pv="V:A:SET", set_value=1.0, readback_pv="V:A:RBV", tolerance=0.01,
         count_down=5.0, offset=0.0, timeout=1.0):
    return wait_for_readback(set_pv=set_pv, set_value=set_value, readback_pv=readback_pv,
                             tolerance=tolerance, count_down=count_down, offset=offset,
                             context=ctx, timeout=timeout)


def test_returns_the_readback_once_within_tolerance(soft_ioc, context):
    context.put("V:A:SET", 1.0)
    value = wait(context, tolerance=0.01)
    assert type(value) is float and abs(value - 1.0) <= 0.01
    assert abs(context.get("V:A:RBV") - 1.0) <= 0.011  # it really got there
    assert_no_subscription_left(context)


def test_offset_is_added_to_the_set_value(soft_ioc, context):
    context.put("V:OFF:SET", 1.0)
    assert wait(context, "V:OFF:SET", 1.0, "V:OFF:RBV", offset=0.2) == pytest.approx(1.2)
    with pytest.raises(ValueError, match="expected value 1 "):
        wait(context, "V:OFF:SET", 1.0, "V:OFF:RBV", offset=0.0, count_down=0.3)


def test_a_stuck_readback_raises_naming_everything_an_operator_needs(soft_ioc, context):
    soft_ioc.faults.arm("V:B:SET", StuckReadback())
    context.put("V:B:SET", 2.5)
    start = time.monotonic()
    with pytest.raises(ValueError) as info:
        wait(context, "V:B:SET", 2.5, "V:B:RBV", tolerance=0.05, count_down=0.5)
    assert time.monotonic() - start >= 0.5
    assert str(info.value) == (
        "PV V:B:SET: readback V:B:RBV = 0 did not reach the expected value 2.5 "
        "(tolerance 0.05) within the time limit of 0.5 s"
    )
    assert_no_subscription_left(context)


class LateRawContext(RawContext):
    """p4p's raw monitor(), slowed where p4p's thread-level one loses the first update: that
    update arrives before the subscription is handed back (called unbound on any Context)."""

    seen = threading.Event()

    def monitor(self, name, handler, request=None, **kws):
        def signal():
            LateRawContext.seen.set()
            handler()

        subscription = RawContext.monitor(self, name, signal, request, **kws)
        assert LateRawContext.seen.wait(5.0)  # the first update is in before monitor() returns
        return subscription


def test_a_first_update_before_the_monitor_is_stored_does_not_stall_the_wait(soft_ioc, until, monkeypatch):
    """p4p 4.3's thread-level monitor drops such an update ("Lost Subscription update") and
    stalls; the wait's own monitor (epics_pva.transport.Monitor) takes it."""
    monkeypatch.setattr(_monitor, "RawContext", LateRawContext)
    ctx = Context("pva", conf=soft_ioc.client_conf(), useenv=False)
    try:
        ctx.put("V:B:SET", 0.5)
        # already on target before the wait starts: no further update will come
        until(lambda: ctx.get("V:B:RBV") == 0.5, what="readback on target")
        assert wait(ctx, "V:B:SET", 0.5, "V:B:RBV", count_down=2.0) == 0.5
        assert LateRawContext.seen.is_set()  # the race really happened
    finally:
        ctx.close()


def test_a_readback_that_never_answers_stops_after_the_network_timeout(soft_ioc, context):
    start = time.monotonic()
    with pytest.raises(ValueError) as info:
        wait(context, "V:B:SET", 1.0, "V:NOSUCH:RBV", count_down=30.0, timeout=0.3)
    assert time.monotonic() - start < 10.0  # not the 30 s count_down
    assert str(info.value).startswith(
        "PV V:B:SET: readback V:NOSUCH:RBV sent no value within 0.3 s (expected 1; time limit 30 s)")
    assert_no_subscription_left(context)


def test_wakes_on_the_update_that_reaches_the_target(soft_ioc, context):
    soft_ioc.faults.arm("V:B:SET", SlowReadback(rate=0.0))  # the readback stops posting
    context.put("V:B:SET", 3.0)
    result: list = []
    waiter = threading.Thread(target=lambda: result.append(wait(context, "V:B:SET", 3.0, "V:B:RBV")))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and result == []  # still waiting: no update has come
    soft_ioc.faults.clear("V:B:SET")  # the next update brings the new readback
    waiter.join(5.0)
    assert result == [3.0]


def test_survives_the_readback_pv_going_away_and_coming_back(soft_ioc, context):
    context.put("V:B:SET", -1.0)
    soft_ioc.faults.arm("V:B:RBV", Outage(duration=0.5))
    assert wait(context, "V:B:SET", -1.0, "V:B:RBV", count_down=10.0, timeout=5.0) == -1.0
    assert_no_subscription_left(context)


# ---- validation functions through the Interface -------------------------------------------

@pytest.fixture
def interface(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), timeout=0.7, retry_delay=0.05) as itf:
        yield itf


def test_a_validation_function_gets_the_documented_arguments(soft_ioc, interface):
    seen = {}

    def check(**kwargs):
        seen.update(kwargs)
        return "checked"

    result = interface.set_value("V:B:SET", 0.75, validation_function=check)
    assert result.validation_result == "checked"
    assert set(seen) == {"set_pv", "set_value", "context", "timeout"}
    assert seen["set_pv"] == "V:B:SET" and seen["set_value"] == 0.75 and seen["timeout"] == 0.7
    assert isinstance(seen["context"], Context) and seen["context"] is interface._context
    assert seen["context"].get("V:B:SET") == 0.75  # the put happened before validation


def test_the_shipped_wait_for_readback_works_as_a_badger_config(soft_ioc, interface):
    configs = {"V:A:SET": partial(wait_for_readback, readback_pv="V:A:RBV", tolerance=0.05,
                                  count_down=15, offset=0)}
    results = interface.set_values({"V:A:SET": -2.0}, configs=configs)
    assert abs(results["V:A:SET"].validation_result + 2.0) <= 0.05


@pytest.mark.parametrize("exc, text", [
    (ValueError("readback is off"), "readback is off"),
    (ZeroDivisionError("division by zero"), "division by zero"),
    (KeyError, "KeyError"),
])
def test_whatever_a_validation_function_raises_is_a_validation_failure(soft_ioc, interface, exc, text):
    def broken(**kwargs):
        raise exc

    with pytest.raises(ValidationError) as info:
        interface.set_value("V:B:SET", 1.5, validation_function=broken)
    assert str(info.value) == f"V:B:SET = 1.5: validation failed: {text}"
    assert (info.value.pv, info.value.value) == ("V:B:SET", 1.5)
    assert isinstance(info.value.cause, type(exc) if isinstance(exc, Exception) else exc)
    assert [r.outcome for r in soft_ioc.audit.puts()] == ["accepted"]  # validated once, not re-put


def test_a_stuck_readback_fails_set_values_with_the_full_message(soft_ioc, interface):
    soft_ioc.faults.arm("V:B:SET", StuckReadback())
    configs = {"V:B:SET": partial(wait_for_readback, readback_pv="V:B:RBV", tolerance=0.05,
                                  count_down=0.4, offset=0)}
    with pytest.raises(SetValuesError) as info:
        interface.set_values({"V:B:SET": 4.0}, configs=configs)
    result = info.value.results["V:B:SET"]
    assert result.status == "failed" and result.attempts == 1
    assert isinstance(result.error, ValidationError)
    assert str(info.value) == (
        "Failed to set 1 of 1 PV(s) (0 set, 0 not attempted):\n"
        "  V:B:SET = 4.0: validation failed: PV V:B:SET: readback V:B:RBV = 0 did not reach "
        "the expected value 4 (tolerance 0.05) within the time limit of 0.4 s"
    )
