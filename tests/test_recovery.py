"""Recovery: after a soft IOC restart or a PV outage, the same Interface reads and writes again.

No Interface is rebuilt and nothing is reconnected by hand: p4p's channel search finds the
PVs again. The time from the server (or PV) being back to the first successful read is
measured and bounded by RECOVERY_BOUND; the figures measured on the development machine are
quoted in the README (Reliability) and in the soak report (`recovery_s`).
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial

import pytest

from epics_pva import (
    Interface,
    InvalidInputError,
    PutTimeoutError,
    ReadError,
    SetValuesError,
    wait_for_readback,
)
from softioc import Outage, PutTimeout, SoftIOC

PVS = ("RC:A:SET", "RC:B:SET", "RC:C:SET")
RBV = {pv: pv.replace(":SET", ":RBV") for pv in PVS}
EVERY_PV = (*PVS, *RBV.values())  # readbacks reconnect on their own: validation needs them too
CONFIG = {
    "ioc": {"seed": 23, "update_rate": 50.0, "time_scale": 10.0},
    "setpoint": [
        {"name": pv, "readback": RBV[pv], "limits": [-10, 10], "lag": "none", "noise": 0.0}
        for pv in PVS
    ],
}
TIMEOUT = 0.5
RECOVERY_BOUND = 15.0  # s; measured 0.0-6 s after a restart (p4p's search back-off), < 0.6 s after an outage
DOWNTIME = 2.0  # s; longer than a failed read plus a refused set (2 x TIMEOUT)


@pytest.fixture
def softioc_config():
    return CONFIG


def validated(pvs=PVS) -> dict:
    return {pv: partial(wait_for_readback, readback_pv=RBV[pv], tolerance=0.01, count_down=5.0,
                        offset=0.0) for pv in pvs}


def make(ioc: SoftIOC, **kwargs) -> Interface:
    itf = Interface(conf=ioc.client_conf(), timeout=TIMEOUT, retry_delay=0.05, **kwargs)
    assert itf.get_values(list(PVS)) == dict.fromkeys(PVS, 0.0)  # connected before the fault
    return itf


def read_again(itf: Interface, since: float, names=EVERY_PV) -> float:
    """Read `names` until it works; the seconds from `since` (time.monotonic) to success."""
    while True:
        try:
            itf.get_values(list(names))
            return time.monotonic() - since
        except ReadError:
            assert time.monotonic() - since < RECOVERY_BOUND, f"not readable {RECOVERY_BOUND} s after"


def restart_in_background(ioc: SoftIOC, downtime: float) -> tuple[threading.Thread, list[float]]:
    """Take the server down for `downtime` s; the list gets the monotonic time it was back."""
    back: list[float] = []

    def run() -> None:
        ioc.restart(downtime=downtime)  # returns once serving again
        back.append(time.monotonic())

    thread = threading.Thread(target=run, name="restart")
    thread.start()
    return thread, back


def back_at(caplog, timeout: float) -> float:
    """The wall time the soft IOC logged being back on the network (waits up to `timeout` s)."""
    deadline = time.monotonic() + timeout
    while True:
        back = [r.created for r in caplog.records if r.getMessage().startswith("soft IOC server back")]
        if back:
            return back[-1]
        assert time.monotonic() < deadline, "the soft IOC did not come back"
        time.sleep(0.01)


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "in_order"])
def test_the_same_interface_reads_and_writes_after_a_restart(soft_ioc, caplog, parallel):
    caplog.set_level(logging.WARNING, logger="softioc.server")
    itf = make(soft_ioc, parallel=parallel)
    context = itf._context
    soft_ioc.restart(downtime=DOWNTIME, wait=False)  # off the network now, back by itself
    try:
        # while the server is down: reads fail naming every PV, sets are refused, nothing is sent
        with pytest.raises(ReadError) as info:
            itf.get_values(list(PVS))
        assert set(info.value.failures) == set(PVS)
        with pytest.raises(InvalidInputError) as refused:
            itf.set_values(dict.fromkeys(PVS, 1.0))
        assert set(refused.value.problems) == set(PVS)
        back = back_at(caplog, DOWNTIME + 10)
        read_again(itf, time.monotonic())
        took = time.time() - back
        results = itf.set_values(dict.fromkeys(PVS, 2.5), configs=validated())
        assert itf._context is context  # the same client context throughout
    finally:
        itf.close()
    assert took < RECOVERY_BOUND
    assert {pv: (r.status, r.attempts) for pv, r in results.items()} == dict.fromkeys(PVS, ("set", 1))
    assert all(r.validation_result == pytest.approx(2.5, abs=0.01) for r in results.values())
    # exactly one put per PV reached the IOC: the refused call sent nothing
    assert sorted((r.pv, r.value, r.outcome) for r in soft_ioc.audit.puts()) == [
        (pv, 2.5, "accepted") for pv in PVS]


@pytest.mark.parametrize("ended_by", ["duration", "clear"])
def test_the_same_interface_reads_and_writes_after_a_pv_outage(soft_ioc, ended_by):
    itf = make(soft_ioc)
    duration = DOWNTIME if ended_by == "duration" else 60.0
    soft_ioc.faults.arm("RC:B:SET", Outage(duration=duration))
    try:
        with pytest.raises(ReadError) as info:  # the others are read, only B fails
            itf.get_values([*PVS, RBV["RC:B:SET"]])
        assert set(info.value.failures) == {"RC:B:SET", "RC:B:RBV"}
        assert info.value.values == {"RC:A:SET": 0.0, "RC:C:SET": 0.0}
        with pytest.raises(InvalidInputError) as refused:
            itf.set_values(dict.fromkeys(PVS, 1.0))
        assert set(refused.value.problems) == {"RC:B:SET"}
        if ended_by == "clear":
            assert soft_ioc.faults.clear("RC:B:SET") == 1
        deadline = time.monotonic() + duration + 10
        while not soft_ioc.audit.faults("RC:B:SET", event="cleared" if ended_by == "clear" else "expired"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        took = read_again(itf, time.monotonic())
        results = itf.set_values(dict.fromkeys(PVS, -1.5), configs=validated())
    finally:
        itf.close()
    assert took < RECOVERY_BOUND
    assert all(r.status == "set" and r.validation_result == pytest.approx(-1.5, abs=0.01)
               for r in results.values())
    assert sorted((r.pv, r.value) for r in soft_ioc.audit.puts()) == [(pv, -1.5) for pv in PVS]


def test_an_outage_between_the_check_and_the_put_then_recovery(soft_ioc):
    """B vanishes after the inputs were checked (A's validation takes it away): B's put never
    reaches the IOC, is reported as timed out after both attempts, C is not attempted; once B
    is back the same Interface sets all three."""
    itf = make(soft_ioc, parallel=False)

    def take_b_away(**kwargs):
        soft_ioc.faults.arm("RC:B:SET", Outage(duration=60.0))  # ended below, by clear()

    try:
        with pytest.raises(SetValuesError) as info:
            itf.set_values(dict.fromkeys(PVS, 1.0), configs={"RC:A:SET": take_b_away})
        results = info.value.results
        assert {pv: r.status for pv, r in results.items()} == {
            "RC:A:SET": "set", "RC:B:SET": "failed", "RC:C:SET": "not_attempted"}
        assert isinstance(results["RC:B:SET"].error, PutTimeoutError)
        assert results["RC:B:SET"].attempts == 2
        assert [r.pv for r in soft_ioc.audit.puts()] == ["RC:A:SET"]  # B's puts never arrived
        assert soft_ioc.faults.clear("RC:B:SET") == 1
        read_again(itf, time.monotonic())
        again = itf.set_values(dict.fromkeys(PVS, 2.0), configs=validated())
    finally:
        itf.close()
    assert all(r.status == "set" for r in again.values())
    assert [(r.pv, r.value) for r in soft_ioc.audit.puts()] == [
        ("RC:A:SET", 1.0), ("RC:A:SET", 2.0), ("RC:B:SET", 2.0), ("RC:C:SET", 2.0)]


def test_after_a_put_timeout_storm_nothing_held_is_applied_late(soft_ioc):
    """Puts held by the IOC while the fault lasted are abandoned when it is cleared: the value
    that lands is the one set after recovery, never a stale one from the storm."""
    itf = make(soft_ioc)
    soft_ioc.faults.arm("RC:A:SET", PutTimeout(count=None))
    try:
        for value in (4.0, 5.0):
            with pytest.raises(PutTimeoutError):
                itf.set_value("RC:A:SET", value)
        assert soft_ioc.faults.clear("RC:A:SET") == 1
        result = itf.set_value("RC:A:SET", 6.0, validation_function=validated()["RC:A:SET"])
        readback = itf.get_values(["RC:A:SET", "RC:A:RBV"])
    finally:
        itf.close()
    assert (result.status, result.attempts) == ("set", 1)
    assert readback == {"RC:A:SET": 6.0, "RC:A:RBV": 6.0}
    assert [(r.value, r.outcome) for r in soft_ioc.audit.puts()] == [
        (4.0, "timed_out"), (4.0, "timed_out"), (5.0, "timed_out"), (5.0, "timed_out"), (6.0, "accepted")]


RELEASERS = 2  # the transport's releaser threads: at most two, started with work, ending once idle


def own_threads() -> tuple[list[str], list[threading.Thread]]:
    """Names of the Python-started threads other than the Interface's pool and the transport's
    releasers (they come and go), and the pool's threads.

    Native threads that merely logged through Python appear as 'dummy' threads: not ours."""
    dummy = getattr(threading, "_DummyThread", ())
    threads = [t for t in threading.enumerate() if not isinstance(t, dummy)]
    pool = [t for t in threads if t.name.startswith("epics_pva")]
    releasers = [t for t in threads if t.name.startswith("pva-release")]
    assert len(releasers) <= RELEASERS, [t.name for t in releasers]
    return sorted(t.name for t in threads if t not in pool and t not in releasers), pool


def test_repeated_restarts_leave_no_threads_behind(soft_ioc):
    itf = make(soft_ioc)
    seen: list[list[str]] = []
    pool: set[threading.Thread] = set()
    try:
        for round_ in range(3):
            thread, back = restart_in_background(soft_ioc, 0.3)
            thread.join(10)
            assert back
            read_again(itf, back[0])
            itf.set_values(dict.fromkeys(PVS, float(round_)), configs=validated())
            others, workers = own_threads()
            seen.append(others)
            pool.update(workers)
    finally:
        itf.close()
    assert seen[1:] == seen[:1] * 2  # nothing new per restart (p4p's workers start once)
    # readback waits need no thread; a validation function would get one, at most max_workers
    assert len(pool) <= itf.max_workers
    for worker in pool:  # and its threads end once the interface is closed
        worker.join(10)
        assert not worker.is_alive()
    assert len(soft_ioc.audit.puts(outcome="accepted")) == 9
