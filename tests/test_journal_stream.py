"""Reading a journal as a stream: a time window costs what it holds, and every bad line of it is
reported by number and skipped, never a traceback.

`pva-journal show` and `restore` read through `scan_journal`: the window is found by the lines'
times, only its calls are held, and a line of the window that cannot be read is named on
stderr while the rest is shown (exit status 2); a restore whose window had one sends nothing.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from functools import partial
from pathlib import Path

import pytest

from epics_pva import Interface, wait_for_readback
from epics_pva.journal import group_calls, read_journal, scan_journal
from epics_pva.tools.journal_cli import main

CONFIG = {
    "ioc": {"seed": 7, "update_rate": 20.0},
    "setpoint": [
        {"name": "S:Q1:SET", "readback": "S:Q1:RBV", "initial": 0.5, "limits": [-10, 10]},
        {"name": "S:Q2:SET", "initial": -0.25, "limits": [-10, 10]},
    ],
}
T0 = 1_790_000_000.0


def line(when: float, event: str, call: str, **fields) -> str:
    return json.dumps({"time": when, "pid": 4242, "event": event, "call": call, **fields},
                      separators=(",", ":"))


def call_lines(when: float, call: str, pv: str = "S:Q1:SET", before: float = 0.5, value: float = 1.0,
               end: bool = True) -> list[str]:
    """The lines a set of one PV writes, 1 ms apart, as the Interface writes them."""
    lines = [line(when, "before", call, pv=pv, value=before, prefix="", rehearsal=False, rehearsal_id=""),
             line(when + 0.001, "put", call, pv=pv, value=value, attempt=1),
             line(when + 0.002, "outcome", call, pv=pv, attempt=1, outcome="accepted", reason=None)]
    return lines + ([line(when + 0.003, "end", call)] if end else [])


def write(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


# ---- every kind of bad line, reported by number and skipped -----------------------------------

HEAD = '{"time":1790000100.0,"pid":4242,"event":"put","call":"4242-9-aa","pv":"S:Q1:SET","value":1.0,"attempt":1'
BAD_LINES = {
    "time before 1970": (HEAD.replace("1790000100.0", "-1.0") + "}", "'time' -1.0 is not within"),
    "time after 9999": (HEAD.replace("1790000100.0", "1e300") + "}", "'time' 1e+300 is not within"),
    "time infinite": (HEAD.replace("1790000100.0", "1e999") + "}", "'time' inf is not within"),
    "time NaN literal": (HEAD.replace("1790000100.0", "NaN") + "}", "NaN is not JSON"),
    "time a string": (HEAD.replace("1790000100.0", '"1790000100.0"') + "}", "'time' is '1790000100.0', not a number"),
    "time a bool": (HEAD.replace("1790000100.0", "true") + "}", "'time' is True, not a number"),
    "pid a string": (HEAD.replace('"pid":4242', '"pid":"4242"') + "}", "'pid' is '4242', not a process id"),
    "pid negative": (HEAD.replace('"pid":4242', '"pid":-1') + "}", "'pid' is -1, not a process id"),
    "pid a float": (HEAD.replace('"pid":4242', '"pid":4.5') + "}", "'pid' is 4.5, not a process id"),
    "event a number": (HEAD.replace('"event":"put"', '"event":5') + "}", "'event' is 5, not a word"),
    "call null": (HEAD.replace('"call":"4242-9-aa"', '"call":null') + "}", "'call' is None, not a call id"),
    "call empty": (HEAD.replace('"call":"4242-9-aa"', '"call":""') + "}", "'call' is '', not a call id"),
    "pv a number": (HEAD.replace('"pv":"S:Q1:SET"', '"pv":5') + "}", "'pv' is 5, not a PV name"),
    "pv with a space": (HEAD.replace('"pv":"S:Q1:SET"', '"pv":"S Q1"') + "}", "is not a PV name"),
    "pv an escape sequence": (HEAD.replace('"pv":"S:Q1:SET"', '"pv":"\\u001b[2J"') + "}", "is not a PV name"),
    "pv a lone surrogate": (HEAD.replace('"pv":"S:Q1:SET"', '"pv":"\\ud800"') + "}", "is not a PV name"),
    "attempt a string": (HEAD.replace('"attempt":1', '"attempt":"1"') + "}", "'attempt' is '1', not an int >= 1"),
    "attempt zero": (HEAD.replace('"attempt":1', '"attempt":0') + "}", "'attempt' is 0, not an int >= 1"),
    "attempt a bool": (HEAD.replace('"attempt":1', '"attempt":true') + "}", "'attempt' is True, not an int"),
    "put without value": (HEAD.replace(',"value":1.0', "") + "}", "a put line without 'value'"),
    "outcome a number": (line(T0 + 100, "outcome", "4242-9-aa", pv="S:Q1:SET", attempt=1, outcome=5),
                         "'outcome' is 5, not a word"),
    "reason a list": (line(T0 + 100, "outcome", "4242-9-aa", pv="S:Q1:SET", attempt=1, outcome="failed",
                           reason=["x"]), "'reason' is ['x'], not text"),
    "before error a number": (line(T0 + 100, "before", "4242-9-aa", pv="S:Q1:SET", error=5),
                              "'error' is 5, not text"),
    "trace a list": (line(T0 + 100, "validation", "4242-9-aa", pv="S:Q1:SET", result=1.0, trace=[1]),
                     "'trace' is [1], not an object"),
    "rehearsal a string": (line(T0 + 100, "before", "4242-9-aa", pv="S:Q1:SET", value=1.0, rehearsal="yes"),
                           "'rehearsal' is 'yes', not true or false"),
    "sent not a list": (line(T0 + 100, "interrupted", "4242-9-aa", sent="S:Q1:SET", not_sent=[], reason="x"),
                        "'sent' is 'S:Q1:SET', not a list of PV names"),
    "nested 100,000 deep": (HEAD.replace('"value":1.0', '"value":' + "[" * 100_000 + "]" * 100_000) + "}",
                            "not JSON (nested too deeply)"),
    "nested 500 deep": (HEAD.replace('"value":1.0', '"value":' + "[" * 500 + "]" * 500) + "}",
                        "a value that cannot be read (a value nested more than 100 levels deep)"),
    "an int of 5000 digits": (HEAD.replace('"value":1.0', '"value":1' + "0" * 5000) + "}", "not JSON (Exceeds"),
    "invalid JSON": ('{"time": 1790000100.0, "pid": 4242, "event": "put"', "not JSON (Expecting"),
    "two objects": (HEAD + "}" + HEAD + "}", "not JSON (more after the object"),
    "not UTF-8": (HEAD.encode() + b',"x":"\xff\xfe"}', "not UTF-8 (byte 0xff at column"),
    "not an object": ("[1, 2, 3]", "not a JSON object but list"),
    "no keys": ("{}", "missing key(s) time, pid, event, call"),
}


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_each_bad_line_is_reported_by_number_and_the_rest_is_shown(tmp_path, capsys, kind) -> None:
    bad, why = BAD_LINES[kind]
    path = write(tmp_path / "j.jsonl", [*call_lines(T0, "4242-1-aa"), bad, *call_lines(T0 + 200, "4242-2-bb")])
    assert main(["show", str(path)]) == 2
    captured = capsys.readouterr()
    assert "call 4242-1-aa" in captured.out and "call 4242-2-bb" in captured.out
    assert f"{path}: line 5 skipped: " in captured.err and why in captured.err, captured.err
    assert "Traceback" not in captured.err and all(x.isprintable() for x in captured.err.splitlines())
    scan = scan_journal(path)
    assert [(b.line, why in b.reason) for b in scan.bad] == [(5, True)]
    assert [e.call for e in scan.entries] == ["4242-1-aa"] * 3 + ["4242-2-bb"] * 3
    # the library's strict reader still refuses the window, naming the line
    with pytest.raises(Exception, match="line 5 is corrupt"):
        read_journal(path)


def test_a_bad_line_outside_the_window_does_not_fail_it(tmp_path, capsys) -> None:
    first, third = call_lines(T0, "4242-1-aa"), call_lines(T0 + 400, "4242-3-cc")
    path = write(tmp_path / "j.jsonl", [first[0], "not json", *first[1:], *call_lines(T0 + 200, "4242-2-bb"),
                                        *third[:2], "[1]", *third[2:]])
    assert main(["show", str(path), "--since", repr(T0 + 100), "--until", repr(T0 + 300)]) == 0
    captured = capsys.readouterr()
    assert "call 4242-2-bb" in captured.out and "4242-1-aa" not in captured.out and "4242-3-cc" not in captured.out
    assert captured.err == ""
    assert main(["show", str(path), "--since", repr(T0 + 300)]) == 2  # the "[1]" line is in this one
    assert "line 12 skipped: not a JSON object but list" in capsys.readouterr().err
    # a line that cannot say when it was written, just before the window's first line, may be
    # the window's: it counts as the window's
    path = write(tmp_path / "k.jsonl", [*call_lines(T0, "4242-1-aa"), "not json", *call_lines(T0 + 200, "4242-2-bb")])
    assert [b.line for b in scan_journal(path, since=T0 + 100).bad] == [5]


def test_output_never_carries_a_journals_control_characters(tmp_path, capsys) -> None:
    path = write(tmp_path / "j.jsonl", [
        *call_lines(T0, "4242-1-\x1b[2J"),
        line(T0 + 1, "outcome", "4242-1-\x1b[2J", pv="S:Q1:SET", attempt=2, outcome="failed\x07",
             reason="boom \x1b]0;title\x07 \ud800"),
    ])
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J" in out and "\\ud800" in out


# ---- the window -------------------------------------------------------------------------------

def test_a_call_begun_before_the_window_is_left_out_whatever_its_id(tmp_path) -> None:
    # new ids carry the ms they were made; old ones (and other writers') none: both are found
    new = f"4242-1-aa-{int((T0 + 99) * 1000)}"
    path = write(tmp_path / "j.jsonl", [
        *call_lines(T0, "4242-0-00"),
        line(T0 + 99.5, "before", new, pv="S:Q1:SET", value=0.5, prefix="", rehearsal=False, rehearsal_id=""),
        line(T0 + 99.5, "before", "old-1", pv="S:Q2:SET", value=0.5, prefix="", rehearsal=False, rehearsal_id=""),
        line(T0 + 100.5, "put", new, pv="S:Q1:SET", value=1.0, attempt=1),  # the window starts before this
        line(T0 + 100.5, "put", "old-1", pv="S:Q2:SET", value=1.0, attempt=1),
        *call_lines(T0 + 101, "4242-2-bb"),
        line(T0 + 102, "end", new), line(T0 + 102, "end", "old-1"),
    ])
    entries = read_journal(path, since=T0 + 100)
    assert {e.call for e in entries} == {"4242-2-bb"}
    assert {c.call for c in group_calls(read_journal(path, until=T0 + 100))} == {"4242-0-00", new, "old-1"}


@pytest.mark.parametrize("end", [True, False], ids=["with_end_lines", "journal_without_end_lines"])
def test_a_call_begun_in_the_window_is_whole_with_its_lines_after_until(tmp_path, end) -> None:
    call = f"4242-1-aa-{int((T0 + 10) * 1000)}"
    lines = [*call_lines(T0, "4242-0-00", end=end), *call_lines(T0 + 10, call, end=False),
             *call_lines(T0 + 20, "4242-2-bb", end=end)]
    lines.append(line(T0 + 30, "validation", call, pv="S:Q1:SET", result=1.0))  # long after until
    lines += [line(T0 + 31, "end", call)] if end else []
    lines += call_lines(T0 + 40, "4242-3-cc", end=end)
    path = write(tmp_path / "j.jsonl", lines)
    entries = read_journal(path, since=T0 + 5, until=T0 + 15)
    assert [(e.call, e.event) for e in entries] == [
        (call, "before"), (call, "put"), (call, "outcome"), (call, "validation")]
    assert [e.line for e in entries] == ([5, 6, 7, 12] if end else [4, 5, 6, 10])
    assert all(e.event != "end" for e in read_journal(path))


def test_a_cut_off_line_at_the_windows_edges_is_skipped(tmp_path, caplog) -> None:
    # a writer killed mid-line (its before line, cut off), then the next writer marks it and writes
    cut = call_lines(T0 + 20, "4242-1-aa")[0]
    path = write(tmp_path / "j.jsonl", [*call_lines(T0, "4242-0-00"), cut, line(T0 + 20.5, "truncated", ""),
                                        *call_lines(T0 + 20.5, "4242-2-bb")])
    assert read_journal(path, since=T0 + 10, until=T0 + 20.25) == []  # the mark is after the window
    assert "line 5 was cut off" in caplog.text
    assert [e.call for e in read_journal(path, since=T0 + 20.25)] == ["4242-2-bb"] * 3
    # a line of a window's call after `until`, cut off
    caplog.clear()
    lines = [*call_lines(T0, "4242-0-00"), *call_lines(T0 + 15, "4242-1-aa", end=False),
             line(T0 + 21, "validation", "4242-1-aa", pv="S:Q1:SET", result=1.0), line(T0 + 22, "truncated", ""),
             *call_lines(T0 + 22, "4242-2-bb")]
    path = write(tmp_path / "k.jsonl", lines)
    assert [e.event for e in read_journal(path, since=T0 + 10, until=T0 + 20)] == ["before", "put", "outcome"]
    assert "line 8 was cut off" in caplog.text


def test_nothing_in_the_window_is_nothing(tmp_path, capsys) -> None:
    path = write(tmp_path / "j.jsonl", [x for k in range(50) for x in call_lines(T0 + k, f"4242-{k}-aa")])
    assert read_journal(path, since=T0 + 1000) == [] and read_journal(path, until=T0 - 1) == []
    assert main(["show", str(path), "--since", repr(T0 + 1000)]) == 0
    assert capsys.readouterr().out == "no calls in the journal window\n"
    assert main(["restore", str(path), "--since", repr(T0 + 1000)]) == 0


def test_a_window_holds_what_it_holds_not_the_file(tmp_path) -> None:
    """A one-minute window of a journal of 200,000 lines (30 MB): what is held is the window."""
    path = tmp_path / "big.jsonl"
    with open(path, "w") as fh:
        for k in range(50_000):
            for text in call_lines(T0 + k, f"4242-{k}-aa-{int((T0 + k) * 1000)}"):
                fh.write(text + "\n")
    assert path.stat().st_size > 25e6
    tracemalloc.start()
    try:
        entries = read_journal(path, since=T0 + 25_000, until=T0 + 25_059)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(entries) == 60 * 3 and entries[0].line == 25_000 * 4 + 1
    assert peak < 4e6, f"reading a 60-call window of a 30 MB journal held {peak / 1e6:.1f} MB"


# ---- through the Interface and pva-journal restore ----------------------------------------------------

@pytest.fixture
def ioc(softioc_factory, monkeypatch):
    ioc = softioc_factory(CONFIG)
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    return ioc


def test_every_call_ends_with_an_end_line_that_readers_do_not_show(ioc, tmp_path) -> None:
    path = tmp_path / "j.jsonl"
    with Interface(conf=ioc.client_conf(), timeout=3.0, journal=str(path)) as itf:
        itf.set_values({"S:Q1:SET": 1.0, "S:Q2:SET": 2.0})
    with Interface(conf=ioc.client_conf(), timeout=3.0, journal=str(path), read_only=True) as itf:
        itf.set_values({"S:Q1:SET": 3.0})
    raw = [json.loads(x) for x in path.read_text().splitlines()]
    calls = list(dict.fromkeys(r["call"] for r in raw))
    assert [r["event"] for r in raw if r["call"] == calls[0]][-1] == "end"
    assert [r["event"] for r in raw if r["call"] == calls[1]] == ["read_only", "end"]
    for call in calls:  # <pid>-<counter>-<hex>-<ms>: made just before the call's first line
        pid, _, _, ms = call.split("-")
        first = min(r["time"] for r in raw if r["call"] == call)
        assert int(pid) == os.getpid() and 0 <= first - int(ms) / 1000 < 5
    assert "end" not in {e.event for e in read_journal(path)}


def test_a_restore_whose_window_had_a_bad_line_sends_nothing(ioc, tmp_path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    with Interface(conf=ioc.client_conf(), timeout=3.0, journal=str(path)) as itf:
        itf.set_values({"S:Q1:SET": 1.0})
        with open(path, "a") as fh:
            fh.write('{"time": 1e999, "pid": 1, "event": "put", "call": "1-1-a", "pv": "S:Q1:SET", "value": 0.0}\n')
        itf.set_values({"S:Q2:SET": 2.0})
        itf.set_values({"S:Q1:SET": 3.0})
    mark = len(ioc.audit.puts())
    assert main(["restore", str(path), "--write"]) == 2
    captured = capsys.readouterr()
    assert "refused, nothing was sent: 1 line(s) of the journal window could not be read" in captured.out
    assert "line 5 skipped: 'time' inf is not within" in captured.err
    assert ioc.audit.puts()[mark:] == []
    # the line cannot say when it was written: next to the window's first call, it is the window's
    calls = group_calls(scan_journal(path).entries)
    assert main(["restore", str(path), "--write", "--since", repr(calls[1].time)]) == 2
    assert ioc.audit.puts()[mark:] == []
    capsys.readouterr()
    assert main(["restore", str(path), "--write", "--since", repr(calls[2].time)]) == 0
    assert [(p.pv, p.value) for p in ioc.audit.puts()[mark:]] == [("S:Q1:SET", 1.0)]


def test_validate_takes_the_latest_readback_recorded_after_the_window(ioc, tmp_path, capsys) -> None:
    path = tmp_path / "j.jsonl"
    check = partial(wait_for_readback, readback_pv="S:Q1:RBV", tolerance=0.02, offset=0.0, count_down=5.0)
    with Interface(conf=ioc.client_conf(), timeout=3.0, journal=str(path)) as itf:
        itf.set_values({"S:Q1:SET": 1.0})  # not validated: the window's call
        itf.set_values({"S:Q1:SET": 2.0}, {"S:Q1:SET": check})  # after the window
    first, second = group_calls(read_journal(path))
    assert main(["restore", str(path), "--until", repr(first.time), "--validate"]) == 0
    out = capsys.readouterr().out
    assert "S:Q1:SET = 0.5" in out and "validate: readback S:Q1:RBV within 0.02 in 5 s" in out
