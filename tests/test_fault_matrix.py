"""The fault matrix: every fault the soft IOC injects x parallel on/off x validation on/off,
and the same again in read-only mode, each cell asserting the exact outcome.

Every cell sets three PVs, the fault sitting on the middle one (F), so sequential mode shows
all three outcomes: A is set before F fails, C after it is not attempted. Each cell asserts
what was raised, which PVs the error names, the puts the soft IOC received (its audit) and
every PV's reported outcome, and that every faulted put in the audit is one the interface
reported (none lost, none invented).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import pytest

import epics_pva
from epics_pva import (
    Interface,
    InvalidInputError,
    NotConnectedError,
    PutError,
    PutTimeoutError,
    SetValuesError,
    ValidationError,
    wait_for_readback,
)
from softioc import (
    Alarm,
    ForcedValue,
    Outage,
    PutReject,
    PutTimeout,
    ReadbackBias,
    SlowReadback,
    SoftIOC,
    StuckReadback,
)

A, F, C = "FM:A:SET", "FM:F:SET", "FM:C:SET"  # F carries the fault
PVS = (A, F, C)
RBV = {pv: pv.replace(":SET", ":RBV") for pv in PVS}
INPUTS = {A: 1.0, F: 2.0, C: 3.0}  # none equals the initial 0.0, so a frozen readback shows

CONFIG = {
    "ioc": {"seed": 17, "update_rate": 50.0, "time_scale": 10.0},
    "setpoint": [
        {"name": pv, "readback": RBV[pv], "limits": [-10, 10], "lag": "none", "noise": 0.0}
        for pv in PVS
    ],
}

TIMEOUT = 2.0  # s per network operation; a timed-out put costs this much, a healthy one must fit in it loaded
RETRY_DELAY = 0.05
SETTLE = 5.0  # count_down of a PV expected to settle: returns as soon as it does
GIVE_UP = 0.5  # count_down of a PV whose readback is expected never to settle
SLOW_FOR = 0.5  # s the slow readback posts nothing (it then resumes, well within SETTLE)
REJECTION = "interlock: beam permit missing"
TRIPPED = "power supply off"
# the interface's alarm contract (an INVALID readback never settles, an INVALID PV is a read
# failure) comes with epics_pva.Reading; until then its cells cannot hold
ALARM_CONTRACT = pytest.mark.skipif(not hasattr(epics_pva, "Reading"),
                                    reason="epics_pva has no alarm contract (Reading) yet")
DOWN_FOR = 30.0  # outage and restart last longer than any cell; teardown ends them


@dataclass(frozen=True)
class Fault:
    """One fault of the matrix and what it does to F (the other PVs are healthy)."""

    arm: Callable[[SoftIOC], object]
    # F's outcome: (status, error class, attempts, audit outcomes) with validation on / off
    with_validation: tuple
    without_validation: tuple
    count_down: float = SETTLE  # F's validation time limit
    refused: frozenset[str] = field(default_factory=frozenset)  # PVs unreadable: nothing is sent
    needs_alarm_contract: bool = False


def _set(puts=("accepted",)):
    return ("set", None, len(puts), list(puts))


def _failed(error, puts):
    return ("failed", error, len(puts), list(puts))


FAULTS = {
    "put_timeout_once": Fault(
        arm=lambda ioc: ioc.faults.arm(F, PutTimeout(count=1)),
        with_validation=_set(["timed_out", "accepted"]),
        without_validation=_set(["timed_out", "accepted"]),
    ),
    "put_timeout_always": Fault(
        arm=lambda ioc: ioc.faults.arm(F, PutTimeout(count=None)),
        with_validation=_failed(PutTimeoutError, ["timed_out", "timed_out"]),
        without_validation=_failed(PutTimeoutError, ["timed_out", "timed_out"]),
    ),
    "put_rejected": Fault(
        arm=lambda ioc: ioc.faults.arm(F, PutReject(count=None, message=REJECTION)),
        with_validation=_failed(PutError, ["rejected"]),
        without_validation=_failed(PutError, ["rejected"]),
    ),
    "stuck_readback": Fault(
        arm=lambda ioc: ioc.faults.arm(F, StuckReadback()),
        with_validation=_failed(ValidationError, ["accepted"]),
        without_validation=_set(),  # only validation can see it
        count_down=GIVE_UP,
    ),
    "biased_readback": Fault(
        arm=lambda ioc: ioc.faults.arm(F, ReadbackBias(bias=0.5)),
        with_validation=_failed(ValidationError, ["accepted"]),
        without_validation=_set(),
        count_down=GIVE_UP,
    ),
    "slow_readback": Fault(  # late but within count_down: validation waits for it
        arm=lambda ioc: ioc.faults.arm(F, SlowReadback(rate=0.0, duration=SLOW_FOR)),
        with_validation=_set(),
        without_validation=_set(),
    ),
    "invalid_readback": Fault(  # a tripped supply: the readback reads its value in INVALID alarm
        arm=lambda ioc: ioc.faults.arm(RBV[F], Alarm(severity="INVALID", message=TRIPPED)),
        with_validation=_failed(ValidationError, ["accepted"]),
        without_validation=_set(),
        count_down=GIVE_UP,
        needs_alarm_contract=True,
    ),
    "forced_readback": Fault(  # the readback holds a value of its own, in no alarm: only validation sees it
        arm=lambda ioc: ioc.faults.arm(RBV[F], ForcedValue(value=-1.0)),
        with_validation=_failed(ValidationError, ["accepted"]),
        without_validation=_set(),
        count_down=GIVE_UP,
    ),
    "pv_outage": Fault(
        arm=lambda ioc: ioc.faults.arm(F, Outage(duration=DOWN_FOR)),
        with_validation=(), without_validation=(),
        refused=frozenset({F}),
    ),
    "server_restart": Fault(
        arm=lambda ioc: ioc.restart(downtime=DOWN_FOR, wait=False),
        with_validation=(), without_validation=(),
        refused=frozenset(PVS),
    ),
}

CELLS = [
    pytest.param(name, parallel, validate, id=f"{name}-{'parallel' if parallel else 'in_order'}"
                 f"-{'validated' if validate else 'unvalidated'}")
    for name, parallel, validate in itertools.product(FAULTS, (True, False), (True, False))
]


@pytest.fixture
def softioc_config():
    return CONFIG


def configs_for(fault: Fault) -> dict:
    return {
        pv: partial(wait_for_readback, readback_pv=RBV[pv], tolerance=0.01, offset=0.0,
                    count_down=fault.count_down if pv == F else SETTLE)
        for pv in PVS
    }


def connected(ioc: SoftIOC, **kwargs) -> Interface:
    """An Interface that has read every PV once, so the fault meets live channels."""
    itf = Interface(conf=ioc.client_conf(), timeout=TIMEOUT, retry_delay=RETRY_DELAY, **kwargs)
    itf.get_values([*PVS, *RBV.values()])
    return itf


def named_in(message: str) -> set[str]:
    return {pv for pv in PVS if pv in message}


def faulted_puts(ioc: SoftIOC) -> int:
    return sum(1 for r in ioc.audit.puts() if r.fault is not None)


@pytest.mark.parametrize("name, parallel, validate", CELLS)
def test_fault_cell(soft_ioc, name, parallel, validate):
    fault = FAULTS[name]
    if fault.needs_alarm_contract and validate and not hasattr(epics_pva, "Reading"):
        pytest.skip("epics_pva has no alarm contract (Reading) yet")
    itf = connected(soft_ioc, parallel=parallel)
    fault.arm(soft_ioc)
    configs = configs_for(fault) if validate else None
    outcome: BaseException | None = None
    try:
        results = itf.set_values(INPUTS, configs=configs)
    except Exception as exc:  # noqa: BLE001 - the cell asserts exactly what was raised
        outcome, results = exc, getattr(exc, "results", None)
    finally:
        itf.close()
    audit = {pv: [r.outcome for r in soft_ioc.audit.puts(pv)] for pv in PVS}

    if fault.refused:  # a PV cannot be read: the whole call is refused before any put
        assert type(outcome) is NotConnectedError
        assert set(outcome.problems) == set(fault.refused)
        assert all("cannot read the PV" in why for why in outcome.problems.values())
        assert named_in(str(outcome)) == set(fault.refused)
        assert audit == {pv: [] for pv in PVS}
        # every PV's outcome: not attempted, each saying why
        assert {pv: (r.status, r.attempts) for pv, r in results.items()} == dict.fromkeys(
            PVS, ("not_attempted", 0))
        assert all(results[pv].reason == outcome.problems[pv] for pv in fault.refused)
        assert all("refused" in r.reason for pv, r in results.items() if pv not in fault.refused)
        return

    status, error, attempts, f_puts = fault.with_validation if validate else fault.without_validation
    c_skipped = status == "failed" and not parallel  # sequential mode stops at F
    expected_status = {A: "set", F: status, C: "not_attempted" if c_skipped else "set"}
    expected_puts = {A: ["accepted"], F: f_puts, C: [] if c_skipped else ["accepted"]}
    expected_attempts = {A: 1, F: attempts, C: 0 if c_skipped else 1}

    assert audit == expected_puts
    assert list(results) == list(PVS)  # every PV's outcome, in the order given
    assert {pv: r.status for pv, r in results.items()} == expected_status
    assert {pv: r.attempts for pv, r in results.items()} == expected_attempts
    assert (type(results[F].error) is error) if error else results[F].error is None
    assert results[A].error is None and results[C].error is None
    # none lost, none invented: each faulted put the IOC saw is an attempt F reported as failed
    assert faulted_puts(soft_ioc) == len(soft_ioc.audit.faults(F)) == f_puts.count("timed_out") + f_puts.count("rejected")

    if status == "set":
        assert outcome is None
        if validate:
            assert all(r.validation_result == pytest.approx(INPUTS[pv], abs=0.01)
                       for pv, r in results.items())
        else:
            assert all(r.validation_result is None for r in results.values())
        if name == "slow_readback" and validate:  # F's validation ended only once the readback resumed
            assert [e.event for e in soft_ioc.audit.faults(F, event=None)] == ["armed", "expired"]
        return

    assert type(outcome) is SetValuesError
    assert set(outcome.failed) == {F}
    assert named_in(str(outcome)) == ({F, C} if c_skipped else {F})
    f_error = results[F].error
    assert (f_error.pv, f_error.value) == (F, INPUTS[F])
    assert f"{F} = 2.0: " in str(outcome)
    if error is PutTimeoutError:
        assert "put timed out on all 2 attempt(s)" in str(outcome)
    elif error is PutError:
        assert f"put rejected by the server: {REJECTION}" in str(outcome)
    elif name == "invalid_readback":  # the value is right, its alarm says it is not a measurement
        assert f"readback {RBV[F]}" in str(outcome) and "INVALID" in str(outcome) and TRIPPED in str(outcome)
    else:
        assert f"readback {RBV[F]} = " in str(outcome) and "did not reach the expected value 2 " in str(outcome)
    if c_skipped:
        assert f"{C} = 3.0: not attempted" in str(outcome)


@pytest.mark.parametrize("name, parallel, validate", CELLS)
def test_read_only_cell(soft_ioc, name, parallel, validate):
    """Read-only mode under every fault: nothing sent, no validation run, refusals as usual."""
    fault = FAULTS[name]
    ran: list[str] = []

    def would_write(set_pv, set_value, context, timeout):
        ran.append(set_pv)
        context.put(set_pv, -1.0, timeout=timeout)

    itf = connected(soft_ioc, parallel=parallel, read_only=True)
    fault.arm(soft_ioc)
    configs = dict.fromkeys(PVS, would_write) if validate else None
    try:
        if fault.refused:
            with pytest.raises(InvalidInputError) as info:
                itf.set_values(INPUTS, configs=configs)
            assert set(info.value.problems) == set(fault.refused)
        else:
            results = itf.set_values(INPUTS, configs=configs)
            assert {pv: (r.status, r.attempts, r.error) for pv, r in results.items()} == {
                pv: ("read_only", 0, None) for pv in PVS}
    finally:
        itf.close()
    assert ran == []
    assert soft_ioc.audit.puts() == []
    assert [e for e in soft_ioc.audit.faults() if e.kind in ("put_timeout", "put_reject")] == []


def test_the_matrix_covers_every_fault_the_soft_ioc_injects(softioc_factory):
    from softioc.faults import FAULT_KINDS

    kinds = set()
    for fault in FAULTS.values():
        ioc = softioc_factory(CONFIG)
        fault.arm(ioc)
        kinds |= {e.kind for e in ioc.audit.faults(event="armed")}
        ioc.stop()
    assert kinds == set(FAULT_KINDS)  # the restart is the tenth, with no fault kind of its own
    assert len(CELLS) == 10 * 2 * 2


@ALARM_CONTRACT
def test_an_invalid_readback_is_a_read_failure(soft_ioc):
    """get_values refuses a value its server marks INVALID, naming the PV and the alarm."""
    from epics_pva import ReadError

    itf = connected(soft_ioc)
    try:
        soft_ioc.faults.arm(RBV[F], Alarm(severity="INVALID", message=TRIPPED))
        with pytest.raises(ReadError) as info:
            itf.get_values([RBV[A], RBV[F]])
        assert RBV[F] in str(info.value) and "INVALID" in str(info.value) and TRIPPED in str(info.value)
        assert RBV[A] not in str(info.value)
        soft_ioc.faults.clear(RBV[F])  # the computed alarm (none) is back at once
        assert itf.get_values([RBV[F]]) == {RBV[F]: 0.0}
    finally:
        itf.close()

