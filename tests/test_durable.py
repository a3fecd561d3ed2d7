"""Nothing lost: the interface journal hook, validation_timeout, and the soft IOC's audit file.

Every test talks PVAccess to a soft IOC on loopback; the journal and the audit file are read
back from disk, as an operator (or pva-journal) would after the fact.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

from devtools.soak import SoakSettings, run_soak
from devtools.soak.crosscheck import cross_check
from epics_pva import Interface, JournalError, SetValuesError, ValidationError, wait_for_readback
from epics_pva.badger.settings import settings_from_environment
from epics_pva.core import Settings
from epics_pva.journal import group_calls, read_journal
from softioc import (
    AuditFileError,
    ConfigError,
    PutReject,
    PutTimeout,
    SoftIOC,
    load_config,
    read_audit_file,
    serve,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "ioc": {"seed": 3, "update_rate": 50.0, "time_scale": 10.0},
    "setpoint": [
        {"name": f"D:{n}:SET", "readback": f"D:{n}:RBV", "limits": [-10, 10], "lag": "none",
         "noise": 0.0, "initial": float(n)}
        for n in range(3)
    ],
}
PVS = [f"D:{n}:SET" for n in range(3)]
TIMEOUT = 0.5


@pytest.fixture
def softioc_config():
    return CONFIG


def interface(ioc: SoftIOC, **kwargs) -> Interface:
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("retry_delay", 0.0)
    return Interface(conf=ioc.client_conf(), **kwargs)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def readback(pv: str):
    return partial(wait_for_readback, readback_pv=pv.replace(":SET", ":RBV"), tolerance=1e-6, offset=0.0,
                   count_down=5.0)


# ---- the journal hook -----------------------------------------------------------------------

@pytest.mark.parametrize("parallel", [True, False])
def test_a_validated_set_journals_before_each_put_its_outcome_and_validation(soft_ioc, tmp_path, parallel):
    path = tmp_path / "journal.jsonl"
    with interface(soft_ioc, journal=str(path), parallel=parallel) as itf:
        results = itf.set_values({pv: 5.0 + n for n, pv in enumerate(PVS)},
                                 {pv: readback(pv) for pv in PVS})
    assert all(r.status == "set" for r in results.values())
    entries = read_journal(path)
    assert len({e.call for e in entries}) == 1 and {e.pid for e in entries} == {entries[0].pid}
    (call,) = group_calls(entries)
    for n, pv in enumerate(PVS):
        rec = call.pvs[pv]
        assert rec.before == float(n)  # the value the pre-check read, before any put
        assert rec.requested == 5.0 + n and rec.attempts == [(1, "accepted", None)]
        assert rec.validation is not None and rec.validation.error is None
    events = [(e.event, e.pv) for e in entries]
    # every before line precedes every put line; each PV's put precedes its outcome and validation
    assert max(i for i, (ev, _) in enumerate(events) if ev == "before") < min(
        i for i, (ev, _) in enumerate(events) if ev == "put")
    for pv in PVS:
        order = [ev for ev, p in events if p == pv]
        assert order == ["before", "put", "outcome", "validation"]
    # a put line is on disk before the server receives that put
    put_time = {e.pv: e.time for e in entries if e.event == "put"}
    for pv in PVS:
        (record,) = soft_ioc.audit.puts(pv)
        assert put_time[pv] <= record.wall_time


def test_each_attempt_is_journaled_with_its_outcome_and_reason(soft_ioc, tmp_path):
    path = tmp_path / "journal.jsonl"
    soft_ioc.faults.arm("D:0:SET", PutTimeout(count=1))
    soft_ioc.faults.arm("D:1:SET", PutReject(count=1, message="interlock open"))
    with interface(soft_ioc, journal=str(path), put_attempts=2, timeout=0.3) as itf:
        with pytest.raises(SetValuesError) as caught:
            itf.set_values({"D:0:SET": 1.5, "D:1:SET": 2.5, "D:2:SET": 3.5})
    assert caught.value.results["D:1:SET"].status == "failed"
    (call,) = group_calls(read_journal(path))
    first = call.pvs["D:0:SET"].attempts
    assert [(a, o) for a, o, _ in first] == [(1, "timed_out"), (2, "accepted")]
    assert "no reply within 0.3 s" in first[0][2]
    ((attempt, outcome, reason),) = call.pvs["D:1:SET"].attempts
    assert (attempt, outcome) == (1, "rejected") and "interlock open" in reason
    assert call.pvs["D:2:SET"].attempts == [(1, "accepted", None)]
    # the journal's accepted puts are the audit's, put for put
    assert [r.outcome for r in soft_ioc.audit.puts("D:0:SET")] == ["timed_out", "accepted"]


def test_a_journal_that_cannot_be_written_fails_the_set_before_any_put(soft_ioc, tmp_path):
    blocked = tmp_path / "no-such-folder" / "journal.jsonl"
    with interface(soft_ioc, journal=str(blocked)) as itf:
        with pytest.raises(JournalError) as caught:
            itf.set_values({"D:0:SET": 1.0, "D:1:SET": 2.0})
    error = caught.value
    assert str(blocked) in str(error) and "nothing was sent" in str(error)
    assert {pv: r.status for pv, r in error.results.items()} == {
        "D:0:SET": "not_attempted", "D:1:SET": "not_attempted"}
    assert soft_ioc.audit.puts() == []
    # a directory is no journal either
    with interface(soft_ioc, journal=str(tmp_path)) as itf:
        with pytest.raises(JournalError, match="Is a directory"):
            itf.set_value("D:0:SET", 1.0)
    assert soft_ioc.audit.puts() == []


def test_read_only_mode_journals_what_it_would_set_and_sends_nothing(soft_ioc, tmp_path):
    path = tmp_path / "journal.jsonl"
    with interface(soft_ioc, journal=str(path), read_only=True) as itf:
        results = itf.set_values({"D:0:SET": 4.0, "D:1:SET": 5.0})
    assert {r.status for r in results.values()} == {"read_only"}
    assert [(e["event"], e.get("pv"), e.get("value")) for e in lines(path)] == [
        ("read_only", "D:0:SET", 4.0), ("read_only", "D:1:SET", 5.0), ("end", None, None)]
    assert soft_ioc.audit.puts() == []


def test_the_journal_setting_is_checked_and_read_from_the_environment(tmp_path):
    with pytest.raises(ValueError, match="journal must be a file path"):
        Settings(journal="")
    with pytest.raises(ValueError, match="validation_timeout must be > 0"):
        Settings(validation_timeout=0)
    assert Settings(journal=tmp_path / "j.jsonl").journal == str(tmp_path / "j.jsonl")
    env = {"EPICS_PVA_INTERFACE_JOURNAL": str(tmp_path / "j.jsonl"),
           "EPICS_PVA_INTERFACE_JOURNAL_FSYNC": "yes",
           "EPICS_PVA_INTERFACE_VALIDATION_TIMEOUT": "2.5"}
    assert settings_from_environment(env) == {
        "journal": str(tmp_path / "j.jsonl"), "journal_fsync": True, "validation_timeout": 2.5}
    with pytest.raises(ValueError, match="EPICS_PVA_INTERFACE_VALIDATION_TIMEOUT='-1'"):
        settings_from_environment({"EPICS_PVA_INTERFACE_VALIDATION_TIMEOUT": "-1"})


# ---- validation_timeout -----------------------------------------------------------------------

def validate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("epics_pva-validate-")]


def test_a_hung_validation_fails_its_pv_and_the_call_returns(soft_ioc, tmp_path):
    release, entered = threading.Event(), threading.Event()

    def hangs(**kwargs):
        entered.set()
        release.wait(30)
        return "late"

    path = tmp_path / "journal.jsonl"
    with interface(soft_ioc, validation_timeout=0.3, journal=str(path)) as itf:
        try:
            with pytest.raises(SetValuesError) as caught:
                itf.set_values({"D:0:SET": 1.0, "D:1:SET": 2.0}, {"D:0:SET": hangs})
            assert entered.is_set()
            result = caught.value.results["D:0:SET"]
            assert result.status == "failed" and isinstance(result.error, ValidationError)
            assert "still running after 0.3 s (validation_timeout)" in str(result.error)
            assert caught.value.results["D:1:SET"].status == "set"
            assert (itf.stray_validations, itf.running_stray_validations) == (1, 1)
            (call,) = group_calls(read_journal(path))
            assert "validation_timeout" in call.pvs["D:0:SET"].validation.error
        finally:
            release.set()
        for thread in validate_threads():
            thread.join(10)
        assert validate_threads() == []
        assert (itf.stray_validations, itf.running_stray_validations) == (1, 0)
        # the slot is free again: the next validation runs
        assert itf.set_value("D:0:SET", 3.0, lambda **kw: "ok").validation_result == "ok"


def test_strays_are_bounded_so_validation_threads_stay_bounded(soft_ioc):
    """A stray gives its slot back (tests/test_set_run.py), but at most max_workers strays run:
    past that, a validation that needs a thread is refused at once."""
    release = threading.Event()

    def hangs(**kwargs):
        release.wait(30)

    with interface(soft_ioc, validation_timeout=0.3, max_workers=2) as itf:
        try:
            with pytest.raises(SetValuesError):
                itf.set_values({pv: 1.0 for pv in PVS[:2]}, {pv: hangs for pv in PVS[:2]})
            assert itf.running_stray_validations == 2 and len(validate_threads()) == 2
            # as many strays as max_workers: a third validation cannot start, and says why at once
            with pytest.raises(ValidationError, match="no validation thread free within 0.3 s"):
                itf.set_value("D:2:SET", 1.0, lambda **kw: None)
            assert len(validate_threads()) == 2
        finally:
            release.set()
        for thread in validate_threads():
            thread.join(10)
        assert itf.running_stray_validations == 0 and itf.stray_validations == 2


def test_without_a_limit_a_validation_runs_in_the_calling_thread(soft_ioc):
    seen = []
    with interface(soft_ioc, parallel=False) as itf:
        itf.set_value("D:0:SET", 1.0, lambda **kw: seen.append(threading.current_thread()))
    assert seen == [threading.current_thread()]


# ---- the soft IOC's audit file --------------------------------------------------------------------

@pytest.mark.parametrize("processes", [1, 2])  # a machine: D:0 on shard 0, D:1 on shard 1, one file
def test_the_audit_file_holds_every_put_and_fault_event_as_it_happens(softioc_factory, tmp_path, processes):
    path = tmp_path / "audit.jsonl"
    ioc = softioc_factory(CONFIG, audit=path, processes=processes)
    ioc.faults.arm("D:1:SET", PutReject(count=1, message="no permit"))
    with interface(ioc) as itf:
        itf.set_value("D:0:SET", 2.0)
        with pytest.raises(Exception, match="no permit"):
            itf.set_value("D:1:SET", 20.0 / 3)
        # written as it happened: the file already holds both, with the IOC still running
        puts = [line for line in read_audit_file(path) if line["type"] == "put"]
    assert [(p["pv"], p["value"], p["applied"], p["outcome"], p["fault"]) for p in puts] == [
        ("D:0:SET", 2.0, 2.0, "accepted", None), ("D:1:SET", 20.0 / 3, None, "rejected", "put_reject")]
    assert all(p["time"] > 0 and p["sim_time"] >= 0 and p["peer"] for p in puts)
    faults = [(f["pv"], f["kind"], f["event"]) for f in read_audit_file(path) if f["type"] == "fault"]
    assert ("D:1:SET", "put_reject", "armed") in faults and ("D:1:SET", "put_reject", "fired") in faults
    # the in-memory audit is unchanged
    assert [r.outcome for r in ioc.audit.puts()] == ["accepted", "rejected"]


def test_the_audit_key_of_a_config_file_is_relative_to_it_and_checked(tmp_path):
    config = tmp_path / "ioc.toml"
    config.write_text('[ioc]\naudit = "audit.jsonl"\n[[setpoint]]\nname = "A:SET"\n')
    assert load_config(config).ioc.audit == str(tmp_path / "audit.jsonl")
    config.write_text('[ioc]\naudit = 3\n[[setpoint]]\nname = "A:SET"\n')
    with pytest.raises(ConfigError, match="audit"):
        load_config(config)
    with pytest.raises(AuditFileError, match="no-such-folder"):
        SoftIOC(CONFIG, audit=tmp_path / "no-such-folder" / "audit.jsonl")
    with pytest.raises(AuditFileError, match="no-such-folder"):  # a machine's, before any process starts
        serve(CONFIG, processes=2, audit=tmp_path / "no-such-folder" / "audit.jsonl")


@pytest.mark.parametrize("processes", [1, 2])
def test_the_command_line_option_writes_the_audit_file(tmp_path, processes):
    config = tmp_path / "ioc.toml"
    config.write_text('[[setpoint]]\nname = "A:SET"\n[[setpoint]]\nname = "B:SET"\n')
    audit = tmp_path / "audit.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "softioc", str(config), "--audit", str(audit), "-q",
                             "--processes", str(processes)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        conf = {}
        for line in proc.stdout:
            if line.startswith("# ready"):
                break
            name, _, value = line.strip().partition("=")
            conf[name] = value
        with Interface(conf=conf, timeout=5.0) as itf:
            itf.set_value("A:SET", 1.25)
            itf.set_value("B:SET", 2.5)  # the second shard's, with two processes
        assert [(p["pv"], p["value"], p["outcome"]) for p in read_audit_file(audit)] == [
            ("A:SET", 1.25, "accepted"), ("B:SET", 2.5, "accepted")]
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


# ---- the soak keeps both and cross-checks them -------------------------------------------------------

@pytest.mark.parametrize("processes", [1, 2])  # with two, both shards append to the one audit file
def test_a_short_soak_with_a_journal_and_an_audit_file_finds_them_matching(tmp_path, processes):
    journal, audit = tmp_path / "journal.jsonl", tmp_path / "audit.jsonl"
    settings = SoakSettings(cycles=60, seed=7, warmup=10, timeout=0.4, p_timeout=0.05, p_reject=0.05,
                            p_outage=0.0, outage_duration=1.0, journal=str(journal), audit=str(audit),
                            processes=processes)
    report = run_soak(settings)
    check = report["checks"]["journal_matches_audit"]
    assert check["ok"], check["detail"]
    assert report["passed"], {n: c["detail"] for n, c in report["checks"].items() if not c["ok"]}
    puts = [line for line in read_audit_file(audit) if line["type"] == "put"]
    assert len(puts) == report["ioc"]["end"]["audit_puts"] > 60
    # the check can fail: drop one accepted put from the audit file and it says which PV
    kept = [line for line in audit.read_text().splitlines()]
    dropped = next(i for i, line in enumerate(kept) if '"outcome":"accepted"' in line)
    pv = json.loads(kept[dropped])["pv"]
    audit.write_text("\n".join(kept[:dropped] + kept[dropped + 1:]) + "\n")
    broken = cross_check(journal, audit)
    assert not broken.ok and any(m.startswith(pv) for m in broken.mismatches)


def test_the_soak_command_reports_the_cross_check(tmp_path):
    journal, audit = tmp_path / "journal.jsonl", tmp_path / "audit.jsonl"
    done = subprocess.run([sys.executable, "-m", "devtools.soak", "--cycles", "20", "--warmup", "5",
                           "--timeout", "0.5", "--p-outage", "0", "--outage-duration", "1", "--journal", str(journal),
                           "--audit", str(audit)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(line.startswith("ok   journal_matches_audit:") for line in done.stdout.splitlines())
    assert journal.stat().st_size > 0 and audit.stat().st_size > 0
