"""close() from another thread, or os.fork(), during a validated parallel set: the set fails
at once saying the client context was closed under it, and never blames the machine."""

from __future__ import annotations

import os
import threading

import pytest

from epics_pva import (
    ContextClosedError,
    Interface,
    SetValuesError,
    ValidationError,
    wait_for_readback,
)

COUNT_DOWN = 30.0  # far longer than any wait here: a set still waiting on it has failed the test
CONFIG = {
    "ioc": {"seed": 5, "update_rate": 50.0, "time_scale": 1.0},
    "setpoint": [  # readbacks ramp at 0.5 units/s: still moving when the context is closed
        {"name": f"C:{n}:SET", "readback": f"C:{n}:RBV", "limits": [-10, 10], "lag": "rate",
         "rate": 0.5, "noise": 0.0} for n in "AB"
    ],
}
INPUTS = {"C:A:SET": 2.0, "C:B:SET": 2.0}


@pytest.fixture
def softioc_config():
    return CONFIG


def _start_set(itf: Interface) -> tuple[threading.Thread, dict]:
    """Start a validated parallel set in a thread; return once every PV's validation began."""
    validating = threading.Barrier(len(INPUTS) + 1)
    outcome: dict = {}

    def validate(**kwargs):
        validating.wait(timeout=10)
        return wait_for_readback(readback_pv=kwargs["set_pv"].replace("SET", "RBV"),
                                 tolerance=0.01, count_down=COUNT_DOWN, offset=0.0, **kwargs)

    def run():
        try:
            outcome["results"] = itf.set_values(INPUTS, configs=dict.fromkeys(INPUTS, validate))
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    validating.wait(timeout=10)  # every PV's put is done and its validation has begun
    return thread, outcome


def _assert_failed_as_closed(thread: threading.Thread, outcome: dict) -> None:
    thread.join(timeout=COUNT_DOWN / 3)
    assert not thread.is_alive(), "the set kept waiting on a closed context"
    error = outcome.get("error")
    assert isinstance(error, SetValuesError), outcome
    for pv in INPUTS:
        result = error.results[pv]
        assert result.status == "failed" and result.attempts == 1
        assert isinstance(result.error, ValidationError)
        assert isinstance(result.error.cause, ContextClosedError)
        text = str(result.error)
        assert "context was closed" in text and "did not reach" not in text, text


def test_close_from_another_thread_fails_the_set_at_once_saying_why(soft_ioc):
    itf = Interface(conf=soft_ioc.client_conf(), timeout=2.0)
    thread, outcome = _start_set(itf)
    itf.close()
    _assert_failed_as_closed(thread, outcome)
    assert sorted(r.pv for r in soft_ioc.audit.puts(outcome="accepted")) == sorted(INPUTS)
    assert itf.get_values(["C:A:SET"]) == {"C:A:SET": 2.0}  # usable again: it reconnects


def test_a_fork_during_the_set_fails_it_at_once_saying_why(soft_ioc):
    itf = Interface(conf=soft_ioc.client_conf(), timeout=2.0)
    thread, outcome = _start_set(itf)
    pid = os.fork()  # the at-fork hook closes the parent's contexts
    if pid == 0:
        os._exit(0)  # the child makes no p4p call (the soft IOC's server lives in this process)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    _assert_failed_as_closed(thread, outcome)
    assert sorted(r.pv for r in soft_ioc.audit.puts(outcome="accepted")) == sorted(INPUTS)
    itf.close()


def test_close_during_a_held_put_fails_it_at_once_without_a_retry(soft_ioc, until):
    from softioc import PutTimeout

    soft_ioc.faults.arm("C:A:SET", PutTimeout(count=None))  # the server never completes it
    itf = Interface(conf=soft_ioc.client_conf(), timeout=COUNT_DOWN, put_attempts=3, parallel=False)
    outcome: dict = {}

    def run():
        try:
            itf.set_values({"C:A:SET": 1.0})
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    until(lambda: soft_ioc.audit.puts(pv="C:A:SET"), what="the put reached the server")
    itf.close()
    thread.join(timeout=COUNT_DOWN / 3)
    assert not thread.is_alive(), "the put kept waiting on a closed context"
    result = outcome["error"].results["C:A:SET"]
    assert result.status == "failed" and result.attempts == 1
    assert "context was closed while putting C:A:SET" in str(result.error)
    assert "timed out" not in str(result.error)
    assert len(soft_ioc.audit.puts(pv="C:A:SET")) == 1  # no retry went out
