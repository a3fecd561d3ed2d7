"""Put retries against faults injected in the soft IOC: timeouts retried, other errors not."""

from __future__ import annotations

import logging

import pytest

from epics_pva import Interface, PutError, PutTimeoutError, SetValuesError
from softioc import PutReject, PutTimeout

CONFIG = {
    "ioc": {"seed": 3, "update_rate": 50.0, "time_scale": 10.0},
    "setpoint": [
        {"name": "R:A:SET", "readback": "R:A:RBV", "limits": [-10, 10], "lag": "none", "noise": 0.0},
        {"name": "R:B:SET", "limits": [-10, 10]},
    ],
}
TIMEOUT = 2.0  # every put that should succeed must finish within it, on a loaded machine too
RETRY_DELAY = 0.4


@pytest.fixture
def softioc_config():
    return CONFIG


@pytest.fixture
def interface(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), timeout=TIMEOUT, retry_delay=RETRY_DELAY) as itf:
        yield itf


def test_one_put_timeout_succeeds_on_the_second_attempt_after_retry_delay(soft_ioc, interface, caplog):
    soft_ioc.faults.arm("R:A:SET", PutTimeout(count=1))
    with caplog.at_level(logging.WARNING, logger="epics_pva"):
        result = interface.set_value("R:A:SET", 1.25)
    assert result.status == "set" and result.attempts == 2
    first, second = soft_ioc.audit.puts("R:A:SET")
    assert (first.outcome, second.outcome) == ("timed_out", "accepted")
    assert first.value == second.value == 1.25
    assert second.wall_time - first.wall_time >= RETRY_DELAY
    assert result.elapsed >= TIMEOUT + RETRY_DELAY
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"put R:A:SET = 1.25 timed out after {TIMEOUT:g} s (attempt 1 of 2); retrying in {RETRY_DELAY:g} s"
    ]
    assert interface.get_value("R:A:SET") == 1.25


def test_two_put_timeouts_raise_naming_the_pv_after_exactly_two_puts(soft_ioc, interface):
    soft_ioc.faults.arm("R:A:SET", PutTimeout(count=2))
    with pytest.raises(PutTimeoutError) as info:
        interface.set_value("R:A:SET", 2.5)
    error = info.value
    assert isinstance(error, TimeoutError) and isinstance(error, PutError)
    assert (error.pv, error.value, error.attempts) == ("R:A:SET", 2.5, 2)
    assert str(error) == (
        f"R:A:SET = 2.5: put timed out on all 2 attempt(s) (no completion within {TIMEOUT:g} s each)"
    )
    assert [r.outcome for r in soft_ioc.audit.puts()] == ["timed_out", "timed_out"]


def test_set_values_reports_the_timeout_in_its_error(soft_ioc, interface):
    soft_ioc.faults.arm("R:B:SET", PutTimeout(count=2))
    with pytest.raises(SetValuesError) as info:
        interface.set_values({"R:A:SET": 1.0, "R:B:SET": -1.0})
    results = info.value.results
    assert results["R:A:SET"].status == "set"
    assert results["R:B:SET"].status == "failed" and results["R:B:SET"].attempts == 2
    assert isinstance(results["R:B:SET"].error, PutTimeoutError)
    assert "R:B:SET = -1.0: put timed out on all 2 attempt(s)" in str(info.value)
    assert len(soft_ioc.audit.puts("R:B:SET")) == 2 and len(soft_ioc.audit.puts("R:A:SET")) == 1


@pytest.mark.parametrize("attempts, timeouts, status, sent", [
    (1, 1, "failed", 1),
    (3, 2, "set", 3),
    (3, 3, "failed", 3),
])
def test_put_attempts_counts_every_put_sent(soft_ioc, attempts, timeouts, status, sent):
    soft_ioc.faults.arm("R:B:SET", PutTimeout(count=timeouts))
    itf = Interface(conf=soft_ioc.client_conf(), timeout=TIMEOUT, retry_delay=0.05,
                    put_attempts=attempts)
    with itf:
        if status == "set":
            assert itf.set_value("R:B:SET", 3.0).attempts == sent
        else:
            with pytest.raises(PutTimeoutError, match=f"all {sent} attempt"):
                itf.set_value("R:B:SET", 3.0)
    assert len(soft_ioc.audit.puts("R:B:SET")) == sent


def test_a_rejected_put_is_not_retried(soft_ioc, interface, caplog):
    soft_ioc.faults.arm("R:A:SET", PutReject(count=1, message="interlock: beam permit missing"))
    with caplog.at_level(logging.WARNING, logger="epics_pva"), pytest.raises(PutError) as info:
        interface.set_value("R:A:SET", 4.0)
    assert not isinstance(info.value, PutTimeoutError)
    assert str(info.value) == (
        "R:A:SET = 4.0: put rejected by the server: interlock: beam permit missing")
    assert info.value.attempts == 1
    assert [r.outcome for r in soft_ioc.audit.puts()] == ["rejected"]
    assert "retrying" not in caplog.text


def test_puts_work_normally_once_the_fault_is_spent(soft_ioc, interface):
    soft_ioc.faults.arm("R:A:SET", PutReject(count=1))
    with pytest.raises(PutError):
        interface.set_value("R:A:SET", 1.0)
    assert interface.set_value("R:A:SET", 1.0).attempts == 1
    assert [r.outcome for r in soft_ioc.audit.puts()] == ["rejected", "accepted"]
