"""A fault kind is one class: defined here, in the test, it is armed over the wire and acts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from p4p.client.thread import RemoteError

from softioc.faults import FAULT_KINDS, SETPOINT, Fault, PutEffect, PutFault, ReadbackEffect

MACHINE = {"ioc": {"seed": 2, "update_rate": 100.0, "time_scale": 10.0},
           "setpoint": [{"name": "K:SET", "readback": "K:RBV", "initial": 1.0}]}


@pytest.fixture
def kinds():
    """Two fault kinds defined by this test, unregistered again afterwards."""

    @dataclass(frozen=True)
    class ReadbackStep(Fault):
        """The readback sits `step` units off target while armed."""

        kind: ClassVar[str] = "test_readback_step"
        targets: ClassVar[frozenset[str]] = frozenset({SETPOINT})
        step: float = 1.0

        def readback_effect(self) -> ReadbackEffect:
            return ReadbackEffect(bias=self.step)

    @dataclass(frozen=True)
    class RefuseAbove(PutFault):
        """Puts above `threshold` fail; others go through."""

        kind: ClassVar[str] = "test_refuse_above"
        threshold: float = 0.0

        def put_effect(self, value: Any) -> PutEffect | None:
            return PutEffect(reject=f"{value} is above {self.threshold}") if value > self.threshold else None

    yield ReadbackStep, RefuseAbove
    for cls in (ReadbackStep, RefuseAbove):
        FAULT_KINDS.pop(cls.kind, None)


@pytest.fixture
def ioc(softioc_factory):
    return softioc_factory(MACHINE)


def test_a_readback_fault_defined_in_a_test_acts_over_the_wire(kinds, ioc, client_for, monitor):
    ctx = client_for(ioc)
    readback = monitor(ctx, "K:RBV")
    readback.wait_value(lambda v: float(v) == pytest.approx(1.0))
    ctx.put("SOFTIOC:FAULT:ARM", "K:SET test_readback_step step=5", timeout=3.0)
    assert [a.fault.kind for a in ioc.faults.active()] == ["test_readback_step"]
    readback.wait_value(lambda v: float(v) == pytest.approx(6.0))
    cleared = readback.mark()
    ctx.put("SOFTIOC:FAULT:CLEAR", "K:SET", timeout=3.0)
    readback.wait_value(lambda v: float(v) == pytest.approx(1.0), after=cleared)


def test_a_put_fault_defined_in_a_test_acts_over_the_wire(kinds, ioc, client_for):
    ctx = client_for(ioc)
    ctx.put("SOFTIOC:FAULT:ARM", "K:SET test_refuse_above threshold=2 count=null", timeout=3.0)
    with pytest.raises(RemoteError, match="3.0 is above 2"):
        ctx.put("K:SET", 3.0, timeout=3.0)
    ctx.put("K:SET", 1.5, timeout=3.0)
    assert [(p.value, p.outcome, p.fault) for p in ioc.audit.puts()] == [
        (3.0, "rejected", "test_refuse_above"), (1.5, "accepted", None),
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("K:RBV test_readback_step", "'K:RBV' is not a setpoint, so does not take fault 'test_readback_step'"),
    ("* test_readback_step", "'*' (the whole server) does not take fault 'test_readback_step'"),
    ("K:SET test_readback_step step=NaN", "fault 'test_readback_step': step must be a finite number, got nan"),
    ("K:SET test_readback_step step=abc", "fault 'test_readback_step' parameter 'step' has the wrong type"),
    ("K:SET test_refuse_above count=0", "fault 'test_refuse_above': count must be >= 1 or None, got 0"),
])
def test_a_fault_kind_defined_in_a_test_gets_the_same_checks(kinds, ioc, client_for, text, message):
    ctx = client_for(ioc)
    with pytest.raises(RemoteError) as info:
        ctx.put("SOFTIOC:FAULT:ARM", text, timeout=3.0)
    assert message in str(info.value)
    assert ioc.faults.active() == []


def test_a_second_class_cannot_take_a_registered_kind(kinds):
    with pytest.raises(ValueError, match="fault kind 'outage' is already defined by Outage"):
        @dataclass(frozen=True)
        class Impostor(Fault):
            kind: ClassVar[str] = "outage"
    assert FAULT_KINDS["outage"].__name__ == "Outage"
