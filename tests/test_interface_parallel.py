"""Parallel and sequential set_values against the soft IOC: timing from the audit, full outcomes."""

from __future__ import annotations

import threading
from functools import partial

import pytest

from epics_pva import Interface, PutError, PutTimeoutError, SetValuesError, ValidationError
from epics_pva import wait_for_readback as _wait
from epics_pva.core._time_limit import TimeLimit
from softioc import PutReject, PutTimeout, StuckReadback

SETTLE = 1.0  # wall seconds the slow PV needs to move by 1.0 (rate 1/s, time_scale 1)
CONFIG = {
    "ioc": {"seed": 11, "update_rate": 50.0, "time_scale": 1.0},
    "setpoint": [
        {"name": "P:SLOW:SET", "readback": "P:SLOW:RBV", "limits": [-10, 10], "lag": "rate",
         "rate": 1.0, "noise": 0.0},
        {"name": "P:A:SET", "readback": "P:A:RBV", "limits": [-10, 10], "lag": "none", "noise": 0.0},
        {"name": "P:B:SET", "readback": "P:B:RBV", "limits": [-10, 10], "lag": "none", "noise": 0.0},
        {"name": "P:C:SET", "readback": "P:C:RBV", "limits": [-10, 10], "lag": "none", "noise": 0.0},
    ],
}


@pytest.fixture
def softioc_config():
    return CONFIG


def settle(readback: str, count_down: float = 3.0) -> partial:
    return partial(_wait, readback_pv=readback, tolerance=0.01, count_down=count_down, offset=0.0)


CONFIGS = {f"P:{n}:SET": settle(f"P:{n}:RBV") for n in ("SLOW", "A", "B", "C")}


def make(ioc, **kwargs) -> Interface:
    # timeout: a healthy PV's connection and put must fit in it on a loaded machine too (at
    # 0.5 s the channels' first description timed out and the whole set was refused)
    return Interface(conf=ioc.client_conf(), timeout=2.0, retry_delay=0.2, **kwargs)


def put_times(ioc) -> dict[str, float]:
    return {r.pv: r.wall_time for r in ioc.audit.puts(outcome="accepted")}


def test_parallel_a_slow_settling_pv_does_not_delay_the_others(soft_ioc):
    """Behaviour, not speed: the slow PV's validation does not finish before the other PVs'
    have, which only a parallel set can do (in order, it would wait for them in vain)."""
    done = {pv: threading.Event() for pv in ("P:A:SET", "P:B:SET")}
    seen: list[bool] = []

    def fast(pv):
        def validate(**kwargs):
            result = CONFIGS[pv](**kwargs)
            done[pv].set()
            return result
        return validate

    def slow(**kwargs):
        result = CONFIGS["P:SLOW:SET"](**kwargs)  # about SETTLE s: it moves at 1/s
        seen.append(all(event.wait(30.0) for event in done.values()))
        return result

    configs = {"P:SLOW:SET": slow, "P:A:SET": fast("P:A:SET"), "P:B:SET": fast("P:B:SET")}
    with make(soft_ioc, parallel=True) as itf:
        results = itf.set_values({"P:SLOW:SET": 1.0, "P:A:SET": 1.0, "P:B:SET": 1.0}, configs=configs)
    assert all(r.status == "set" for r in results.values())
    assert seen == [True]  # A and B were set and validated while SLOW was still validating
    assert results["P:SLOW:SET"].elapsed >= SETTLE * 0.9  # it did wait for its readback
    assert sorted(r.pv for r in soft_ioc.audit.puts(outcome="accepted")) == ["P:A:SET", "P:B:SET", "P:SLOW:SET"]


def test_in_order_each_put_waits_for_the_previous_pv_to_settle(soft_ioc):
    with make(soft_ioc, parallel=False) as itf:
        results = itf.set_values({"P:SLOW:SET": 1.0, "P:A:SET": 1.0, "P:B:SET": 1.0}, configs=CONFIGS)
    assert all(r.status == "set" for r in results.values())
    assert [r.pv for r in soft_ioc.audit.puts()] == ["P:SLOW:SET", "P:A:SET", "P:B:SET"]
    times = put_times(soft_ioc)
    assert times["P:A:SET"] - times["P:SLOW:SET"] >= SETTLE * 0.9
    assert times["P:B:SET"] >= times["P:A:SET"]


def test_parallel_a_timing_out_pv_does_not_delay_the_others(soft_ioc):
    soft_ioc.faults.arm("P:A:SET", PutTimeout(count=1))
    with make(soft_ioc, parallel=True) as itf:
        results = itf.set_values({"P:A:SET": 2.0, "P:B:SET": 2.0, "P:C:SET": 2.0})
    assert results["P:A:SET"].attempts == 2
    first_a = soft_ioc.audit.puts("P:A:SET")[0].wall_time
    times = put_times(soft_ioc)
    # B and C were not held up by A's timeout: both were in before A's retry went out
    assert times["P:B:SET"] < times["P:A:SET"] and times["P:C:SET"] < times["P:A:SET"]
    assert times["P:A:SET"] - first_a >= 0.2  # its retry came after retry_delay


@pytest.mark.parametrize("parallel", [True, False])
def test_partial_failure_reports_every_pvs_outcome(soft_ioc, parallel):
    soft_ioc.faults.arm("P:B:SET", PutReject(message="B is interlocked"))
    soft_ioc.faults.arm("P:C:SET", StuckReadback())
    soft_ioc.faults.arm("P:SLOW:SET", PutTimeout(count=2))
    inputs = {"P:A:SET": 0.5, "P:B:SET": 0.5, "P:C:SET": 0.5, "P:SLOW:SET": 0.5}
    configs = {**CONFIGS, "P:C:SET": settle("P:C:RBV", count_down=0.3)}
    with make(soft_ioc, parallel=parallel) as itf, pytest.raises(SetValuesError) as info:
        itf.set_values(inputs, configs=configs)
    results = info.value.results
    assert list(results) == list(inputs)
    a, b, c, slow = results.values()
    assert a.status == "set" and a.validation_result == pytest.approx(0.5, abs=0.01)
    assert b.status == "failed" and isinstance(b.error, PutError) and b.attempts == 1
    message = str(info.value)
    assert "P:B:SET = 0.5: put rejected by the server: B is interlocked" in message
    if parallel:
        assert c.status == "failed" and isinstance(c.error, ValidationError)
        assert slow.status == "failed" and isinstance(slow.error, PutTimeoutError)
        assert message.startswith("Failed to set 3 of 4 PV(s) (1 set, 0 not attempted):")
        assert "P:C:SET = 0.5: validation failed: PV P:C:SET: readback P:C:RBV" in message
        assert "P:SLOW:SET = 0.5: put timed out on all 2 attempt(s)" in message
        assert set(info.value.failed) == {"P:B:SET", "P:C:SET", "P:SLOW:SET"}
        sent = {"P:A:SET": 1, "P:B:SET": 1, "P:C:SET": 1, "P:SLOW:SET": 2}
    else:  # stops at the first failure: the rest are reported, not sent
        assert (c.status, slow.status) == ("not_attempted", "not_attempted")
        assert c.attempts == slow.attempts == 0 and c.error is None
        assert message.startswith("Failed to set 1 of 4 PV(s) (1 set, 2 not attempted):")
        assert "P:C:SET = 0.5: not attempted" in message and "P:SLOW:SET = 0.5: not attempted" in message
        sent = {"P:A:SET": 1, "P:B:SET": 1}
    assert {pv: len(soft_ioc.audit.puts(pv)) for pv in sent} == sent
    assert sum(len(soft_ioc.audit.puts(pv)) for pv in inputs) == sum(sent.values())


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("epics_pva")]


def test_the_pool_is_bounded_reused_and_closed(soft_ioc):
    before = set(pool_threads())
    itf = make(soft_ioc, max_workers=2)
    seen: set[threading.Thread] = set()

    def spy(**kwargs):
        seen.add(threading.current_thread())
        return _wait(readback_pv=kwargs["set_pv"].replace("SET", "RBV"), tolerance=0.01,
                     count_down=2.0, offset=0.0, **kwargs)

    inputs = {"P:A:SET": 3.0, "P:B:SET": 3.0, "P:C:SET": 3.0, "P:SLOW:SET": 0.2}
    for round_ in range(2):
        results = itf.set_values({pv: v + round_ for pv, v in inputs.items()},
                                 configs=dict.fromkeys(inputs, spy))
        assert all(r.status == "set" for r in results.values())
    assert len(seen) == 2 and all(t.name.startswith("epics_pva") for t in seen)
    assert len(set(pool_threads()) - before) == 2
    itf.close()
    for thread in seen:
        thread.join(5.0)
        assert not thread.is_alive()


def test_a_validation_started_the_moment_a_slot_frees_reuses_that_worker():
    """The set path starts the next validation as soon as one ends (from the ending one's
    outcome): the worker that freed the slot must already count as idle, or a new thread is
    started beside it (seen under load: 3 threads for max_workers=2)."""
    limit = TimeLimit(1)
    ran_in: list[threading.Thread] = []
    second_done = threading.Event()

    def validation(**_kwargs):
        ran_in.append(threading.current_thread())

    def first_done(_outcome):  # in the first one's worker, right after its slot came free
        assert limit.start("second", validation, {}, lambda _outcome: second_done.set()) is not None

    assert limit.start("first", validation, {}, first_done) is not None
    assert second_done.wait(10.0)
    assert len(ran_in) == 2 and ran_in[0] is ran_in[1]
    limit.close()
