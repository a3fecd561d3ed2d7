"""The journal of a guarded write: what each call records of its Interface, puts never sent,
an interrupted call, and a journal whose lock is held elsewhere.

Every set talks PVAccess to a soft IOC on loopback; the journal is read back from disk and
the puts the server received are counted from the soft IOC's audit.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from p4p.client.thread import Context
from p4p.nt import NTScalar
from p4p.server import Server
from p4p.server.thread import SharedPV

from epics_pva import (
    Interface,
    JournalError,
    SetValuesError,
    StrangerServerError,
    wait_for_readback,
)
from epics_pva.core import prove_on_the_wire
from epics_pva.journal import (
    CallJournal,
    Journal,
    LineWriteError,
    ReadbackCheck,
    Wire,
    classify,
    group_calls,
    read_journal,
    readback_checks,
    restore_plan,
)
from epics_pva.transport import PvInfo, put_many
from softioc import PutTimeout

ROOT = Path(__file__).resolve().parents[1]
PVS = [f"G:Q{n}:SET" for n in range(3)]
CONFIG = {
    "ioc": {"seed": 3, "update_rate": 50.0},
    "setpoint": [
        {"name": pv, "readback": pv.replace(":SET", ":RBV"), "limits": [-10, 10], "lag": "none",
         "noise": 0.0, "initial": float(n)}
        for n, pv in enumerate(PVS)
    ],
}
WAIT = 30.0  # s: the longest any step here may take before the test fails
NEVER = 600.0  # s: a validation's time limit no test waits for


@pytest.fixture
def softioc_config():
    return CONFIG


def never_reached(pv: str):
    """A validation whose readback never gets there (1000 off): it waits NEVER seconds."""
    return partial(wait_for_readback, readback_pv=pv.replace(":SET", ":RBV"), tolerance=1e-6,
                   offset=1000.0, count_down=NEVER)


def interrupt(**kwargs: Any) -> None:
    """A validation function standing in for Ctrl-C while it runs."""
    raise KeyboardInterrupt


def wait_until(predicate, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def journal_entries(path: Path) -> list:
    return read_journal(path) if path.exists() else []


# ---- 1: each call records what its names meant on the wire ---------------------------------------

def test_each_call_records_the_prefix_and_rehearsal_of_its_interface(soft_ioc, tmp_path) -> None:
    path = tmp_path / "journal.jsonl"
    conf = soft_ioc.client_conf()
    with Interface(conf=conf, journal=str(path), prefix="G:", timeout=5.0) as itf:
        itf.set_values({"Q0:SET": 1.5})
    with Interface(conf=conf, journal=str(path), rehearsal=True, rehearsal_id=soft_ioc.identity,
                   timeout=5.0) as itf:
        itf.set_values({"G:Q1:SET": 2.5})
    with Interface(conf=conf, journal=str(path), read_only=True, prefix="G:") as itf:
        itf.set_values({"Q2:SET": 3.5})
    calls = group_calls(read_journal(path))
    assert [c.wire for c in calls] == [Wire("G:", False, ""), Wire("", True, soft_ioc.identity),
                                       Wire("G:", False, "")]
    assert [list(c.pvs) for c in calls] == [["Q0:SET"], ["G:Q1:SET"], ["Q2:SET"]]
    assert [(r.pv, r.value) for r in soft_ioc.audit.puts()] == [("G:Q0:SET", 1.5), ("G:Q1:SET", 2.5)]


def test_a_validation_line_records_the_readback_and_its_tolerance(soft_ioc, tmp_path) -> None:
    path = tmp_path / "journal.jsonl"
    check = partial(wait_for_readback, readback_pv="G:Q0:RBV", tolerance=0.01, offset=0.0, count_down=5.0)
    with Interface(conf=soft_ioc.client_conf(), journal=str(path), timeout=5.0) as itf:
        itf.set_values({"G:Q0:SET": 2.0, "G:Q1:SET": 3.0}, {"G:Q0:SET": check})
    (call,) = group_calls(read_journal(path))
    trace = call.pvs["G:Q0:SET"].validation.trace
    assert {k: trace[k] for k in ("readback", "tolerance", "offset", "count_down")} == {
        "readback": "G:Q0:RBV", "tolerance": 0.01, "offset": 0.0, "count_down": 5.0}
    assert readback_checks([call]) == {"G:Q0:SET": ReadbackCheck("G:Q0:RBV", 0.01, 0.0, 5.0)}


# ---- 5: the journal never shows a put that was not sent -------------------------------------------

def test_a_put_the_rehearsal_wire_check_refused_is_journaled_as_refused(tmp_path) -> None:
    """The window after a reconnect: the monitor still says soft IOC, the put's own Get shows a
    stranger. The put line was written first; its outcome says it was refused, not sent."""
    handler_puts = []
    nt = NTScalar("d")

    class Count:
        def put(self, pv, op):
            handler_puts.append(op.value())
            op.done()

    pvs = {pv: SharedPV(nt=nt, initial=0.0, handler=Count()) for pv in PVS[:2]}
    stale = [PvInfo(kind="float", code="d", server_id="0" * 32)] * 2  # what the monitor last said
    path = tmp_path / "journal.jsonl"
    journal = CallJournal(Journal(path), {"prefix": "", "rehearsal": True, "rehearsal_id": "0" * 32})
    journal.before({pv: 0.0 for pv in PVS[:2]}, {})
    with Server(providers=[pvs], isolate=True) as server:
        ctx = Context("pva", conf=server.conf(), useenv=False)
        try:
            for pv in PVS[:2]:
                journal.put(pv, 1.0, 1)
            outcomes = put_many(ctx, PVS[:2], [1.0, 1.0], 2.0, stale, prove_on_the_wire("0" * 32))
            for pv, outcome in zip(PVS[:2], outcomes, strict=True):
                journal.outcome(pv, 1, *classify(outcome, 2.0, False))
        finally:
            ctx.close()
    assert [type(o) for o in outcomes] == [StrangerServerError] * 2 and handler_puts == []
    (call,) = group_calls(read_journal(path))
    for pv in PVS[:2]:
        ((attempt, outcome, reason),) = call.pvs[pv].attempts
        assert outcome == "refused" and "not the rehearsal's soft IOC" in reason
        assert not call.pvs[pv].may_have_reached
    assert restore_plan([call]) == ([], {})


def test_a_put_line_whose_write_failed_after_it_began_gets_a_refused_outcome(tmp_path) -> None:
    path = tmp_path / "journal.jsonl"

    class SyncFails(Journal):
        """A journal whose put line reaches the file, then the write fails (as a failed fsync)."""

        def put(self, call: str, pv: str, value: Any, attempt: int) -> None:
            super().put(call, pv, value, attempt)
            raise LineWriteError(self.path, "cannot write: Input/output error", 5)

    journal = CallJournal(SyncFails(path))
    journal.before({"A": 0.0}, {})
    with pytest.raises(LineWriteError):
        journal.put("A", 1.0, 1)
    (call,) = group_calls(read_journal(path))
    ((attempt, outcome, reason),) = call.pvs["A"].attempts
    assert (attempt, outcome) == (1, "refused")
    assert "not sent: its put line could not be written: cannot write: Input/output error" in reason
    assert restore_plan([call]) == ([], {})


def test_a_value_the_put_builder_refuses_is_classified_as_refused() -> None:
    assert classify(ValueError('Invalid input : "abc" : stod'), 1.0, False) == (
        "refused", 'not sent: the value does not fit the PV: Invalid input : "abc" : stod')
    assert classify(TimeoutError("X"), 1.0, False)[0] == "timed_out"


# ---- 6: an interrupted call says so, and its threads end -----------------------------------------

@pytest.mark.parametrize("parallel", [True, False])
def test_an_exception_escaping_a_set_is_journaled_as_interrupted_and_raised(soft_ioc, tmp_path, parallel) -> None:
    path = tmp_path / "journal.jsonl"
    with Interface(conf=soft_ioc.client_conf(), journal=str(path), parallel=parallel, timeout=5.0) as itf:
        with pytest.raises(KeyboardInterrupt):
            itf.set_values({pv: 4.0 for pv in PVS}, {PVS[0]: interrupt})
    (call,) = group_calls(read_journal(path))
    fields = call.interrupted.fields
    assert fields["reason"] == "KeyboardInterrupt"
    if parallel:  # every first put went out at once
        assert fields["sent"] == PVS and fields["not_sent"] == []
    else:  # in order: the first PV's validation was interrupted, the others never sent
        assert fields["sent"] == PVS[:1] and fields["not_sent"] == PVS[1:]
        assert [r.pv for r in soft_ioc.audit.puts()] == PVS[:1]


def test_an_interrupted_parallel_set_cancels_its_workers_readback_waits(soft_ioc, tmp_path) -> None:
    path = tmp_path / "journal.jsonl"
    itf = Interface(conf=soft_ioc.client_conf(), journal=str(path), parallel=True, timeout=5.0)
    try:
        def interrupt_once_the_others_wait(**kwargs: Any) -> None:
            # Ctrl-C once the other two puts completed (their outcome lines are in the journal),
            # so that their readback waits are running, whatever the load on the machine
            wait_until(lambda: {e.pv for e in journal_entries(path) if e.event == "outcome"} >= set(PVS[1:]),
                       "the other puts completed")
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            itf.set_values({pv: 4.0 for pv in PVS}, {PVS[0]: interrupt_once_the_others_wait,
                                                     PVS[1]: never_reached(PVS[1]),
                                                     PVS[2]: never_reached(PVS[2])})

        def validations() -> dict[str, Any]:
            return {e.pv: e.error for e in journal_entries(path) if e.event == "validation"}

        # the workers' waits (NEVER s each) end once the call is interrupted, and say why
        wait_until(lambda: set(validations()) == set(PVS[1:]), "the workers' validations ended")
        for pv in PVS[1:]:
            assert "the set was interrupted while waiting for readback" in validations()[pv]
    finally:
        itf.close()


def test_an_interrupted_set_cancels_a_worker_waiting_to_retry(soft_ioc, tmp_path, caplog) -> None:
    soft_ioc.faults.arm(PVS[1], PutTimeout(count=1))
    itf = Interface(conf=soft_ioc.client_conf(), journal=str(tmp_path / "j.jsonl"), parallel=True,
                    timeout=0.5, put_attempts=2, retry_delay=NEVER)
    try:
        with caplog.at_level(logging.WARNING, logger="epics_pva.interface"):
            with pytest.raises(KeyboardInterrupt):
                itf.set_values({PVS[0]: 4.0, PVS[1]: 5.0}, {PVS[0]: interrupt})
            wait_until(lambda: "interrupted: attempt 2 not sent" in caplog.text,
                       "the worker gave up its retry")
    finally:
        itf.close()
    assert [r.outcome for r in soft_ioc.audit.puts(PVS[1])] == ["timed_out"]  # no second attempt


# A child process: a validated set outside any with block, to be interrupted by SIGINT while
# its main thread waits for the readbacks (its set's own loop, parallel or in order, waiting on
# its queue of monitor updates). A helper thread prints "waiting" once the main thread is
# blocked there (a KeyboardInterrupt elsewhere, between two bytecodes of a lock's own
# bookkeeping, can leave that lock held, as Python warns it may).
CHILD = r"""
import faulthandler, json, signal, sys, threading, time
faulthandler.register(signal.SIGUSR1, all_threads=True)
from functools import partial
from epics_pva import Interface, wait_for_readback

signal.signal(signal.SIGINT, signal.default_int_handler)  # a test runner's worker may ignore SIGINT
journal, conf, parallel, pvs = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]

def waiting(frame):
    if frame is None or frame.f_back is None:
        return False
    code, caller = frame.f_code, frame.f_back.f_code.co_name
    if code.co_name != "run_next" or caller != "_drive":
        return False
    run = frame.f_back.f_locals.get("self")  # every validation's readback wait has begun
    return run is not None and len(run._waits) == (len(pvs) if parallel else 1)

def report():
    main = threading.main_thread().ident
    while not waiting(sys._current_frames().get(main)):
        time.sleep(0.005)
    print("waiting", flush=True)

threading.Thread(target=report, daemon=True).start()
configs = {pv: partial(wait_for_readback, readback_pv=pv.replace(":SET", ":RBV"), tolerance=1e-6,
                       offset=1000.0, count_down=600.0) for pv in pvs}
interface = Interface(conf=conf, journal=journal, parallel=parallel, timeout=5.0, put_attempts=1)
interface.set_values({pv: -1.0 for pv in pvs}, configs)
"""


# a fresh interpreter imports p4p and numpy before it sets: seconds on a quiet machine, tens of
# seconds on a loaded 2-core one
CHILD_START = 90.0


@pytest.mark.timeout(CHILD_START + 3 * WAIT)
@pytest.mark.parametrize("parallel", [True, False])
def test_sigint_during_a_validated_set_ends_the_process_and_journals_the_interruption(
        soft_ioc, tmp_path, parallel) -> None:
    path = tmp_path / "journal.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_PVA_INTERFACE_")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), json.dumps(soft_ioc.client_conf()),
                              "1" if parallel else "0", *PVS], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waiting = PVS if parallel else PVS[:1]  # whose puts are in and whose validations wait
    try:
        ready, _, _ = select.select([child.stdout], [], [], CHILD_START)
        assert ready and child.stdout.readline().strip() == "waiting", child.communicate(timeout=WAIT)
        child.send_signal(signal.SIGINT)
        # the validations wait 600 s: the child ends well before only if the interrupt stops them
        try:
            _, stderr = child.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGUSR1)  # the child's threads' stacks, to say where it hangs
            time.sleep(1)
            child.kill()
            raise AssertionError(f"still running {WAIT} s after SIGINT:\n{child.communicate()[1]}") from None
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=WAIT)
    seen = f"child stderr:\n{stderr}\njournal:\n{path.read_text() if path.exists() else '(none)'}"
    assert child.returncode in (-signal.SIGINT, 1), seen
    assert "KeyboardInterrupt" in stderr, seen
    (call,) = group_calls(read_journal(path))
    assert call.interrupted is not None, seen
    assert call.interrupted.fields["sent"] == waiting, seen
    assert call.interrupted.fields["not_sent"] == [pv for pv in PVS if pv not in waiting], seen
    assert all(call.pvs[pv].attempts == [(1, "accepted", None)] for pv in waiting), seen
    if parallel:  # the workers' waits were cancelled and said so before the process ended
        for pv in PVS:
            validation = call.pvs[pv].validation
            assert validation is not None and "interrupted" in validation.error, seen


# ---- 7: the journal's lock waits at most the Interface's timeout ----------------------------------

LOCK_HOLDER = r"""
import fcntl, sys
with open(sys.argv[1], "ab") as fh:
    fcntl.flock(fh, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.mark.parametrize("parallel", [True, False])
def test_a_journal_locked_by_another_process_fails_the_set_before_any_put(soft_ioc, tmp_path, parallel) -> None:
    path = tmp_path / "journal.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    outcome: list[BaseException | None] = []
    itf = Interface(conf=soft_ioc.client_conf(), journal=str(path), parallel=parallel, timeout=0.5)
    try:
        ready, _, _ = select.select([holder.stdout], [], [], WAIT)
        assert ready and holder.stdout.readline().strip() == "locked", "the lock holder did not start"

        def set_them() -> None:
            try:
                itf.set_values({pv: 6.0 for pv in PVS})
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                outcome.append(exc)

        setter = threading.Thread(target=set_them)
        setter.start()
        setter.join(timeout=WAIT)  # bounded: a set blocked on the lock for ever fails here
        assert not setter.is_alive(), "the set waited for the journal's lock without a limit"
    finally:
        holder.stdin.close()
        holder.wait(timeout=WAIT)
        holder.stdout.close()
    itf.close()
    (error,) = outcome
    assert isinstance(error, JournalError), repr(error)
    assert str(path) in str(error) and "cannot lock" in str(error) and "nothing was sent" in str(error)
    assert {pv: r.status for pv, r in error.results.items()} == dict.fromkeys(PVS, "not_attempted")
    assert soft_ioc.audit.puts() == []  # the server got no put
    assert path.read_bytes() == b""


def test_a_set_after_the_lock_is_released_goes_through(soft_ioc, tmp_path) -> None:
    """The bounded wait changes nothing for writers that take turns: they all get the lock."""
    path = tmp_path / "journal.jsonl"
    errors: list[BaseException] = []

    def setter(n: int) -> None:
        with Interface(conf=soft_ioc.client_conf(), journal=str(path), timeout=5.0) as itf:
            for step in range(5):
                try:
                    itf.set_values({PVS[n]: float(step)})
                except SetValuesError as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=setter, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT)
    assert not errors and not any(t.is_alive() for t in threads)
    assert len(group_calls(read_journal(path))) == 15


def test_a_pv_whose_retry_was_refused_still_counts_as_sent(tmp_path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = CallJournal(Journal(path))
    journal.before({"A": 0.0, "B": 0.0}, {})
    journal.put("A", 1.0, 1)
    journal.outcome("A", 1, "timed_out", "no reply within 1 s")  # sent: may have been applied
    journal.put("A", 1.0, 2)
    journal.outcome("A", 2, "refused", "not sent: a stranger answers")
    journal.put("B", 2.0, 1)
    journal.outcome("B", 1, "refused", "not sent: a stranger answers")
    journal.interrupted(KeyboardInterrupt())
    (call,) = group_calls(read_journal(path))
    assert call.interrupted.fields == {"sent": ["A"], "not_sent": ["B"], "reason": "KeyboardInterrupt"}
    assert [s.pv for s in restore_plan([call])[0]] == ["A"]
