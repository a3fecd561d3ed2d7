"""The soak: its matching of reported outcomes against the audit (pure), a short soak in the
default run, and the command's output and exit status. The long run is `tox -e soak`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.soak import SoakSettings, expected_puts, match_cycle, run_soak
from devtools.soak.__main__ import SHOWN, main, summary
from devtools.soak.machine import SoakIOC, machine_config
from devtools.soak.runner import _Soak
from epics_pva import Interface, PutError, PutTimeoutError, SetResult, ValidationError
from softioc import PutRecord

ROOT = Path(__file__).resolve().parents[1]
PV = "X:SET"


def put(outcome: str, fault: str | None = None, pv: str = PV) -> PutRecord:
    return PutRecord(pv, 1.0, 0.0, 0.0, outcome, fault=fault)


def result(status: str, attempts: int = 1, error=None, pv: str = PV) -> SetResult:
    return SetResult(pv, 1.0, status, attempts, error=error)


TIMEOUT = PutTimeoutError(PV, 1.0, 2, 0.1)
REJECTED = PutError(PV, 1.0, "put rejected by the server: put rejected by fault injection")
INVALID = ValidationError(PV, 1.0, ValueError("readback off"))


# ---- the ledger (no network) ----------------------------------------------------------------

@pytest.mark.parametrize("outcome, expected", [
    (result("set", 1), ["accepted"]),
    (result("set", 2), ["timed_out", "accepted"]),
    (result("failed", 2, TIMEOUT), ["timed_out", "timed_out"]),
    (result("failed", 1, REJECTED), ["rejected"]),
    (result("failed", 2, REJECTED), ["timed_out", "rejected"]),
    (result("failed", 1, INVALID), ["accepted"]),  # validation fails after an accepted put
    (result("failed", 1, PutError(PV, 1.0, "put failed: Disconnected")), ["unknown"]),
    (result("not_attempted", 0), []),
    (result("read_only", 0), []),
])
def test_each_reported_outcome_implies_the_exact_puts(outcome, expected):
    assert expected_puts(outcome) == expected


def test_a_cycle_whose_audit_matches_surfaces_every_injected_fault():
    records = [put("timed_out", "put_timeout"), put("accepted"),
               put("rejected", "put_reject", pv="Y:SET")]
    match = match_cycle({PV: result("set", 2), "Y:SET": result("failed", 1, REJECTED, pv="Y:SET")}, records)
    assert match.ok and match.mismatches() == []
    assert (match.total("surfaced"), match.total("lost"), match.total("invented")) == (2, 0, 0)


def test_a_false_timeout_is_an_invented_failure():
    # the interface gave up on a put the IOC accepted late: two accepted puts, one reported timeout
    match = match_cycle({PV: result("set", 2)}, [put("accepted"), put("accepted")])
    assert not match.ok
    assert (match.total("invented"), match.total("false_timeouts"), match.total("lost")) == (1, 1, 0)
    assert match.mismatches() == [{"pv": PV, "expected": ["timed_out", "accepted"],
                                   "observed": ["accepted", "accepted"]}]


def test_a_timed_out_put_the_audit_never_saw_is_explained_only_by_an_outage_of_its_pv():
    # the outage was armed, the client had not yet heard of the disconnect: the put never arrived
    timed_out = {PV: result("failed", 2, TIMEOUT)}
    assert not match_cycle(timed_out, []).ok  # no outage: a false timeout
    assert match_cycle(timed_out, []).total("false_timeouts") == 2
    assert not match_cycle(timed_out, [], offline={"Y:SET"}).ok  # another PV's outage explains nothing
    match = match_cycle(timed_out, [], offline={PV})
    assert match.ok and (match.total("invented"), match.total("false_timeouts")) == (0, 0)
    # under an outage, a put the audit did see must still match exactly
    assert not match_cycle(timed_out, [put("accepted")], offline={PV}).ok
    assert not match_cycle({PV: result("set", 2)}, [put("accepted"), put("accepted")], offline={PV}).ok


def test_a_fault_the_interface_did_not_report_is_lost():
    match = match_cycle({PV: result("set", 1)}, [put("timed_out", "put_timeout"), put("accepted")])
    assert not match.ok and match.total("lost") == 1 and match.total("invented") == 0


def test_a_refusal_by_the_ioc_itself_is_not_an_injected_rejection():
    match = match_cycle({PV: result("failed", 1, REJECTED)}, [put("rejected")])  # no fault behind it
    assert not match.ok and match.total("invented") == 1
    assert match.mismatches()[0]["observed"] == ["refused_by_ioc"]


def test_a_put_in_a_refused_cycle_or_to_a_pv_not_set_is_a_stray():
    assert match_cycle(None, [put("accepted")]).strays == [PV]
    assert not match_cycle({PV: result("set")}, [put("accepted"), put("accepted", pv="Z:SET")]).ok


def test_settings_are_checked():
    with pytest.raises(ValueError, match="cycles, a duration, or both"):
        SoakSettings(cycles=None, duration=None)
    with pytest.raises(ValueError, match="p_timeout must be within"):
        SoakSettings(p_timeout=1.5)
    with pytest.raises(ValueError, match="must be at least twice the timeout"):
        SoakSettings(timeout=0.4, outage_duration=0.5)


# ---- a short soak in the default run ----------------------------------------------------------

def test_a_short_soak_surfaces_every_fault_and_leaks_nothing():
    # a generous timeout: this runs beside other tests, and a false timeout would fail the soak
    settings = SoakSettings(cycles=150, seed=5, warmup=20, timeout=0.4, p_timeout=0.03, p_reject=0.03,
                            outage_every=50, outage_duration=1.0)
    report = run_soak(settings)
    failed = {name: c["detail"] for name, c in report["checks"].items() if not c["ok"]}
    assert failed == {}, (failed, report["mismatches"], report["unexplained"], report["unexpected_errors"])
    assert report["passed"] and report["cycles"] >= 150
    injected, faults = report["faults"]["injected"], report["faults"]
    assert injected["put_timeout"] > 0 and injected["put_reject"] > 0
    assert (injected["pv_outage"], injected["server_outage"]) == (1, 1)  # cycles 70 and 120
    assert [o["armed_cycle"] for o in report["outages"]] == [70, 120]
    assert faults["surfaced"] == faults["puts_faulted"] == injected["put_timeout"] + injected["put_reject"]
    audit = report["audit"]
    assert audit["timed_out"] == injected["put_timeout"] and audit["rejected"] == injected["put_reject"]
    assert report["outcomes"]["errors"].get("PutError", 0) == injected["put_reject"]  # never retried
    assert report["resources"]["after_close"]["subscriptions"] == 0


def test_a_call_refused_outside_any_outage_is_an_unexplained_failure():
    # an outage the soak did not arm: the call is refused before any put (every PV not
    # attempted), and nothing the soak knows of explains that
    # (timeouts loose and the outage long: this runs beside other tests on a loaded machine)
    soak = _Soak(SoakSettings(cycles=2, pvs=2, seed=3, warmup=0, timeout=2.0, p_timeout=0, p_reject=0,
                              p_outage=0, outage_duration=4.0))
    with SoakIOC(machine_config(2, 3, 100.0)) as ioc, Interface(conf=ioc.client_conf, timeout=2.0) as itf:
        assert 0 <= soak.connect(itf) < 30
        soak.cycle(itf, ioc)
        assert (soak.calls["ok"], soak.unexplained_count) == (1, 0), soak.unexplained
        ioc.arm("SOAK:1:SET", "outage", duration=60.0)
        # the refusal needs the client to have heard of the disconnect: else the put is sent
        # and times out, a different outcome (the one match_cycle forgives within an outage)
        deadline = time.monotonic() + 20.0
        while "SOAK:1:SET" in itf.latest_values(["SOAK:1:SET"]):
            assert time.monotonic() < deadline, "the client never heard of the outage"
            time.sleep(0.02)
        soak.cycle(itf, ioc)
    assert soak.calls["failed"] == 1 and soak.pv_outcomes["not_attempted"] == 2
    # the refused PV needs explaining; the other was only held back for it
    sets = {u["pv"]: u["why"] for u in soak.unexplained if u["why"].startswith("not attempted")}
    assert list(sets) == ["SOAK:1:SET"] and "cannot read the PV" in sets["SOAK:1:SET"], soak.unexplained


# ---- the command -----------------------------------------------------------------------------

# loose network timeouts: these run beside other tests, where a 0.1 s put can time out falsely
CALM = ["--timeout", "0.5", "--outage-duration", "1", "--p-timeout", "0.02"]


def soak_command(*args: str, timeout: float = 50) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devtools.soak", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_the_command_writes_its_report_and_exits_0(tmp_path):
    out = tmp_path / "soak.json"
    done = soak_command("--cycles", "40", "--warmup", "10", *CALM, "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["passed"] and report["cycles"] == 40
    assert set(report) >= {"settings", "duration_s", "outcomes", "faults", "resources", "checks",
                           "recovery_s", "audit"}
    assert done.stdout.splitlines()[-1] == "PASSED"
    assert any(line.startswith("ok   no_fault_lost:") for line in done.stdout.splitlines())


def test_the_command_stops_after_its_duration(tmp_path):
    out = tmp_path / "soak.json"
    done = soak_command("--duration", "1.5", "--warmup", "5", "--p-outage", "0", *CALM, "--json", str(out), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["settings"]["cycles"] is None and report["cycles"] > 5  # no cycle limit: time stopped it


def test_a_failed_check_exits_1_and_says_which(tmp_path):
    out = tmp_path / "soak.json"
    done = soak_command("--cycles", "20", "--warmup", "5", *CALM, "--max-rss-growth-mb", "-1000",
                        "--json", str(out))
    assert done.returncode == 1
    report = json.loads(out.read_text())
    assert report["passed"] is False and report["checks"]["rss_bounded"]["ok"] is False
    assert "FAIL rss_bounded: RSS" in done.stdout and done.stdout.splitlines()[-1] == "FAILED"
    # each unexplained failure is printed, up to SHOWN, then where the rest are
    report["unexplained"] = [{"cycle": n, "pv": "SOAK:0:SET", "why": f"why {n}"} for n in range(SHOWN + 1)]
    report["unexplained_failures"] = SHOWN + 1
    lines = summary(report)
    assert [line for line in lines if line.startswith("  unexplained")] == [
        f"  unexplained, cycle {n}: SOAK:0:SET: why {n}" for n in range(SHOWN)]
    assert lines[-2].startswith("  (the JSON report lists up to")


@pytest.mark.parametrize("args", [["--cycles", "0"], ["--p-reject", "2"], ["--cycles", "x"]])
def test_bad_arguments_exit_2(args, capsys):
    # the command's own main(), in this process: refused before any soak starts, so no
    # interpreter start-up is needed to see it (the tests above run `python -m devtools.soak`)
    level = logging.getLogger("epics_pva").level
    try:
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's own refusal
            code = exc.code
    finally:
        logging.getLogger("epics_pva").setLevel(level)  # main() quietens it for a terminal
    assert code == 2 and capsys.readouterr().err
