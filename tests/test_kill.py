"""Kill tests: SIGKILL the interface's process or the soft IOC's, then read what survived on disk.

1. A child process doing a validated parallel set with a journal, one put held by the soft
   IOC, is killed once the held put reached the server: the journal lists every put the
   IOC's audit file received, and every PV's value before.
2. A soft IOC in a child process, killed in the middle of a loop of sets, leaves an audit file
   that matches the interface's journal put for put (but for the puts in flight at the kill).
3. `pva-journal restore --write` after a killed run brings every PV back to its before value.

Also: an interface and its forked child (Badger's GUI and its worker) append to one journal
named by EPICS_PVA_INTERFACE_JOURNAL.

Run as a script, this file is the child of 1 and 3:
``python test_kill.py JOURNAL '<client conf json>'``, or the fork driver:
``python test_kill.py --fork '<client conf json>'``, or the full-disk driver:
``python test_kill.py --full JOURNAL '<client conf json>'`` (started with subprocess: a fresh
interpreter, never a fork of pytest, which holds a p4p server).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from epics_pva import Interface, wait_for_readback

ROOT = Path(__file__).resolve().parents[1]
PVS = [f"K:{n}:SET" for n in range(3)]
HELD = "K:1:SET"
INITIAL = {pv: float(n) + 0.5 for n, pv in enumerate(PVS)}
TARGET = {pv: -2.0 - n for n, pv in enumerate(PVS)}
CONFIG = {
    "ioc": {"seed": 4, "update_rate": 50.0, "time_scale": 1.0},
    "setpoint": [
        {"name": pv, "readback": pv.replace(":SET", ":RBV"), "limits": [-10, 10], "lag": "none",
         "noise": 0.0, "initial": INITIAL[pv]}
        for pv in PVS
    ],
}
WAIT = 30.0  # s: the longest any step here may take before the test fails


def validations() -> dict[str, Any]:
    return {pv: partial(wait_for_readback, readback_pv=pv.replace(":SET", ":RBV"), tolerance=1e-6,
                        offset=0.0, count_down=20.0) for pv in PVS}


# ---- the child (runs as a script) ------------------------------------------------------------

def child_main(journal: str, conf: dict[str, str]) -> None:
    """A validated parallel set with a journal; one put never completes, so it waits to be killed."""
    interface = Interface(conf=conf, journal=journal, parallel=True, timeout=WAIT, put_attempts=1)
    interface.set_values(TARGET, validations())


def fork_main(conf: dict[str, str]) -> None:
    """Set in this process, then in a forked child, through one Interface built from the environment."""
    import multiprocessing

    from epics_pva.badger.settings import settings_from_environment

    interface = Interface(conf=conf, timeout=5.0, **settings_from_environment())
    interface.set_values({PVS[0]: 1.25})
    child = multiprocessing.get_context("fork").Process(
        target=interface.set_values, args=({PVS[1]: 2.25},))
    child.start()
    child.join(WAIT)
    if child.is_alive():
        child.kill()
        raise SystemExit("the forked child hung")
    interface.set_values({PVS[2]: 3.25})
    sys.exit(child.exitcode)


def full_main(journal: str, conf: dict[str, str]) -> None:
    """A set in order whose journal fills up (RLIMIT_FSIZE) after the first PV: print the outcomes."""
    import resource

    from epics_pva import SetValuesError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG

    def fill_the_disk(**kwargs):
        size = os.stat(journal).st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        return size

    interface = Interface(conf=conf, journal=journal, parallel=False, timeout=5.0)
    try:
        results = interface.set_values({PVS[0]: 1.0, PVS[1]: 2.0}, {PVS[0]: fill_the_disk})
    except SetValuesError as exc:
        results = exc.results
    print(json.dumps({pv: [str(r.status), str(r.error or ""), r.attempts] for pv, r in results.items()}))


# ---- helpers ------------------------------------------------------------------------------------

def wait_until(predicate, what: str, timeout: float = WAIT, interval: float = 0.01) -> None:
    """Poll an on-disk condition (a file another process appends to) until it holds or time runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def audit_lines(path: Path) -> list[dict[str, Any]]:
    from softioc import read_audit_file

    return read_audit_file(path) if path.exists() else []


def held_put_received(audit: Path) -> bool:
    return any(line["type"] == "put" and line["pv"] == HELD and line["outcome"] == "timed_out"
               for line in audit_lines(audit))


def run_killed_child(ioc, journal: Path, audit: Path) -> None:
    """Start the child, SIGKILL it once the held put reached the IOC, and reap it."""
    from softioc import PutTimeout

    ioc.faults.arm(HELD, PutTimeout(count=1))  # held for ever: no complete_after
    child = subprocess.Popen([sys.executable, __file__, str(journal), json.dumps(ioc.client_conf())],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: held_put_received(audit) or child.poll() is not None,
                   "the held put reached the soft IOC")
        assert child.poll() is None, child.communicate(timeout=WAIT)
        # the other PVs' puts were sent in the same batch; wait until the IOC has them too
        wait_until(lambda: len([x for x in audit_lines(audit) if x["type"] == "put"]) == len(PVS),
                   "every put reached the soft IOC")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=WAIT)
    assert child.returncode == -signal.SIGKILL


# ---- 1: the interface's process killed ----------------------------------------------------------

def test_a_killed_set_leaves_every_received_put_and_every_before_in_the_journal(softioc_factory, tmp_path):
    from epics_pva.journal import group_calls, read_journal

    journal, audit = tmp_path / "journal.jsonl", tmp_path / "audit.jsonl"
    ioc = softioc_factory(CONFIG, audit=audit)
    run_killed_child(ioc, journal, audit)
    (call,) = group_calls(read_journal(journal))
    assert {pv: rec.before for pv, rec in call.pvs.items()} == INITIAL
    received = [(x["pv"], x["value"]) for x in audit_lines(audit) if x["type"] == "put"]
    assert sorted(received) == sorted(TARGET.items())
    for pv, value in received:
        rec = call.pvs[pv]
        assert rec.was_put and rec.requested == value and rec.attempts[0][0] == 1
    # the held put has a put line and no outcome: the kill came while it was in flight
    assert call.pvs[HELD].attempts == [(1, None, None)]


# ---- 3: restore after a killed run ----------------------------------------------------------------

@pytest.mark.parametrize("processes", [1, 2])  # a machine: K:1 on shard 1, the others on shard 0
def test_restore_after_a_killed_run_puts_every_pv_back_to_its_before_value(softioc_factory, tmp_path, processes):
    journal, audit = tmp_path / "journal.jsonl", tmp_path / "audit.jsonl"
    ioc = softioc_factory(CONFIG, audit=audit, processes=processes)
    run_killed_child(ioc, journal, audit)
    with Interface(conf=ioc.client_conf(), timeout=5.0) as itf:
        moved = itf.get_values(PVS)
    assert moved != INITIAL  # the accepted puts moved the machine
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_PVA")}
    env.update(ioc.client_conf())
    command = [sys.executable, "-m", "epics_pva.tools.journal_cli", "restore", str(journal)]
    dry = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    with Interface(conf=ioc.client_conf(), timeout=5.0) as itf:
        assert itf.get_values(PVS) == moved  # without --write nothing is sent
        done = subprocess.run([*command, "--write"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=WAIT)
        assert done.returncode == 0, done.stdout + done.stderr
        assert itf.get_values(PVS) == INITIAL
    restored = [(r.pv, r.value) for r in ioc.audit.puts(outcome="accepted")][-len(PVS):]
    assert sorted(restored) == sorted(INITIAL.items())


# ---- 2: the soft IOC's process killed ----------------------------------------------------------------

def test_a_killed_soft_ioc_leaves_an_audit_file_matching_the_journal(tmp_path):
    from devtools.ioc_process import IOCProcess
    from devtools.soak.crosscheck import cross_check, journal_puts

    journal, audit = tmp_path / "journal.jsonl", tmp_path / "audit.jsonl"
    config = {**CONFIG, "ioc": {**CONFIG["ioc"], "update_rate": 100.0}}
    with IOCProcess(config, audit=audit, start_timeout=WAIT, reply_timeout=WAIT) as ioc:
        stop, calls, errors = threading.Event(), [0], []

        def loop() -> None:
            with Interface(conf=ioc.client_conf, journal=str(journal), timeout=1.0, put_attempts=1) as itf:
                step = 0
                while not stop.is_set():
                    step += 1
                    try:
                        itf.set_values({pv: round(step * 0.001 + n, 3) for n, pv in enumerate(PVS)})
                    except Exception as exc:  # noqa: BLE001 - after the kill every set fails
                        errors.append(exc)
                    calls[0] += 1

        driver = threading.Thread(target=loop, name="kill-test-loop")
        driver.start()
        try:
            wait_until(lambda: sum(x["outcome"] == "accepted" for x in audit_lines(audit)) >= 30,
                       "30 accepted puts in the audit file")
            os.kill(ioc.pid, signal.SIGKILL)
            ioc._proc.wait(WAIT)
            after = calls[0]
            wait_until(lambda: calls[0] >= after + 2, "two calls after the kill")
        finally:
            stop.set()
            driver.join(WAIT)
        assert not driver.is_alive()
    assert errors, "the sets after the kill must fail"
    check = cross_check(journal, audit, in_flight=1)
    assert check.ok, check.mismatches
    assert check.accepted >= 30
    # the journal's accepted puts and the audit file's differ by at most the ones in flight
    accepted_journal = sum(o == "accepted" for puts in journal_puts(journal).values() for _, o in puts)
    accepted_audit = sum(x["outcome"] == "accepted" for x in audit_lines(audit) if x["type"] == "put")
    assert 0 <= accepted_audit - accepted_journal <= len(PVS)


# ---- a journal that fills up in the middle of a call ---------------------------------------------------

def test_a_put_whose_journal_line_cannot_be_written_is_not_sent(softioc_factory, tmp_path):
    from epics_pva.journal import group_calls, read_journal

    journal = tmp_path / "journal.jsonl"
    ioc = softioc_factory(CONFIG)
    done = subprocess.run([sys.executable, __file__, "--full", str(journal), json.dumps(ioc.client_conf())],
                          cwd=ROOT, capture_output=True, text=True, timeout=WAIT * 2)
    assert done.returncode == 0, done.stdout + done.stderr
    outcomes = json.loads(done.stdout.splitlines()[-1])
    assert outcomes[PVS[0]][0] == "set"
    status, error, attempts = outcomes[PVS[1]]
    assert status == "failed" and attempts == 0
    assert f"{PVS[1]} = 2" in error and "put not sent" in error and "cannot write" in error
    assert [(r.pv, r.value) for r in ioc.audit.puts()] == [(PVS[0], 1.0)]  # the second never sent
    (call,) = group_calls(read_journal(journal))
    assert call.pvs[PVS[0]].attempts == [(1, "accepted", None)]
    assert not call.pvs[PVS[1]].was_put
    assert "not journaled" in done.stderr  # the first PV's validation line did not fit either


# ---- one journal, two processes ------------------------------------------------------------------------

def test_a_process_and_its_forked_child_append_to_the_journal_the_environment_names(softioc_factory, tmp_path):
    from epics_pva.journal import group_calls, read_journal

    journal, audit = tmp_path / "journal.jsonl", tmp_path / "audit.jsonl"
    ioc = softioc_factory(CONFIG, audit=audit)
    env = {**os.environ, "EPICS_PVA_INTERFACE_JOURNAL": str(journal)}
    done = subprocess.run([sys.executable, __file__, "--fork", json.dumps(ioc.client_conf())], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=WAIT * 2)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = group_calls(read_journal(journal))
    assert [list(c.pvs) for c in calls] == [[PVS[0]], [PVS[1]], [PVS[2]]]
    assert calls[0].pid == calls[2].pid != calls[1].pid  # the middle call is the forked child's
    for call, value in zip(calls, (1.25, 2.25, 3.25), strict=True):
        (rec,) = call.pvs.values()
        assert rec.requested == value and rec.attempts == [(1, "accepted", None)] and rec.has_before
    assert [(r.pv, r.value) for r in ioc.audit.puts()] == [(PVS[0], 1.25), (PVS[1], 2.25), (PVS[2], 3.25)]


if __name__ == "__main__":
    if sys.argv[1] == "--fork":
        fork_main(json.loads(sys.argv[2]))
    if sys.argv[1] == "--full":
        full_main(sys.argv[2], json.loads(sys.argv[3]))
        sys.exit(0)
    child_main(sys.argv[1], json.loads(sys.argv[2]))
    sys.exit(0)
