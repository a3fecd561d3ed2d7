"""epics_pva.preflight against a live soft IOC: what is missing is found, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from epics_pva import Interface
from epics_pva.journal import read_journal
from epics_pva.tools import preflight
from epics_pva.tools.preflight import FAIL, OK, WARN, environment_pvs, main, run_preflight

REPO = Path(__file__).resolve().parent.parent
DEMO_ENV = REPO / "examples" / "badger" / "environments" / "demo"

CONFIG = {
    "ioc": {"seed": 3, "update_rate": 50.0, "time_scale": 1.0},
    "setpoint": [
        {"name": "P:Q1:SET", "readback": "P:Q1:RBV", "initial": -1.0, "limits": [-2.0, 2.0],
         "lag": "first_order", "tau": 0.5, "noise": 0.005},
        {"name": "P:Q2:SET", "readback": "P:Q2:RBV", "initial": 0.5, "limits": [-2.0, 2.0], "noise": 0.0},
        {"name": "P:N:SET", "type": "int", "initial": 3, "limits": [0, 100]},
        {"name": "P:MODE", "type": "enum", "choices": ["Off", "On"], "initial": "On"},
        {"name": "P:NAME", "type": "string", "initial": "quad"},
        {"name": "P:WAVE", "type": "double_array", "length": 3, "initial": [1.0, 2.0, 3.0]},
    ],
    "observable": [
        {"name": "P:OBJ", "expression": "(q1 - 1.5)**2", "inputs": {"q1": "P:Q1:RBV"}, "noise": 0.001},
    ],
}
GOOD = {"P:Q1:SET": [-2.0, 2.0], "P:Q2:SET": [-1.0, 1.0]}


@pytest.fixture
def ioc(softioc_factory):
    return softioc_factory(CONFIG)


def by_pv(report):
    return {c.pv: c for c in report.checks}


def test_a_complete_system_passes_and_nothing_is_written(ioc):
    report = run_preflight({"P:Q1:SET": [-2.0, 2.0]}, ["P:Q1:RBV"], ["P:OBJ"],
                           conf=ioc.client_conf(), timeout=2.0, update_time=2.0)
    assert report.ok(strict=True), report.table()
    checks = by_pv(report)
    assert checks["P:Q1:SET"].type == "double" and checks["P:Q1:SET"].limits == (-2.0, 2.0)
    assert checks["P:Q1:RBV"].updates >= 1 and checks["P:OBJ"].updates >= 1
    assert ioc.audit.puts() == []
    assert "nothing was written" in report.table()


def test_a_missing_pv_fails_and_is_named(ioc):
    report = run_preflight(GOOD, ["P:Q1:RBV", "P:MISSING:RBV"], [], ["P:OTHER"],
                           conf=ioc.client_conf(), timeout=0.5, update_time=1.0)
    checks = by_pv(report)
    assert not report.ok()
    assert [c.pv for c in report.failures] == ["P:MISSING:RBV", "P:OTHER"]
    assert checks["P:MISSING:RBV"].findings == ["does not connect (no answer in 0.5 s)"]
    table = report.table()
    assert "P:MISSING:RBV" in table and "does not connect" in table and "2 failure(s)" in table


def test_bounds_beyond_the_control_limits_fail(ioc):
    report = run_preflight({"P:Q1:SET": [-3.0, 2.0]}, conf=ioc.client_conf(), update_time=0)
    check = report.checks[0]
    assert check.status == FAIL
    assert check.findings == ["bounds [-3, 2] exceed the PV's control limits [-2, 2]"]


def test_a_current_value_outside_the_bounds_warns(ioc):
    report = run_preflight({"P:Q1:SET": [0.0, 2.0]}, conf=ioc.client_conf(), update_time=0)
    check = report.checks[0]
    assert check.status == WARN and "current value -1 is outside the bounds [0, 2]" in check.findings[0]
    assert report.ok() and not report.ok(strict=True)


def test_setpoint_types_badger_cannot_write_fail(ioc):
    report = run_preflight(["P:MODE", "P:NAME", "P:WAVE", "P:N:SET"], conf=ioc.client_conf(), update_time=0)
    checks = by_pv(report)
    assert checks["P:MODE"].status == FAIL and checks["P:MODE"].type == "enum" and checks["P:MODE"].value == "On"
    assert checks["P:NAME"].status == FAIL and "string PV cannot take" in checks["P:NAME"].findings[0]
    assert checks["P:WAVE"].status == FAIL and checks["P:WAVE"].type == "array of double"
    assert checks["P:N:SET"].status == WARN and "integer PV" in checks["P:N:SET"].findings[0]


def test_a_readback_that_does_not_update_fails(ioc):
    # P:Q2:RBV has no noise and has settled: the IOC posts nothing new.
    report = run_preflight([], ["P:Q2:RBV"], ["P:OBJ"], conf=ioc.client_conf(), update_time=0.5)
    checks = by_pv(report)
    assert checks["P:Q2:RBV"].status == FAIL and checks["P:Q2:RBV"].findings == ["no update in 0.5 s"]
    assert checks["P:OBJ"].status == OK


def test_write_test_puts_each_current_value_back(ioc):
    report = run_preflight(GOOD, conf=ioc.client_conf(), update_time=0, write_test=True)
    assert report.ok(), report.table()
    puts = ioc.audit.puts()
    assert sorted((p.pv, p.value, p.outcome) for p in puts) == [
        ("P:Q1:SET", -1.0, "accepted"), ("P:Q2:SET", 0.5, "accepted")]
    assert "put of its current value accepted" in by_pv(report)["P:Q1:SET"].findings


def test_write_test_reports_a_rejected_put(ioc):
    from softioc import PutReject

    ioc.faults.arm("P:Q1:SET", PutReject(message="interlock"))
    report = run_preflight({"P:Q1:SET": None}, conf=ioc.client_conf(), update_time=0, write_test=True)
    check = report.checks[0]
    assert check.status == FAIL and "put of its current value -1 failed" in check.findings[0]
    assert "interlock" in check.findings[0]


def writing_through(monkeypatch, **settings):
    """Preflight's write test then writes through an Interface with these settings besides
    the tool's own (conf, prefix, timeout), as an operator's switches would make it."""
    def interface(conf, prefix, timeout):
        return Interface(conf=conf, prefix=prefix, timeout=timeout, put_attempts=1, **settings)
    monkeypatch.setattr(preflight, "open_interface", interface)


def test_write_test_writes_through_interface_set_values(ioc, monkeypatch, tmp_path):
    writing_through(monkeypatch, journal=str(tmp_path / "j.jsonl"))
    report = run_preflight(GOOD, conf=ioc.client_conf(), update_time=0, write_test=True)
    assert report.ok(), report.table()
    puts = {(e.pv, e.value) for e in read_journal(tmp_path / "j.jsonl") if e.event == "put"}
    assert puts == {("P:Q1:SET", -1.0), ("P:Q2:SET", 0.5)}  # each put in the interface's journal
    assert sorted((p.pv, p.value) for p in ioc.audit.puts()) == [("P:Q1:SET", -1.0), ("P:Q2:SET", 0.5)]


def test_write_test_through_a_read_only_interface_writes_nothing_and_warns(ioc, monkeypatch, capsys):
    writing_through(monkeypatch, read_only=True)
    report = run_preflight(GOOD, conf=ioc.client_conf(), update_time=0, write_test=True)
    for check in report.checks:
        assert (check.status, check.findings) == (WARN, ["not written: read-only"]), check
    assert report.ok() and not report.ok(strict=True)
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    assert main(["--setpoint", "P:Q1:SET", "--write-test", "--update-time", "0"]) == 0
    assert main(["--setpoint", "P:Q1:SET", "--write-test", "--update-time", "0", "--strict"]) == 1
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("P:Q1:SET"))
    assert row.split()[2] == WARN and row.endswith("not written: read-only")
    assert ioc.audit.puts() == []


def test_write_test_refused_by_rehearsal_says_why_for_each_pv_and_writes_nothing(ioc, monkeypatch):
    writing_through(monkeypatch, rehearsal=True, rehearsal_id="0" * 32)
    report = run_preflight(GOOD, conf=ioc.client_conf(), update_time=0, write_test=True)
    checks = by_pv(report)
    assert [c.status for c in report.checks] == [FAIL, FAIL]
    assert checks["P:Q2:SET"].findings == [
        f"put of its current value 0.5 not sent: rehearsal refused it: P:Q2:SET is served by a server "
        f"that is not the rehearsal's soft IOC (softiocId {ioc.identity} != expected {'0' * 32})"]
    assert ioc.audit.puts() == []
    writing_through(monkeypatch, rehearsal=True, rehearsal_id=ioc.identity)  # its own soft IOC
    assert run_preflight(GOOD, conf=ioc.client_conf(), update_time=0, write_test=True).ok()
    assert len(ioc.audit.puts(outcome="accepted")) == 2


def test_cli_exit_codes_and_table(ioc, monkeypatch, capsys):
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    ok = main(["--setpoint", "P:Q1:SET", "--readback", "P:Q1:RBV", "--observable", "P:OBJ",
               "--update-time", "1", "--timeout", "1"])
    out = capsys.readouterr().out
    assert ok == 0, out
    assert out.splitlines()[0].split() == ["PV", "ROLE", "STATUS", "TYPE", "VALUE", "LIMITS", "UPDATES", "FINDINGS"]
    assert main(["P:Q1:SET", "P:NOT:THERE", "--timeout", "0.5", "--update-time", "0"]) == 1
    out = capsys.readouterr().out
    assert "P:NOT:THERE" in out and "FAIL" in out
    assert main(["--setpoint", "P:N:SET", "--update-time", "0"]) == 0  # a warning passes...
    assert main(["--setpoint", "P:N:SET", "--update-time", "0", "--strict"]) == 1  # ...unless strict
    assert main([]) == 2
    assert ioc.audit.puts() == []


def test_the_example_environment_is_checked(softioc_factory, monkeypatch, capsys):
    pytest.importorskip("badger")
    from epics_pva.badger.dryrun import config_from_environment, load_environment

    ioc = softioc_factory(config_from_environment(load_environment(DEMO_ENV)))
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    assert main(["--env", str(DEMO_ENV), "--update-time", "2"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    for pv in ("DEMO:Q1:SET", "DEMO:Q2:SET", "DEMO:Q1:RBV", "DEMO:OBJ"):
        assert pv in out
    assert ioc.audit.puts() == []


def test_environment_pvs_reads_variables_configs_and_observables():
    from functools import partial

    def check(**kwargs):
        pass

    env = type("Env", (), {
        "variables": {"A:SET": [0, 1], "B:SET": [0, 2]},
        "observables": ["OBJ", "`OBJ` + 1"],
        "_configs": {"A:SET": partial(partial(check, readback_pv="A:RBV"), tolerance=1)},
    })
    assert environment_pvs(env) == ({"A:SET": [0, 1], "B:SET": [0, 2]}, ["A:RBV"], ["OBJ"])


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="no PVs"):
        run_preflight()
