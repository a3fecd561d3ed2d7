"""pva-journal show / restore against a soft IOC, on journals written as the interface writes them."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import epics_pva.core
from epics_pva import Interface, SetValuesError, wait_for_readback
from epics_pva.journal import Journal, Wire, group_calls, read_journal
from epics_pva.tools.journal_cli import main, parse_time
from softioc import PutReject, PutTimeout, StuckReadback

CONFIG = {
    "ioc": {"seed": 5, "update_rate": 20.0},
    "setpoint": [
        {"name": "R:Q1:SET", "readback": "R:Q1:RBV", "initial": 0.5, "limits": [-10, 10]},
        {"name": "R:Q2:SET", "initial": -0.25, "limits": [-10, 10]},
        {"name": "R:MODE", "type": "enum", "choices": ["Off", "On"], "initial": "Off"},
        {"name": "R:WAVE", "type": "double_array", "length": 3, "initial": [0.0, 1.0, 2.0]},
    ],
}
START = {"R:Q1:SET": 0.5, "R:Q2:SET": -0.25, "R:MODE": "Off", "R:WAVE": [0.0, 1.0, 2.0]}


def journaled_set(interface: Interface, journal: Journal, inputs: dict[str, Any]) -> str:
    """Set `inputs` and journal it line by line as the interface does: before, put, outcome."""
    call = journal.new_call()
    journal.before(call, interface.get_values(list(inputs)))
    for pv, value in inputs.items():
        journal.put(call, pv, value, 1)
    try:
        results = interface.set_values(inputs)
    except SetValuesError as error:
        results = error.results
    for pv, result in results.items():
        journal.outcome(call, pv, 1, "accepted" if result.ok else "rejected",
                        None if result.error is None else str(result.error))
    return call


def read_back(interface: Interface) -> dict[str, Any]:
    values = interface.get_values(list(START))
    return {pv: v.tolist() if hasattr(v, "tolist") else v for pv, v in values.items()}


@pytest.fixture
def ioc(softioc_factory, monkeypatch):
    """A soft IOC whose address is in the environment, as pva-journal reads it."""
    ioc = softioc_factory(CONFIG)
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    return ioc


@pytest.fixture
def history(ioc, tmp_path: Path):
    """Three calls: Q1 and MODE, then Q2 and WAVE, then Q1 again; returns (path, call ids)."""
    path = tmp_path / "journal.jsonl"
    with Interface(conf=ioc.client_conf(), timeout=5.0) as interface, Journal(path) as journal:
        calls = [
            journaled_set(interface, journal, {"R:Q1:SET": 1.0, "R:MODE": "On"}),
            journaled_set(interface, journal, {"R:Q2:SET": 2.0, "R:WAVE": [5.0, 6.0, 7.0]}),
            journaled_set(interface, journal, {"R:Q1:SET": 3.0}),
        ]
        assert read_back(interface) == {"R:Q1:SET": 3.0, "R:Q2:SET": 2.0, "R:MODE": "On",
                                        "R:WAVE": [5.0, 6.0, 7.0]}
    return path, calls


def call_starts(path: Path) -> dict[str, float]:
    return {c.call: c.time for c in group_calls(read_journal(path))}


def test_show_prints_one_block_per_call(history, capsys) -> None:
    path, calls = history
    journal = Journal(path)
    ro = journal.new_call()
    journal.read_only(ro, {"R:Q2:SET": 9.0})
    journal.close()
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    blocks = out.strip().split("\n\n")
    assert len(blocks) == 4
    for block, call in zip(blocks, calls + [ro], strict=True):
        assert f"call {call}" in block.splitlines()[0] and "pid " in block
    assert "R:Q1:SET: 0.5 -> 1.0; attempts: #1 accepted" in blocks[0]
    assert "R:MODE: 'Off' -> 'On'; attempts: #1 accepted" in blocks[0]
    assert "R:WAVE: [0.0, 1.0, 2.0] -> [5.0, 6.0, 7.0]" in blocks[1]
    assert "R:Q1:SET: 1.0 -> 3.0" in blocks[2]
    assert "(read-only, 1 PV(s))" in blocks[3] and "R:Q2:SET: read-only, would set 9.0" in blocks[3]


def test_show_prints_retries_reasons_and_validation(tmp_path: Path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        call = journal.new_call()
        journal.before(call, {"A": 1.0}, {"B": "no reply within 1 s"})
        journal.put(call, "A", 2.0, 1)
        journal.outcome(call, "A", 1, "timed_out", "no completion within 1 s")
        journal.put(call, "A", 2.0, 2)
        journal.outcome(call, "A", 2, "accepted")
        journal.validation(call, "A", error=ValueError("readback stuck at 1.0"))
        journal.put(call, "B", math.nan, 1)  # the put was sent, then the process died
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("A: 1.0 -> 2.0; attempts: #1 timed_out (no completion within 1 s), #2 accepted; "
            "validation failed: readback stuck at 1.0") in out
    assert "B: ? (no reply within 1 s) -> nan; attempts: #1 no outcome (interrupted?)" in out


def test_restore_dry_run_prints_the_plan_and_sends_nothing(history, ioc, capsys) -> None:
    path, _ = history
    puts_before = len(ioc.audit.puts())
    assert main(["restore", str(path)]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out
    plan = [line.split(" = ")[0].strip() for line in out.splitlines() if " = " in line]
    assert plan[0] == "R:Q1:SET"  # its last change (call 3) is the newest
    assert set(plan) == set(START)
    assert "R:Q1:SET = 0.5 " in out and "R:MODE = 'Off' " in out and "R:WAVE = [0.0, 1.0, 2.0] " in out
    assert len(ioc.audit.puts()) == puts_before  # nothing reached the server
    with Interface(conf=ioc.client_conf()) as interface:
        assert read_back(interface)["R:Q1:SET"] == 3.0


def test_restore_write_puts_every_pv_back_newest_change_first(history, ioc, capsys) -> None:
    path, _ = history
    mark = len(ioc.audit.puts())
    assert main(["restore", str(path), "--write", "--timeout", "3"]) == 0
    out = capsys.readouterr().out
    for pv in START:
        assert f"{pv} = " in out.split("outcome:")[1] and ": set" in out
    restored = ioc.audit.puts()[mark:]
    order = [r.pv for r in restored]
    assert len(order) == 4 and order[0] == "R:Q1:SET"
    assert order.index("R:Q2:SET") < order.index("R:MODE")  # call 2's PVs before call 1's
    assert order.index("R:WAVE") < order.index("R:MODE")
    assert all(r.accepted for r in restored)
    with Interface(conf=ioc.client_conf()) as interface:
        assert read_back(interface) == START


def test_since_and_until_restore_only_their_window(history, ioc, capsys) -> None:
    path, calls = history
    starts = call_starts(path)
    # from call 2 on: Q1 goes back to where call 3 found it, not to the start
    assert main(["restore", str(path), "--since", repr(starts[calls[1]]), "--write"]) == 0
    capsys.readouterr()
    with Interface(conf=ioc.client_conf()) as interface:
        assert read_back(interface) == {"R:Q1:SET": 1.0, "R:Q2:SET": -0.25, "R:MODE": "On",
                                        "R:WAVE": [0.0, 1.0, 2.0]}
    # up to call 1, given as ISO 8601 local time: only call 1's PVs
    until = datetime.fromtimestamp(starts[calls[0]] + 0.0005).isoformat()
    mark = len(ioc.audit.puts())
    assert main(["restore", str(path), "--until", until, "--write"]) == 0
    assert sorted(r.pv for r in ioc.audit.puts()[mark:]) == ["R:MODE", "R:Q1:SET"]
    with Interface(conf=ioc.client_conf()) as interface:
        assert read_back(interface) == {"R:Q1:SET": 0.5, "R:Q2:SET": -0.25, "R:MODE": "Off",
                                        "R:WAVE": [0.0, 1.0, 2.0]}
    # an empty window sends nothing
    capsys.readouterr()
    mark = len(ioc.audit.puts())
    later = repr(max(starts.values()) + 1)
    assert main(["restore", str(path), "--since", later, "--write"]) == 0
    assert "nothing to restore" in capsys.readouterr().out
    assert len(ioc.audit.puts()) == mark
    assert main(["show", str(path), "--since", repr(starts[calls[2]])]) == 0
    out = capsys.readouterr().out
    assert calls[2] in out and calls[0] not in out and calls[1] not in out


def test_a_pv_without_its_before_value_is_listed_as_not_restorable(ioc, tmp_path: Path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    with Interface(conf=ioc.client_conf()) as interface, Journal(path) as journal:
        call = journal.new_call()
        journal.before(call, interface.get_values(["R:Q2:SET"]), {"R:GONE": "no reply within 1 s"})
        for pv, value in (("R:Q2:SET", 4.0), ("R:GONE", 1.0)):
            journal.put(call, pv, value, 1)
        interface.set_values({"R:Q2:SET": 4.0})
        journal.outcome(call, "R:Q2:SET", 1, "accepted")
    assert main(["restore", str(path)]) == 0  # the dry run only reports it
    out = capsys.readouterr().out
    assert "not restorable (1 PV(s)):" in out and "R:GONE: call " in out and "no reply within 1 s" in out
    assert main(["restore", str(path), "--write"]) == 1  # the rest is restored, but not all
    with Interface(conf=ioc.client_conf()) as interface:
        assert interface.get_value("R:Q2:SET") == -0.25


def test_a_failed_restore_exits_non_zero_and_prints_every_outcome(history, ioc, capsys) -> None:
    path, _ = history
    mark = len(ioc.audit.puts())
    ioc.faults.arm("R:WAVE", PutReject(count=None, message="interlock: WAVE locked"))
    assert main(["restore", str(path), "--write", "--timeout", "2"]) == 1
    out = capsys.readouterr().out.split("outcome:")[1]
    statuses = {line.split(" = ")[0].strip(): line.rsplit(": ", 1)[-1]
                for line in out.strip().splitlines() if " = " in line}
    assert set(statuses) == set(START)
    assert "interlock: WAVE locked" in out and "R:Q1:SET = 0.5: set" in out
    # in order, newest change first (Q1, then call 2's WAVE): the PVs after the failure not sent
    assert statuses["R:Q2:SET"] == statuses["R:MODE"] == "not sent, as an earlier PV failed"
    assert "R:Q2:SET = -0.25: not_attempted" in out
    assert [(r.pv, r.outcome) for r in ioc.audit.puts()[mark:]] == [
        ("R:Q1:SET", "accepted"), ("R:WAVE", "rejected")]


def test_restore_refused_by_the_checks_sends_nothing(history, ioc, capsys) -> None:
    path, _ = history
    journal = Journal(path)
    call = journal.new_call()
    journal.before(call, {"R:MISSING": 1.0})
    journal.put(call, "R:MISSING", 2.0, 1)
    journal.close()
    mark = len(ioc.audit.puts())
    assert main(["restore", str(path), "--write", "--timeout", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "refused, nothing was sent:" in out and "R:MISSING: cannot read the PV" in out
    assert len(ioc.audit.puts()) == mark


def test_time_arguments(capsys, tmp_path: Path) -> None:
    assert parse_time("1764654601.25") == 1764654601.25
    assert parse_time("2026-12-02T05:50:01") == datetime(2026, 12, 2, 5, 50, 1).timestamp()
    utc = datetime(2026, 12, 2, 5, 50, tzinfo=timezone.utc).timestamp()
    assert parse_time("2026-12-02T05:50:00Z") == utc == parse_time("2026-12-02 06:50:00+01:00")
    path = tmp_path / "j.jsonl"
    path.write_text("")
    with pytest.raises(SystemExit) as info:
        main(["show", str(path), "--since", "yesterday"])
    assert info.value.code == 2
    assert "'yesterday' is neither epoch seconds nor an ISO 8601 time" in capsys.readouterr().err
    assert main(["show", str(path), "--since", "20", "--until", "10"]) == 2
    assert "--since" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["restore", str(path), "--timeout", "-1"])
    assert "'-1' is not a number of seconds > 0" in capsys.readouterr().err


def test_an_unreadable_journal_exits_2_naming_file_and_each_bad_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    good = '{"time": 1.0, "pid": 1, "event": "put", "call": "1-1-a", "pv": "A", "value": 2.0, "attempt": 1}'
    path.write_text(good + '\nnot json\n{}\n')
    assert main(["show", str(path)]) == 2
    captured = capsys.readouterr()
    assert "call 1-1-a" in captured.out and "A: ? (not recorded) -> 2.0" in captured.out  # the rest is shown
    assert f"{path}: line 2 skipped: not JSON" in captured.err
    assert f"{path}: line 3 skipped: missing key(s) time, pid, event, call" in captured.err
    assert main(["restore", str(tmp_path / "absent.jsonl")]) == 2
    assert "No such file or directory" in capsys.readouterr().err


# ---- restore is a set like any other --------------------------------------------------------------

def journal_of(ioc, path: Path, *sets: dict[str, Any], configs=None, **settings) -> None:
    """Make `sets` through an Interface journaling to `path` (failures are the journal's business)."""
    settings.setdefault("timeout", 5.0)
    with Interface(conf=ioc.client_conf(), journal=str(path), **settings) as interface:
        for inputs in sets:
            try:
                interface.set_values(inputs, configs)
            except SetValuesError:
                pass


def restore_output(capsys, *argv: str) -> tuple[int, str]:
    code = main(["restore", *argv])
    return code, capsys.readouterr().out


def test_a_restore_journals_its_own_call_and_a_later_restore_undoes_it(history, ioc, capsys) -> None:
    path, calls = history
    end = {"R:Q1:SET": 3.0, "R:Q2:SET": 2.0, "R:MODE": "On", "R:WAVE": [5.0, 6.0, 7.0]}
    code, out = restore_output(capsys, str(path), "--write")
    assert code == 0, out
    everything = group_calls(read_journal(path))
    restore_call = everything[-1]
    assert restore_call.call not in calls and restore_call.wire == Wire("", False, "")
    assert {pv: rec.before for pv, rec in restore_call.pvs.items()} == end  # where the run left them
    assert {pv: rec.requested for pv, rec in restore_call.pvs.items()} == START
    assert all(rec.attempts == [(1, "accepted", None)] for rec in restore_call.pvs.values())
    # undo the restore: the window holds the restore's call only
    code, out = restore_output(capsys, str(path), "--since", repr(restore_call.time), "--write")
    assert code == 0, out
    with Interface(conf=ioc.client_conf()) as interface:
        assert read_back(interface) == end


def test_journal_names_another_file_for_the_restores_own_call(history, ioc, tmp_path, capsys) -> None:
    path, _ = history
    before = path.read_bytes()
    other = tmp_path / "restore.jsonl"
    code, out = restore_output(capsys, str(path), "--write", "--journal", str(other))
    assert code == 0, out
    assert path.read_bytes() == before
    (call,) = group_calls(read_journal(other))
    assert set(call.pvs) == set(START)


def test_restore_puts_back_under_the_prefix_the_journal_recorded(ioc, tmp_path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    journal_of(ioc, path, {"Q1:SET": 1.0, "Q2:SET": 2.0}, prefix="R:")
    mark = len(ioc.audit.puts())
    code, out = restore_output(capsys, str(path), "--write")
    assert code == 0, out
    assert "(prefix 'R:', not in rehearsal)" in out
    assert sorted((r.pv, r.value) for r in ioc.audit.puts()[mark:]) == [("R:Q1:SET", 0.5), ("R:Q2:SET", -0.25)]
    restore_call = group_calls(read_journal(path))[-1]
    assert restore_call.wire == Wire("R:", False, "") and set(restore_call.pvs) == {"Q1:SET", "Q2:SET"}


def test_calls_made_with_different_prefixes_are_refused(ioc, tmp_path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    journal_of(ioc, path, {"Q1:SET": 1.0}, prefix="R:")
    journal_of(ioc, path, {"R:Q2:SET": 2.0})
    mark = len(ioc.audit.puts())
    code, out = restore_output(capsys, str(path), "--write")
    assert code == 1
    assert "refused, nothing was sent: the calls in the window were made with 2 different wire settings" in out
    assert "prefix 'R:', not in rehearsal: 1 call(s)" in out and "no prefix, not in rehearsal: 1 call(s)" in out
    code, out = restore_output(capsys, str(path))  # the dry run says so too
    assert code == 1 and "--write would be refused: the calls in the window" in out
    assert len(ioc.audit.puts()) == mark
    second = group_calls(read_journal(path))[1]
    code, out = restore_output(capsys, str(path), "--since", repr(second.time), "--write")
    assert code == 0, out
    assert [(r.pv, r.value) for r in ioc.audit.puts()[mark:]] == [("R:Q2:SET", -0.25)]


def test_a_rehearsal_journal_is_restored_only_in_rehearsal_against_its_soft_ioc(ioc, tmp_path, capsys,
                                                                                 monkeypatch) -> None:
    monkeypatch.delenv("EPICS_PVA_INTERFACE_REHEARSAL_ID", raising=False)
    path = tmp_path / "j.jsonl"
    journal_of(ioc, path, {"R:Q1:SET": 1.0}, rehearsal=True, rehearsal_id=ioc.identity)
    mark = len(ioc.audit.puts())
    code, out = restore_output(capsys, str(path), "--write")
    assert code == 1
    assert (f"refused, nothing was sent: the journal was written in rehearsal against soft IOC "
            f"{ioc.identity}: it is restored only in rehearsal against that soft IOC") in out
    code, out = restore_output(capsys, str(path), "--write", "--rehearsal-id", "0" * 32)
    assert code == 1
    assert f"but the current rehearsal is against soft IOC {'0' * 32}" in out
    assert len(ioc.audit.puts()) == mark  # nothing was sent
    monkeypatch.setenv("EPICS_PVA_INTERFACE_REHEARSAL_ID", ioc.identity)
    code, out = restore_output(capsys, str(path), "--write")
    assert code == 0, out
    assert f"in rehearsal against soft IOC {ioc.identity}" in out
    assert [(r.pv, r.value) for r in ioc.audit.puts()[mark:]] == [("R:Q1:SET", 0.5)]
    assert group_calls(read_journal(path))[-1].wire == Wire("", True, ioc.identity)


def test_a_rehearsal_id_rehearses_the_restore_of_a_real_journal(ioc, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("EPICS_PVA_INTERFACE_REHEARSAL_ID", raising=False)
    path = tmp_path / "j.jsonl"
    journal_of(ioc, path, {"R:Q1:SET": 1.0})
    mark = len(ioc.audit.puts())
    code, out = restore_output(capsys, str(path), "--write", "--rehearsal-id", "f" * 32)
    assert code == 1
    assert "refused by rehearsal, nothing was sent:" in out
    assert f"R:Q1:SET is served by a server that is not the rehearsal's soft IOC (softiocId {ioc.identity}" in out
    assert len(ioc.audit.puts()) == mark
    code, out = restore_output(capsys, str(path), "--write", "--rehearsal-id", ioc.identity)
    assert code == 0, out
    assert [(r.pv, r.value) for r in ioc.audit.puts()[mark:]] == [("R:Q1:SET", 0.5)]


class ForcedReadOnly(Interface):
    """An Interface as the operator's read-only switch makes it, whatever it was asked for."""

    def __init__(self, settings=None, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "read_only": True})


def test_read_only_results_are_reported_as_not_sent_and_fail_the_restore(history, ioc, capsys,
                                                                          monkeypatch) -> None:
    path, _ = history
    monkeypatch.setattr(epics_pva.core, "Interface", ForcedReadOnly)
    mark = len(ioc.audit.puts())
    code, out = restore_output(capsys, str(path), "--write")
    assert code == 1
    outcome = out.split("outcome:")[1]
    for pv, value in START.items():
        assert f"{pv} = {value!r}: read-only: not sent" in outcome
    assert len(ioc.audit.puts()) == mark
    assert group_calls(read_journal(path))[-1].read_only  # journaled as what it would have set


def test_an_input_the_pv_refuses_stops_the_restore_before_any_put(ioc, tmp_path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        call = journal.new_call()
        journal.before(call, {"R:Q1:SET": 0.5, "R:Q2:SET": "abc"})
        for pv in ("R:Q1:SET", "R:Q2:SET"):
            journal.put(call, pv, 1.0, 1)
            journal.outcome(call, pv, 1, "accepted")
    mark = len(ioc.audit.puts())
    code, out = restore_output(capsys, str(path), "--write")
    assert code == 1
    assert "refused, nothing was sent:" in out and "R:Q2:SET: " in out.split("refused, nothing was sent:")[1]
    assert len(ioc.audit.puts()) == mark


def test_restore_plans_only_puts_that_may_have_reached_the_machine(ioc, tmp_path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    ioc.faults.arm("R:Q1:SET", PutTimeout(count=1))  # never completed, value not applied
    ioc.faults.arm("R:Q2:SET", PutReject(count=1, message="interlock"))
    journal_of(ioc, path, {"R:Q1:SET": 1.0, "R:Q2:SET": 2.0, "R:MODE": "On"}, parallel=True,
               timeout=0.5, put_attempts=1)
    (call,) = group_calls(read_journal(path))
    assert [a[1] for a in call.pvs["R:Q1:SET"].attempts] == ["timed_out"]
    assert [a[1] for a in call.pvs["R:Q2:SET"].attempts] == ["rejected"]
    code, out = restore_output(capsys, str(path))
    assert code == 0, out
    plan = [line.strip() for line in out.splitlines()[1:]]
    assert len(plan) == 2
    assert plan[0].startswith("R:") and any(
        line.startswith("R:Q1:SET = 0.5 ") and line.endswith("(timed out: may have been applied)") for line in plan)
    assert any(line.startswith("R:MODE = 'Off' ") and "may have been" not in line for line in plan)
    assert "R:Q2:SET" not in out  # rejected by the server: it changed nothing
    mark = len(ioc.audit.puts())
    code, out = restore_output(capsys, str(path), "--write", "--timeout", "3")
    assert code == 0, out
    assert sorted(r.pv for r in ioc.audit.puts()[mark:]) == ["R:MODE", "R:Q1:SET"]  # not Q2
    with Interface(conf=ioc.client_conf()) as interface:
        assert read_back(interface) == START


def q1_readback(count_down: float):
    return partial(wait_for_readback, readback_pv="R:Q1:RBV", tolerance=0.01, offset=0.0, count_down=count_down)


def test_validate_waits_for_the_readback_the_journal_names(ioc, tmp_path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    journal_of(ioc, path, {"R:Q1:SET": 1.0, "R:Q2:SET": 2.0}, configs={"R:Q1:SET": q1_readback(5.0)})
    code, out = restore_output(capsys, str(path))  # the plan shows what will be checked
    assert "R:Q1:SET = 0.5 " in out and "validate" not in out
    code, out = restore_output(capsys, str(path), "--validate")
    assert "; validate: readback R:Q1:RBV within 0.01 in 5 s" in out and "R:Q2:SET" in out
    assert "; no readback known" in out
    code, out = restore_output(capsys, str(path), "--write", "--validate")
    assert code == 0, out
    outcome = out.split("outcome:")[1]
    assert "R:Q1:SET = 0.5: set (readback R:Q1:RBV = 0.5, within 0.01)" in outcome
    assert "R:Q2:SET = -0.25: set, not validated (the journal records no readback for it)" in outcome
    # the restore's own call records its validation the same way, so it can be undone validated
    restore_call = group_calls(read_journal(path))[-1]
    trace = restore_call.pvs["R:Q1:SET"].validation.trace
    assert (trace["readback"], trace["tolerance"], trace["count_down"]) == ("R:Q1:RBV", 0.01, 5.0)
    code, out = restore_output(capsys, str(path), "--since", repr(restore_call.time), "--write")
    assert code == 0, out  # without --validate nothing is called validated
    assert "R:Q1:SET = 1.0: set, not validated" in out and "R:Q2:SET = 2.0: set, not validated" in out


def test_a_readback_that_does_not_arrive_fails_the_restore_naming_it(ioc, tmp_path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    journal_of(ioc, path, {"R:Q1:SET": 1.0}, {"R:Q2:SET": 2.0}, configs={"R:Q1:SET": q1_readback(1.0)})
    ioc.faults.arm("R:Q1:SET", StuckReadback())  # the readback stays at 1.0
    mark = len(ioc.audit.puts())
    code, out = restore_output(capsys, str(path), "--write", "--validate")
    assert code == 1
    outcome = out.split("outcome:")[1]
    assert ("R:Q1:SET = 0.5: failed: put accepted, but readback R:Q1:RBV did not confirm it within "
            "tolerance 0.01 in 1 s: PV R:Q1:SET: readback R:Q1:RBV = 1 did not reach") in outcome
    # newest change first: Q2 was restored before; nothing after the failure would have been sent
    assert [r.pv for r in ioc.audit.puts()[mark:]] == ["R:Q2:SET", "R:Q1:SET"]


def test_show_prints_the_wire_settings_refusals_and_an_interruption(tmp_path: Path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        call = journal.new_call()
        journal.before(call, {"A": 1.0, "B": 2.0, "C": 3.0},
                       wire={"prefix": "SIM:", "rehearsal": True, "rehearsal_id": "abc"})
        journal.put(call, "A", 5.0, 1)
        journal.outcome(call, "A", 1, "refused", "not sent: SIM:A is served by a stranger")
        journal.put(call, "B", 6.0, 1)
        journal.interrupted(call, ["B"], ["C"], "KeyboardInterrupt")
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(set, 3 PV(s), prefix 'SIM:', rehearsal against soft IOC abc)" in out
    assert "A: 1.0 -> 5.0; attempts: #1 refused (not sent: SIM:A is served by a stranger)" in out
    assert "interrupted (KeyboardInterrupt) after sending 1 PV(s): B; not sent: C" in out
    assert main(["restore", str(path), "--rehearsal-id", "abc"]) == 0  # the dry run: B only
    plan = capsys.readouterr().out
    assert "B = 2.0" in plan and "(no outcome recorded (killed or interrupted): may have been applied)" in plan
    assert "A = " not in plan and "in rehearsal against soft IOC abc" in plan and "prefix 'SIM:'" in plan
