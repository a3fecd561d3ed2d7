"""Faults without a network: building them from data, and the book of armed faults (every fault
as a p4p client sees it: tests/test_faults.py)."""

import pytest

from softioc import (
    PutReject,
    PutTimeout,
    ReadbackBias,
    SlowReadback,
    StuckReadback,
)
from softioc.faults import FaultBook, ReadbackEffect, describe, fault_from_dict


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("melt", {}, "unknown fault kind 'melt'"),
        ("put_timeout", {"cnt": 1}, "fault 'put_timeout' has no parameter 'cnt'"),
        ("put_timeout", {"count": 1.5}, "parameter 'count' has the wrong type"),
        ("put_timeout", {"apply": "yes"}, "parameter 'apply' has the wrong type"),
        ("put_reject", {"message": 3}, "parameter 'message' has the wrong type"),
        ("put_reject", {"count": 0}, "count must be >= 1 or None"),
        ("put_timeout", {"probability": -0.1}, "probability must be within [0, 1]"),
        ("outage", {"duration": -1}, "duration must be within [0, 3600]"),
        ("put_timeout", {"complete_after": -1}, "complete_after must be within [0, 3600] or None"),
    ],
)
def test_fault_from_dict_refuses_bad_parameters(kind, params, message):
    with pytest.raises(ValueError) as info:
        fault_from_dict(kind, params)
    assert message in str(info.value)


def test_fault_from_dict_builds_each_kind():
    assert fault_from_dict("put_timeout", {"count": None, "apply": True}) == PutTimeout(count=None, apply=True)
    assert fault_from_dict("readback_bias", {"bias": 1, "drift": 0.5}) == ReadbackBias(bias=1, drift=0.5)
    assert describe(SlowReadback(rate=2.0)) == {"kind": "slow_readback", "rate": 2.0, "duration": None}


def test_count_based_fault_fires_exactly_count_times():
    book = FaultBook(seed=1)
    armed = book.arm("X", PutReject(count=3), now=0.0)
    fired = [book.take_put_fault("X", now=0.0) is not None for _ in range(6)]
    assert fired == [True, True, True, False, False, False]
    assert armed.fired == 3 and armed.spent(0.0)
    assert book.expire(0.0) == [armed] and book.active() == []


def test_unlimited_fault_fires_until_cleared():
    book = FaultBook(seed=1)
    book.arm("X", PutTimeout(count=None), now=0.0)
    assert all(book.take_put_fault("X", 0.0) for _ in range(50))
    assert book.take_put_fault("Y", 0.0) is None
    assert len(book.clear("X")) == 1 and book.take_put_fault("X", 0.0) is None


def test_probabilistic_faults_replay_with_the_same_seed():
    def plan(seed):
        book = FaultBook(seed)
        book.arm("X", PutReject(probability=0.3), now=0.0)
        book.arm("X", PutTimeout(probability=0.5), now=0.0)
        return [getattr(book.take_put_fault("X", 0.0), "fault", None) for _ in range(200)]

    first = plan(7)
    assert first == plan(7)
    assert first != plan(8)
    kinds = [type(f).__name__ if f else None for f in first]
    assert kinds.count("PutReject") == pytest.approx(60, abs=25)
    assert kinds.count("PutTimeout") == pytest.approx(70, abs=25)  # 0.7 * 0.5 of the rest
    assert kinds.count(None) > 0


def test_timed_faults_expire_and_readback_effects_combine():
    book = FaultBook(seed=0)
    book.arm("X", StuckReadback(duration=2.0), now=10.0)
    book.arm("X", ReadbackBias(bias=0.5, drift=0.1), now=10.0)
    book.arm("X", ReadbackBias(bias=0.25), now=10.0)
    book.arm("X", SlowReadback(rate=5.0), now=10.0)
    book.arm("X", SlowReadback(rate=2.0, duration=1.0), now=10.0)
    assert book.readback_effects(10.5) == {"X": ReadbackEffect(True, 0.75, 0.1, 2.0)}
    assert book.readback_effects(11.5) == {"X": ReadbackEffect(True, 0.75, 0.1, 5.0)}
    assert [a.fault.kind for a in book.expire(12.0)] == ["stuck_readback", "slow_readback"]
    assert book.readback_effects(12.0) == {"X": ReadbackEffect(False, 0.75, 0.1, 5.0)}
    assert "Y" not in book.readback_effects(12.0)
