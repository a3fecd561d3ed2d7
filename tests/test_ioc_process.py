"""The child-process soft IOC that bench and soak share: it starts on loopback, answers its
commands, reads the soft IOC command's own banner, and never outlives its parent."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from p4p.client.thread import Context, RemoteError

from devtools.ioc_process import IOCProcess, IOCProcessError, parse_banner

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"ioc": {"seed": 1, "update_rate": 20.0},
          "setpoint": [{"name": "T:SET", "readback": "T:RBV", "lag": "none", "limits": [-5.0, 5.0]}]}


def state(pid: int) -> str | None:
    """The process state letter of `pid` (R, S, T stopped, Z zombie...), None once reaped."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def all_threads_stopped(pid: int) -> bool:
    """True once every thread of `pid` is in the stopped state (T)."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            continue
    return bool(states) and all(s == "T" for s in states)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    return state(pid) not in (None, "Z")


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def my_ioc_children() -> list[int]:
    """Live child processes of this test process that run devtools.ioc_process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"devtools.ioc_process" in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_serves_on_loopback_and_answers_its_commands(until) -> None:
    with IOCProcess(CONFIG) as ioc:
        pid = ioc.pid
        assert ioc.client_conf["EPICS_PVA_ADDR_LIST"].startswith("127.0.0.1:")
        assert ioc.client_conf["EPICS_PVA_AUTO_ADDR_LIST"] == "NO"
        ctx = Context("pva", conf=ioc.client_conf, useenv=False)
        try:
            ctx.put("T:SET", 1.5, timeout=5.0)
            armed = ioc.call("arm", {"pv": "T:SET", "kind": "put_reject", "count": 1})
            assert (armed["pv"], armed["kind"], armed["remaining"]) == ("T:SET", "put_reject", 1)
            with pytest.raises(RemoteError, match="rejected"):
                ctx.put("T:SET", 2.5, timeout=5.0)
            assert ctx.get("T:SET", timeout=5.0) == 1.5
        finally:
            ctx.close()
        # its one shot spent, the fault is retired ("expired") at a later update step: wait for
        # that, so that the first drain holds every event and the second none, however late it is
        until(lambda: ioc.call("stats")["active_faults"] == 0, timeout=10.0, what="the spent fault retired")
        puts, faults = ioc.call("drain")
        assert [(p["pv"], p["value"], p["outcome"], p["fault"]) for p in puts] == [
            ("T:SET", 1.5, "accepted", None), ("T:SET", 2.5, "rejected", "put_reject")]
        assert [(f["kind"], f["event"]) for f in faults] == [
            ("put_reject", "armed"), ("put_reject", "fired"), ("put_reject", "expired")]
        assert ioc.call("drain") == [[], []]  # drained: only what came since
        stats = ioc.call("stats")
        assert stats["audit_puts"] == 2 and stats["rss_kb"] > 0
        with pytest.raises(IOCProcessError, match="'explode' failed: ValueError: unknown command"):
            ioc.call("explode")
        with pytest.raises(IOCProcessError, match="'arm' failed: .*NOPE:SET"):
            ioc.call("arm", {"pv": "NOPE:SET", "kind": "put_reject"})
        assert ioc.call("clear_audit") is None and ioc.call("stats")["audit_puts"] == 0
    assert ioc.pid is None and wait_gone(pid, 10.0)
    with pytest.raises(IOCProcessError, match="not running"):
        ioc.call("stats")


def test_the_banner_parser_reads_the_soft_ioc_command(tmp_path: Path) -> None:
    config = tmp_path / "one.toml"
    config.write_text(textwrap.dedent("""
        [ioc]
        seed = 1
        [[setpoint]]
        name = "B:SET"
        initial = 0.25
    """))
    for flags in ([], ["--export"]):
        proc = subprocess.Popen([sys.executable, "-m", "softioc", str(config), *flags], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lines = []
            deadline = time.monotonic() + 30.0
            while not lines or lines[-1] != "# ready":
                assert time.monotonic() < deadline, lines
                line = proc.stdout.readline()
                assert line, (lines, proc.stderr.read())
                lines.append(line.rstrip("\n"))
            conf = parse_banner(lines[:-1])
            assert set(conf) >= {"EPICS_PVA_ADDR_LIST", "EPICS_PVA_AUTO_ADDR_LIST"}
            ctx = Context("pva", conf=conf, useenv=False)
            try:
                assert ctx.get("B:SET", timeout=5.0) == 0.25
            finally:
                ctx.close()
        finally:
            proc.terminate()
            proc.wait(10)
            proc.stdout.close()
            proc.stderr.close()
    with pytest.raises(IOCProcessError, match="unexpected banner line 'serving'"):
        parse_banner(["# comment", "serving"])


def test_a_bad_config_fails_at_start_with_the_ioc_message() -> None:
    bad = {"setpoint": [{"name": "X:SET", "lag": "sideways"}]}
    with pytest.raises(IOCProcessError, match=r"exited \(status 1\) before '# ready'.*sideways"):
        IOCProcess(bad).start()
    assert my_ioc_children() == []


def test_no_ready_within_the_start_timeout_stops_the_child() -> None:
    with pytest.raises(IOCProcessError, match="no '# ready' within its timeout"):
        IOCProcess(CONFIG, start_timeout=0.01).start()
    assert my_ioc_children() == []


def test_a_child_that_does_not_answer_is_terminated_then_killed(caplog: pytest.LogCaptureFixture) -> None:
    ioc = IOCProcess(CONFIG, stop_grace=0.5).start()
    pid = ioc.pid
    os.kill(pid, signal.SIGSTOP)  # wedged: it can neither answer nor act on SIGTERM
    deadline = time.monotonic() + 5.0
    while not all_threads_stopped(pid):  # the stop lands on each thread in turn: one may still answer
        assert time.monotonic() < deadline, state(pid)
        time.sleep(0.01)
    try:
        with caplog.at_level(logging.WARNING, logger="devtools.ioc_process"):
            ioc.stop()
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid, 5.0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("no reply to 'stop'" in m for m in messages), messages
    assert any(m.endswith("still running: terminate") for m in messages), messages
    assert any(m.endswith("still running: kill") for m in messages), messages
    assert my_ioc_children() == []


PARENT = """
import json, sys, time
from devtools.ioc_process import IOCProcess
ioc = IOCProcess(json.loads(sys.argv[1])).start()
print(json.dumps({"pid": ioc.pid, "conf": ioc.client_conf}), flush=True)
time.sleep(120)
"""


def test_the_child_never_outlives_its_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, json.dumps(CONFIG)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    started: dict = {}
    try:
        line = parent.stdout.readline()
        assert line, "the parent exited before its soft IOC was ready"
        started = json.loads(line)
        ctx = Context("pva", conf=started["conf"], useenv=False)
        try:
            assert ctx.get("T:SET", timeout=5.0) == 0.0  # serving
        finally:
            ctx.close()
        parent.kill()  # SIGKILL: no clean-up code runs in the parent
        parent.wait(10)
        assert wait_gone(started["pid"], 15.0), f"soft IOC process {started['pid']} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        parent.stdout.close()
        if started and alive(started["pid"]):  # a failed run must not leave it behind
            os.kill(started["pid"], signal.SIGKILL)
