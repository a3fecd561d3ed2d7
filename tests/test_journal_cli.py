"""pva-journal show / restore against a soft IOC, on journals written as the interface writes them."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from epics_pva import Interface, SetValuesError
from epics_pva.journal import Journal, group_calls, read_journal
from epics_pva.journal_cli import main, parse_time
from softioc import PutReject

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


def test_an_unreadable_journal_exits_2_naming_file_and_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"time": 1.0, "pid": 1, "event": "put", "call": "1-1-a"}\nnot json\n{}\n')
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "line 2 is corrupt" in err
    assert main(["restore", str(tmp_path / "absent.jsonl")]) == 2
    assert "No such file or directory" in capsys.readouterr().err
