"""The interface journal: line format, lossless values, durability across SIGKILL, several writers."""

from __future__ import annotations

import json
import logging
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from epics_pva import EpicsPvaError, Interface
from epics_pva.errors import JournalError
from epics_pva.journal import (
    Journal,
    decode_value,
    encode_value,
    group_calls,
    read_journal,
    restore_plan,
)

CONFIG = {
    "ioc": {"seed": 3, "update_rate": 20.0},
    "setpoint": [
        {"name": "J:Q1:SET", "readback": "J:Q1:RBV", "initial": 1.25, "limits": [-10, 10]},
        {"name": "J:N:SET", "type": "int", "initial": 7},
        {"name": "J:MODE", "type": "enum", "choices": ["Off", "On", "Standby"], "initial": "Standby"},
        {"name": "J:NAME", "type": "string", "initial": "quad"},
        {"name": "J:WAVE", "type": "double_array", "length": 4, "initial": [0.5, -1.0, 2.0, 3.5]},
    ],
}

# a child process appending to a journal: waits for "go" on stdin, reports each line written
WRITER = r"""
import sys
from epics_pva.journal import Journal
path, count, tag, size, report = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
journal = Journal(path)
call = journal.new_call()
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    journal.put(call, tag + ":PV", [float(i)] * size, i + 1)
    if report:
        print(i + 1, flush=True)
"""


def strict_lines(path: Path) -> list[dict]:
    """Every line of the file as JSON, refusing the NaN/Infinity literals strict JSON lacks."""
    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name} in the journal")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def start_writer(path: Path, count: int, tag: str, size: int, report: bool) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(count), tag, str(size), "1" if report else "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    ready, _, _ = select.select([child.stdout], [], [], 30)
    assert ready and child.stdout.readline().strip() == "ready", "writer did not start"
    return child


def test_every_event_round_trips_with_its_fields(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    values = {
        "A": 1.5, "N": 7, "B": True, "S": "text", "E": "On", "NAN": math.nan,
        "INF": math.inf, "NINF": -math.inf, "F32": np.float32(0.25), "I16": np.int16(-3),
        "ARR": np.array([1.0, math.nan, -math.inf, 2.5]), "IARR": np.arange(3, dtype=np.int32),
        "STRS": ["a", "b"], "BOOLS": np.array([True, False]),
    }
    with Journal(path) as journal:
        call = journal.new_call()
        journal.before(call, values, {"GONE": "no reply within 1 s"})
        journal.put(call, "A", 2.5, 1)
        journal.outcome(call, "A", 1, "timed_out", "no completion within 1 s")
        journal.put(call, "A", 2.5, 2)
        journal.outcome(call, "A", 2, "accepted")
        journal.validation(call, "A", result={"rbv": math.nan, "$float": 1})
        journal.validation(call, "N", error=ValueError("readback 3 never reached 7"))
        other = journal.new_call()
        journal.read_only(other, {"A": -1.0, "ARR": np.zeros(2)})

    raw = strict_lines(path)
    assert [r["event"] for r in raw] == ["before"] * 15 + [
        "put", "outcome", "put", "outcome", "validation", "validation", "read_only", "read_only"]
    for r in raw:
        assert set(r) >= {"time", "pid", "event", "call"}
        assert r["pid"] == os.getpid() and isinstance(r["time"], float)
        assert abs(r["time"] - time.time()) < 60
    assert {r["call"] for r in raw[:21]} == {call} and {r["call"] for r in raw[21:]} == {other}
    assert call != other and call.startswith(f"{os.getpid()}-")
    assert raw[15] == {**raw[15], "pv": "A", "value": 2.5, "attempt": 1}
    assert raw[16]["outcome"] == "timed_out" and raw[16]["reason"] == "no completion within 1 s"
    assert raw[18]["reason"] is None and raw[14] == {**raw[14], "pv": "GONE", "error": "no reply within 1 s"}
    assert "value" not in raw[14]

    entries = read_journal(path)
    before = {e.pv: e.value for e in entries if e.event == "before" and e.has_value}
    assert before["F32"] == 0.25 and before["I16"] == -3 and before["B"] is True
    assert math.isnan(before["NAN"]) and before["INF"] == math.inf and before["NINF"] == -math.inf
    assert before["ARR"][0] == 1.0 and math.isnan(before["ARR"][1]) and before["ARR"][2:] == [-math.inf, 2.5]
    assert before["IARR"] == [0, 1, 2] and before["STRS"] == ["a", "b"] and before["BOOLS"] == [True, False]
    assert before["E"] == "On" and before["S"] == "text" and before["N"] == 7
    result = entries[19].result
    assert math.isnan(result["rbv"]) and result["$float"] == 1  # a dict shaped like a tag survives
    assert entries[20].error == "readback 3 never reached 7"
    assert [e.value for e in entries[21:]] == [-1.0, [0.0, 0.0]]


@pytest.mark.parametrize("value", [0.0, -0.0, 1e308, 5e-324, 2**63, -(2**70), "NaN", "", [[1, 2], []]])
def test_values_decode_to_what_was_encoded(value: object) -> None:
    text = json.dumps(encode_value(value), allow_nan=False)
    assert decode_value(json.loads(text)) == value


def test_values_read_from_a_soft_ioc_round_trip(softioc_factory, tmp_path: Path) -> None:
    ioc = softioc_factory(CONFIG)
    names = ["J:Q1:SET", "J:N:SET", "J:MODE", "J:NAME", "J:WAVE"]
    with Interface(conf=ioc.client_conf(), timeout=5.0) as interface:
        read = interface.get_values(names)
    journal = Journal(tmp_path / "j.jsonl")
    call = journal.new_call()
    journal.before(call, read)
    journal.close()
    back = {e.pv: e.value for e in read_journal(tmp_path / "j.jsonl")}
    assert back == {"J:Q1:SET": 1.25, "J:N:SET": 7, "J:MODE": "Standby", "J:NAME": "quad",
                    "J:WAVE": [0.5, -1.0, 2.0, 3.5]}
    assert isinstance(read["J:WAVE"], np.ndarray) and back["J:WAVE"] == read["J:WAVE"].tolist()


def test_a_cut_off_last_line_is_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    call = journal.new_call()
    for i in range(3):
        journal.put(call, "A", float(i), i + 1)
    journal.close()
    whole = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(whole.splitlines(keepends=True)[0][:-9])  # a line with its end cut off
    with caplog.at_level(logging.WARNING, logger="epics_pva.journal"):
        entries = read_journal(path)
    assert [e.value for e in entries] == [0.0, 1.0, 2.0]
    assert "last line 4 is incomplete" in caplog.text


def test_a_corrupt_line_in_the_middle_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    call = journal.new_call()
    journal.put(call, "A", 1.0, 1)
    journal.close()
    with open(path, "a") as fh:
        fh.write('{"time": 1, "pid": 2, "event": "put"\n')  # complete line, broken JSON
    journal = Journal(path)
    journal.put(call, "A", 2.0, 1)
    journal.close()
    with pytest.raises(JournalError, match=r"j\.jsonl.*line 2 is corrupt: not JSON") as info:
        read_journal(path)
    assert str(path) in str(info.value)
    path.write_text('{"time": 1.0, "pid": 2, "event": "put"}\n' + path.read_text().split("\n", 1)[0] + "\n")
    with pytest.raises(JournalError, match=r"line 1 is corrupt: missing key\(s\) call"):
        read_journal(path)


def test_a_writer_after_a_killed_writer_keeps_the_journal_readable(tmp_path: Path, caplog) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)  # stays open, as a GUI's journal does while its worker dies
    call = journal.new_call()
    journal.put(call, "A", 1.0, 1)
    with open(path, "ab") as fh:  # what a writer killed mid-line leaves
        fh.write(b'{"time":1.0,"pid":99,"event":"put","call":"99-1-aa","pv":"B","va')
    journal.put(call, "A", 2.0, 2)
    journal.put(call, "A", 3.0, 3)
    journal.close()
    with caplog.at_level(logging.WARNING, logger="epics_pva.journal"):
        entries = read_journal(path)
    assert [(e.pv, e.value) for e in entries] == [("A", 1.0), ("A", 2.0), ("A", 3.0)]
    assert "line 2 was cut off" in caplog.text


def test_two_processes_append_1000_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    size = 600  # ~4 KB lines: larger than a pipe's atomic write, so interleaving would show
    children = [start_writer(path, 500, tag, size, report=False) for tag in ("P1", "P2")]
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        assert child.wait(timeout=60) == 0
        child.stdout.close()
        child.stdin.close()
    raw = strict_lines(path)  # every line parses
    assert len(raw) == 1000
    for child, tag in zip(children, ("P1", "P2"), strict=True):
        mine = [r for r in raw if r["pv"] == f"{tag}:PV"]
        assert {r["pid"] for r in mine} == {child.pid}
        assert [r["attempt"] for r in mine] == list(range(1, 501))  # each process's order kept
        assert all(r["value"] == [float(r["attempt"] - 1)] * size for r in mine)
    times = [r["time"] for r in raw]
    assert times == sorted(times)  # stamped under the file lock: file order is time order
    pids = [r["pid"] for r in raw]
    switches = sum(a != b for a, b in zip(pids, pids[1:], strict=False))
    assert switches > 0, "the two writers never ran at the same time: the test proves nothing"


def test_sigkill_of_a_writer_loses_at_most_the_line_being_written(tmp_path: Path, caplog) -> None:
    path = tmp_path / "j.jsonl"
    child = start_writer(path, 10**6, "K", 3000, report=True)  # ~20 KB lines
    child.stdin.write("go\n")
    child.stdin.flush()
    written = 0
    deadline = time.monotonic() + 30
    while written < 200:
        assert time.monotonic() < deadline, "the writer stalled"
        ready, _, _ = select.select([child.stdout], [], [], 5)
        if ready:
            written = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL
    reports = child.stdout.read().split()  # what it reported before it died
    child.stdout.close()
    child.stdin.close()
    written = int(reports[-1]) if reports else written
    with caplog.at_level(logging.WARNING, logger="epics_pva.journal"):
        entries = read_journal(path)
    # every line whose write returned is there; only the one in flight may be
    assert written <= len(entries) <= written + 1
    assert [e.attempt for e in entries] == list(range(1, len(entries) + 1))
    # and another writer may append after it: the journal stays readable
    Journal(path).put("x-1-ab", "AFTER", 1.0, 1)
    assert read_journal(path)[-1].pv == "AFTER"


def test_a_forked_child_shares_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    stop = threading.Event()

    def busy() -> None:  # holds the lock often, so a fork may well happen while it is held
        call = journal.new_call()
        while not stop.is_set():
            journal.put(call, "PARENT", 1.0, 1)

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        parent_call = journal.new_call()
        pid = os.fork()
        if pid == 0:  # the child: write through the inherited journal, then leave at once
            code = 1
            try:
                call = journal.new_call()
                for i in range(200):
                    journal.put(call, "CHILD", float(i), i + 1)
                code = 0 if call != parent_call else 3
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung writing to the journal")
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert os.waitstatus_to_exitcode(status) == 0
    journal.put(parent_call, "PARENT", 2.0, 1)  # the parent goes on writing after the fork
    journal.close()
    entries = read_journal(path)
    child = [e for e in entries if e.pv == "CHILD"]
    assert [e.attempt for e in child] == list(range(1, 201)) and {e.pid for e in child} == {pid}
    assert child[0].call.startswith(f"{pid}-")
    assert entries[-1].pv == "PARENT" and entries[-1].value == 2.0 and entries[-1].pid == os.getpid()


def test_threads_share_one_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, fsync=True)

    def write(tag: str) -> None:
        call = journal.new_call()
        for i in range(100):
            journal.put(call, tag, float(i), i + 1)

    threads = [threading.Thread(target=write, args=(f"T{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    journal.close()
    calls = group_calls(read_journal(path))
    assert sorted(len(c.pvs[next(iter(c.pvs))].attempts) for c in calls) == [100] * 4
    assert len({c.call for c in calls}) == 4


def test_unwritable_paths_raise_journal_error_naming_path_and_reason(tmp_path: Path) -> None:
    cases = [(tmp_path / "missing" / "j.jsonl", "No such file or directory"),
             (tmp_path, "Is a directory")]
    if os.geteuid() == 0 and Path("/sys/kernel").is_dir():  # root ignores chmod; sysfs refuses
        cases.append((Path("/sys/kernel/journal.jsonl"), "Permission denied"))
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        cases.append((locked / "j.jsonl", "Permission denied"))
    for path, reason in cases:
        with pytest.raises(JournalError) as info:
            Journal(path)
        error = info.value
        assert isinstance(error, EpicsPvaError) and isinstance(error, OSError)
        assert str(path) in str(error) and reason in str(error) and error.errno
        assert error.path == str(path)


def test_check_reopens_a_journal_removed_under_it(tmp_path: Path, caplog) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.put("c-1-aa", "A", 1.0, 1)
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="epics_pva.journal"):
        journal.check()
    journal.put("c-1-aa", "A", 2.0, 1)
    journal.close()
    assert [e.value for e in read_journal(path)] == [2.0]
    assert "removed or replaced" in caplog.text
    path.unlink()
    path.mkdir()  # replaced by something that cannot be written
    with pytest.raises(JournalError, match="Is a directory"):
        journal.check()


def test_bad_arguments_are_refused_naming_them(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    with pytest.raises(ValueError, match=r"J:Q1: attempt must be an int >= 1, not 0"):
        journal.put("c-1-aa", "J:Q1", 1.0, 0)
    with pytest.raises(ValueError, match=r"PV name must be a non-empty string, not ''"):
        journal.put("c-1-aa", "", 1.0, 1)
    with pytest.raises(ValueError, match=r"call must be an id from new_call\(\), not None"):
        journal.put(None, "J:Q1", 1.0, 1)
    with pytest.raises(ValueError, match=r"J:Q1: outcome must be a non-empty string"):
        journal.outcome("c-1-aa", "J:Q1", 1, "")
    journal.close()
    assert (tmp_path / "j.jsonl").read_bytes() == b""


def test_since_and_until_keep_or_drop_whole_calls(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    calls = []
    for k in range(3):
        call = journal.new_call()
        journal.before(call, {"A": float(k)})
        journal.put(call, "A", float(k + 1), 1)
        calls.append(call)
    journal.close()
    entries = read_journal(path)
    start = {c: min(e.time for e in entries if e.call == c) for c in calls}
    assert {e.call for e in read_journal(path, since=start[calls[1]])} == set(calls[1:])
    assert {e.call for e in read_journal(path, until=start[calls[1]])} == set(calls[:2])
    middle = read_journal(path, since=start[calls[1]], until=start[calls[1]])
    assert [e.event for e in middle] == ["before", "put"] and {e.call for e in middle} == {calls[1]}
    # the window's earliest call gives the value to go back to
    steps, unrestorable = restore_plan(group_calls(read_journal(path, since=start[calls[1]])))
    assert [(s.pv, s.value) for s in steps] == [("A", 1.0)] and unrestorable == {}


# ---- a line is a line only with its newline ------------------------------------------------------

def test_a_whole_last_line_without_its_newline_is_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    call = journal.new_call()
    journal.put(call, "A", 1.0, 1)
    journal.put(call, "B", 2.0, 1)
    journal.close()
    path.write_bytes(path.read_bytes()[:-1])  # a write that failed just before the newline
    json.loads(path.read_bytes().splitlines()[-1])  # what is left of the line parses
    with caplog.at_level(logging.WARNING, logger="epics_pva.journal"):
        entries = read_journal(path)
    assert [e.pv for e in entries] == ["A"]  # the put of B is not shown as sent
    assert "last line 2 is incomplete" in caplog.text
    steps, _ = restore_plan(group_calls(entries))
    assert [s.pv for s in steps] == []  # A had no before line; B is not in the journal at all


def test_a_whole_line_a_later_writer_marked_cut_off_is_skipped(tmp_path: Path, caplog) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    call = journal.new_call()
    journal.put(call, "A", 1.0, 1)
    with open(path, "ab") as fh:  # a put line written whole but for its newline, then the write failed
        fh.write(json.dumps({"time": time.time(), "pid": os.getpid(), "event": "put", "call": call,
                             "pv": "B", "value": 2.0, "attempt": 1}).encode())
    journal.outcome(call, "A", 1, "accepted")  # the next writer ends the line and marks it
    journal.close()
    assert b'"event":"truncated"' in path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="epics_pva.journal"):
        entries = read_journal(path)
    assert [(e.event, e.pv) for e in entries] == [("put", "A"), ("outcome", "A")]
    assert "line 2 was cut off" in caplog.text


# ---- the locks wait at most lock_timeout ---------------------------------------------------------

# a child process holding the journal's flock until its stdin closes
LOCK_HOLDER = r"""
import fcntl, sys
with open(sys.argv[1], "ab") as fh:
    fcntl.flock(fh, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
"""


def hold_flock(path: Path) -> subprocess.Popen:
    """Start a process that holds an exclusive flock on `path` until its stdin is closed."""
    child = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([child.stdout], [], [], 30)
    assert ready and child.stdout.readline().strip() == "locked", "the lock holder did not start"
    return child


def release(child: subprocess.Popen) -> None:
    child.stdin.close()
    child.wait(timeout=30)
    child.stdout.close()


def test_a_write_waits_for_a_flock_held_elsewhere_at_most_lock_timeout(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, lock_timeout=0.2)
    holder = hold_flock(path)
    outcome: list[BaseException | None] = []
    try:
        def write() -> None:
            try:
                journal.put("c-1-aa", "A", 1.0, 1)
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                outcome.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=20)  # bounded: a writer blocked for ever fails the test here
        assert not writer.is_alive(), "the write waited for the lock without a limit"
    finally:
        release(holder)
    (error,) = outcome
    assert isinstance(error, JournalError) and str(path) in str(error)
    assert "cannot lock" in str(error) and "0.2 s" in str(error)
    assert path.read_bytes() == b""  # nothing written
    journal.put("c-1-aa", "A", 1.0, 1)  # once the holder let go, the journal works again
    assert [e.pv for e in read_journal(path)] == ["A"]
    assert repr(journal).endswith("lock_timeout=0.2)")


def test_the_thread_lock_waits_at_most_lock_timeout_too(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, lock_timeout=0.1)
    with journal._lock:  # another thread of this process in the middle of a write
        result: list[BaseException] = []
        writer = threading.Thread(target=lambda: result.append(_raised(journal.put, "c-1-aa", "A", 1.0, 1)))
        writer.start()
        writer.join(timeout=20)
        assert not writer.is_alive()
    assert isinstance(result[0], JournalError) and "another thread" in str(result[0])
    with pytest.raises(ValueError, match="lock_timeout"):
        Journal(path, lock_timeout=-1)


def _raised(fn, *args) -> BaseException | None:
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001 - the test looks at it
        return exc
    return None


# ---- the wire settings of each call ----------------------------------------------------------------

def test_before_and_read_only_lines_carry_the_wire_settings_and_old_lines_read_as_unknown(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    wire = {"prefix": "SIM:", "rehearsal": True, "rehearsal_id": "abc123"}
    with Journal(path) as journal:
        old = journal.new_call()
        journal.before(old, {"A": 1.0})  # as a journal written before the settings were recorded
        new = journal.new_call()
        journal.before(new, {"A": 1.0}, {"B": "no value"}, wire=wire)
        ro = journal.new_call()
        journal.read_only(ro, {"A": 2.0}, wire={"prefix": "", "rehearsal": False, "rehearsal_id": ""})
        with pytest.raises(ValueError, match="unknown wire setting"):
            journal.before(new, {"A": 1.0}, wire={"prefx": "x"})
    raw = strict_lines(path)
    assert "prefix" not in raw[0]
    assert all({k: r[k] for k in wire} == wire for r in raw[1:3])
    calls = {c.call: c for c in group_calls(read_journal(path))}
    assert calls[old].wire is None
    assert (calls[new].wire.prefix, calls[new].wire.rehearsal, calls[new].wire.rehearsal_id) == (
        "SIM:", True, "abc123")
    assert calls[ro].wire.prefix == "" and calls[ro].wire.rehearsal is False


def test_an_interrupted_line_names_what_was_sent(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        call = journal.new_call()
        journal.before(call, {"A": 1.0, "B": 2.0})
        journal.put(call, "A", 3.0, 1)
        journal.interrupted(call, ["A"], ["B"], "KeyboardInterrupt")
    (record,) = group_calls(read_journal(path))
    assert record.interrupted is not None
    assert record.interrupted.fields == {"sent": ["A"], "not_sent": ["B"], "reason": "KeyboardInterrupt"}
    assert record.pvs["A"].attempts == [(1, None, None)] and record.pvs["A"].may_have_reached


def test_the_restore_plan_leaves_out_puts_never_sent_or_rejected(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    outcomes = {"ACC": ["accepted"], "TMO": ["timed_out"], "REJ": ["rejected"], "REF": ["refused"],
                "NA": ["not_attempted"], "RETRY": ["timed_out", "accepted"], "LOST": [None],
                "TMO_REJ": ["timed_out", "rejected"]}
    with Journal(path) as journal:
        call = journal.new_call()
        journal.before(call, {pv: 0.0 for pv in outcomes})
        for pv, results in outcomes.items():
            for attempt, outcome in enumerate(results, start=1):
                journal.put(call, pv, 1.0, attempt)
                if outcome is not None:
                    journal.outcome(call, pv, attempt, outcome, None)
    steps, unrestorable = restore_plan(group_calls(read_journal(path)))
    notes = {s.pv: s.note for s in steps}
    assert notes == {"ACC": "", "TMO": "timed out: may have been applied", "RETRY": "",
                     "LOST": "no outcome recorded (killed or interrupted): may have been applied",
                     "TMO_REJ": "timed out: may have been applied"}
    assert unrestorable == {}
