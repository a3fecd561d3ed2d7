"""The monitor per setpoint PV: what a set checks comes from the server's pushes, not a get.

Most tests run against a plain p4p server (`Server(..., isolate=True)`) whose SharedPVs count
the puts and channel connections they see, so what reached the server is asserted directly.
The forked-child test runs in a driver subprocess (a p4p server in a forking process would
hang the child): ``python test_metadata.py fork '<client conf json>'``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
import weakref
from typing import Any

import pytest
from p4p.nt import NTScalar
from p4p.server import Server
from p4p.server.thread import SharedPV

from epics_pva import Interface, InvalidInputError, NotConnectedError, PutError, SetValuesError
from epics_pva.core import _set_run as set_run

WAIT = 5.0  # s: the longest any event below is waited for


class Device:
    """A SharedPV handler that applies puts and counts puts and channel connects (server side)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.puts: list[float] = []
        self.connects = self.disconnects = 0

    def put(self, pv: SharedPV, op: Any) -> None:
        with self.lock:
            self.puts.append(float(op.value()))
            self.lock.notify_all()
        pv.post(op.value())
        op.done()

    def onFirstConnect(self, pv: SharedPV) -> None:  # noqa: N802 - p4p's handler API
        with self.lock:
            self.connects += 1
            self.lock.notify_all()

    def onLastDisconnect(self, pv: SharedPV) -> None:  # noqa: N802 - p4p's handler API
        with self.lock:
            self.disconnects += 1
            self.lock.notify_all()

    def wait(self, predicate: Any, timeout: float = WAIT) -> None:
        with self.lock:
            assert self.lock.wait_for(lambda: predicate(self), timeout), "server event not seen"


def scalar(value: float = 0.0, low: float = -10.0, high: float = 10.0) -> dict[str, Any]:
    return {"value": value, "control.limitLow": low, "control.limitHigh": high}


class Machine:
    """A p4p server on loopback with PVs given as {name: initial value or None (closed)}."""

    def __init__(self, names: dict[str, float | None]) -> None:
        self.devices = {name: Device() for name in names}
        self.pvs = {}
        for name, value in names.items():
            pv = SharedPV(nt=NTScalar("d", control=True), handler=self.devices[name])
            if value is not None:
                pv.open(scalar(value))
            self.pvs[name] = pv
        self.server = Server(providers=[self.pvs], isolate=True)

    def interface(self, **kwargs: Any) -> Interface:
        kwargs.setdefault("timeout", 2.0)
        return Interface(conf=self.server.conf(), retry_delay=0.05, **kwargs)

    def puts(self) -> dict[str, list[float]]:
        return {name: list(d.puts) for name, d in self.devices.items() if d.puts}

    def stop(self) -> None:
        for pv in self.pvs.values():
            pv.close()
        self.server.stop()


@pytest.fixture
def machine():
    made: list[Machine] = []

    def make(names: dict[str, float | None]) -> Machine:
        made.append(Machine(names))
        return made[-1]

    yield make
    for m in made:
        m.stop()


def has_limits(high: float):
    return lambda state, value: state == "connected" and value.raw["control.limitHigh"] == high


def is_value(expected: float):
    return lambda state, value: state == "connected" and float(value) == expected


def monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pva-monitors"]


# ---- limits, disconnects and first use ------------------------------------------------------

def test_a_limit_changed_on_the_server_is_enforced_by_the_next_set(machine):
    m = machine({"L:A": 0.0})
    with m.interface() as itf:
        assert itf.set_values({"L:A": 5.0})["L:A"].status == "set"
        m.pvs["L:A"].post(scalar(5.0, -1.0, 1.0))  # the IOC narrows its limits
        assert itf._monitors.wait_for("L:A", has_limits(1.0), WAIT)
        with pytest.raises(InvalidInputError, match=r"L:A: .*5.*limit") as refused:
            itf.set_values({"L:A": 5.0})
        assert type(refused.value) is InvalidInputError  # bad input, not a connection problem
        assert refused.value.results["L:A"].status == "not_attempted"
        assert refused.value.results["L:A"].reason == refused.value.problems["L:A"]
        assert itf.set_values({"L:A": 0.5})["L:A"].status == "set"  # within the new limits
        m.pvs["L:A"].post(scalar(0.5, -20.0, 20.0))  # and widens them again
        assert itf._monitors.wait_for("L:A", has_limits(20.0), WAIT)
        assert itf.set_values({"L:A": 15.0})["L:A"].status == "set"
    assert m.puts() == {"L:A": [5.0, 0.5, 15.0]}


def test_a_pv_that_disconnects_between_two_sets_is_refused_before_any_put(machine):
    m = machine({"D:A": 0.0, "D:B": 0.0})
    with m.interface(timeout=0.5) as itf:
        itf.set_values({"D:A": 1.0, "D:B": 1.0})
        m.pvs["D:B"].close()  # the PV goes away between two sets
        assert itf._monitors.wait_for("D:B", lambda state, _: state == "disconnected", WAIT)
        with pytest.raises(NotConnectedError) as refused:
            itf.set_values({"D:A": 2.0, "D:B": 2.0})
        error = refused.value
        assert isinstance(error, SetValuesError) and isinstance(error, InvalidInputError)
        assert set(error.problems) == {"D:B"}
        assert "D:B: cannot read the PV: disconnected from its server" in str(error)
        assert {pv: (r.status, r.attempts) for pv, r in error.results.items()} == {
            "D:A": ("not_attempted", 0), "D:B": ("not_attempted", 0)}
        assert "disconnected" in error.results["D:B"].reason
        assert "refused" in error.results["D:A"].reason
        assert m.puts() == {"D:A": [1.0], "D:B": [1.0]}  # nothing sent by the refused call
        m.pvs["D:B"].open(scalar(1.0))  # back: the next set waits for it to reconnect
        results = itf.set_values({"D:A": 3.0, "D:B": 3.0})
    assert all(r.status == "set" for r in results.values())
    assert m.puts() == {"D:A": [1.0, 3.0], "D:B": [1.0, 3.0]}


def test_an_unknown_pv_is_refused_with_every_pv_not_attempted(machine):
    m = machine({"U:A": 0.0})
    with m.interface(timeout=0.3) as itf:
        with pytest.raises(NotConnectedError, match="U:NONE: cannot read the PV: no reply") as refused:
            itf.set_values({"U:A": 1.0, "U:NONE": 1.0})
    assert {pv: r.status for pv, r in refused.value.results.items()} == {
        "U:A": "not_attempted", "U:NONE": "not_attempted"}
    assert "unknown PV" in refused.value.results["U:NONE"].reason
    assert m.puts() == {}


def test_new_pvs_are_subscribed_together_and_then_cost_no_round_trip(machine):
    """Both PVs are closed on the server: the set can only finish once both were opened, and
    they are opened only after the server saw both subscriptions, so the two waits overlap."""
    m = machine({"N:A": None, "N:B": None})
    itf = m.interface(timeout=WAIT)
    outcome: dict[str, Any] = {}

    def set_both() -> None:
        try:
            outcome["results"] = itf.set_values({"N:A": 1.0, "N:B": 2.0})
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc

    worker = threading.Thread(target=set_both)
    worker.start()
    try:
        for name in ("N:A", "N:B"):
            m.devices[name].wait(lambda d: d.connects == 1)
        assert worker.is_alive() and m.puts() == {}  # still waiting for both first values
        for name in ("N:A", "N:B"):
            m.pvs[name].open(scalar(0.0))
        worker.join(WAIT)
        assert not worker.is_alive()
        assert "error" not in outcome, outcome.get("error")
        assert {pv: r.status for pv, r in outcome["results"].items()} == {"N:A": "set", "N:B": "set"}
        # seen before: later sets reuse the same subscriptions, no new channel on the server
        for value in (3.0, 4.0):
            itf.set_values({"N:A": value, "N:B": value})
        assert [m.devices[n].connects for n in ("N:A", "N:B")] == [1, 1]
    finally:
        itf.close()
        worker.join(WAIT)
    assert m.puts() == {"N:A": [1.0, 3.0, 4.0], "N:B": [2.0, 3.0, 4.0]}


def test_latest_values_are_each_pvs_value_before_a_set(machine):
    m = machine({"V:A": 3.0, "V:B": -3.0})
    with m.interface() as itf:
        assert itf.latest_values(["V:A", "V:B"]) == {}  # nothing monitored before a set
        itf.set_values({"V:A": 1.0})
        assert itf._monitors.wait_for("V:A", is_value(1.0), WAIT)
        assert itf.latest_values(["V:A", "V:B"]) == {"V:A": 1.0}  # V:B was never set
        m.pvs["V:A"].post(7.0)  # someone else moves it: pushed, no read needed
        assert itf._monitors.wait_for("V:A", is_value(7.0), WAIT)
        assert itf.latest_values(["V:A"]) == {"V:A": 7.0}


def test_a_set_beginning_as_the_monitor_thread_takes_an_update_sees_that_update(machine):
    """The monitors' thread takes pending updates once a set ends; a set beginning that moment
    (holding the cache's lock, as its input check does) must see them: it checks, and
    journals as the value before, the PV's value. Before, the thread popped the update and
    then waited for the lock to hand it over: the set saw the PV no longer pending and read
    the value from before the last set (seen as a journal whose put 'did not change the
    value' in the calibration tutorial)."""
    m = machine({"V:A": 3.0})
    with m.interface() as itf:
        itf.set_values({"V:A": 1.0})
        assert itf._monitors.wait_for("V:A", is_value(1.0), WAIT)
        cache = itf._monitors
        with cache._lock:  # a set's check holds it
            m.pvs["V:A"].post(2.0)  # the update the monitor thread will take
            monitor = cache._entries["V:A"].subscription
            deadline = time.monotonic() + WAIT
            while not monitor.pending and time.monotonic() < deadline:
                time.sleep(0.005)
            assert monitor.pending, "the update did not arrive"
            time.sleep(0.3)  # the thread's turn (QUIET is 0.02 s): it must not pop it from under us
            assert cache.latest(["V:A"]) == {"V:A": 2.0}


# ---- read-only, unexpected errors ------------------------------------------------------------

@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "in_order"])
def test_read_only_mode_still_sends_nothing(machine, parallel):
    m = machine({"R:A": 0.0, "R:B": 0.0})
    with m.interface(read_only=True, parallel=parallel) as itf:
        results = itf.set_values({"R:A": 1.0, "R:B": 2.0})
        assert {pv: r.status for pv, r in results.items()} == {"R:A": "read_only", "R:B": "read_only"}
        with pytest.raises(InvalidInputError, match="R:B"):  # still checked against the limits
            itf.set_values({"R:A": 1.0, "R:B": 20.0})
        assert itf.latest_values(["R:A", "R:B"]) == {"R:A": 0.0, "R:B": 0.0}
    assert m.puts() == {}


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "in_order"])
def test_an_unexpected_exception_from_a_put_makes_that_pv_failed(machine, monkeypatch, parallel):
    m = machine({"X:A": 0.0, "X:B": 0.0})

    def broken_put_wave(*args, **kwargs):
        raise RuntimeError("boom")

    with m.interface(parallel=parallel) as itf:
        itf.set_values({"X:A": 1.0, "X:B": 1.0})  # monitors open; now the put path breaks
        monkeypatch.setattr(set_run, "put_wave", broken_put_wave)
        with pytest.raises(SetValuesError) as caught:
            itf.set_values({"X:A": 2.0, "X:B": 2.0})
    results = caught.value.results
    assert results["X:A"].status == "failed"
    assert isinstance(results["X:A"].error, PutError)
    assert "RuntimeError: boom" in str(results["X:A"].error)
    assert results["X:B"].status == ("failed" if parallel else "not_attempted")
    assert m.puts() == {"X:A": [1.0], "X:B": [1.0]}


# ---- bounded and clean -----------------------------------------------------------------------

def subscription_of(itf: Interface, pv: str) -> weakref.ref:
    """A weak reference to the p4p subscription the interface holds for `pv`."""
    return weakref.ref(itf._monitors._entries[pv].subscription)


def gone(ref: weakref.ref, timeout: float = WAIT) -> bool:
    """True once the subscription was closed and nothing holds it any more (an update of it
    already queued to the monitors' thread holds it until that thread has run it)."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        if ref() is None or time.monotonic() > deadline:
            return ref() is None
        time.sleep(0.02)


def test_the_least_recently_set_pv_beyond_monitor_limit_is_unsubscribed(machine):
    m = machine({"C:A": 0.0, "C:B": 0.0, "C:C": 0.0})
    with m.interface(monitor_limit=2) as itf:
        itf.set_values({"C:A": 1.0})
        itf.set_values({"C:B": 1.0})
        b = subscription_of(itf, "C:B")
        itf.set_values({"C:A": 2.0})  # A is now the most recent; B the least
        itf.set_values({"C:C": 1.0})
        assert len(itf._monitors) == 2 and gone(b)
        assert [itf._monitors.state(pv) for pv in ("C:A", "C:B", "C:C")] == [
            "connected", "unmonitored", "connected"]
        itf.set_values({"C:B": 2.0})  # a dropped PV is subscribed again on its next set
        assert [itf._monitors.state(pv) for pv in ("C:A", "C:B", "C:C")] == [
            "unmonitored", "connected", "connected"]  # and A, now the least recent, dropped
    assert m.puts() == {"C:A": [1.0, 2.0], "C:B": [1.0, 2.0], "C:C": [1.0]}


def test_a_pv_not_set_for_monitor_idle_seconds_is_unsubscribed(machine):
    m = machine({"I:A": 0.0, "I:B": 0.0})
    now = [1000.0]
    with m.interface(monitor_idle=60.0) as itf:
        itf._monitors._clock = lambda: now[0]  # the cache's clock, in seconds
        itf.set_values({"I:A": 1.0, "I:B": 1.0})
        a = subscription_of(itf, "I:A")
        now[0] += 30.0
        itf.set_values({"I:B": 2.0})
        now[0] += 45.0  # A idle for 75 s, B for 45 s
        assert itf._monitors.state("I:A") == "connected"  # dropped lazily, at the next set
        itf.set_values({"I:B": 3.0})
        assert itf._monitors.state("I:A") == "unmonitored" and gone(a)
        assert itf._monitors.state("I:B") == "connected"
    assert m.puts() == {"I:A": [1.0], "I:B": [1.0, 2.0, 3.0]}


def test_no_subscription_or_thread_outlives_close(machine):
    m = machine({"K:A": 0.0, "K:B": 0.0})
    before = set(threading.enumerate())
    itf = m.interface()
    for round_ in range(2):  # and the interface works again after close()
        itf.set_values({"K:A": float(round_), "K:B": float(round_)})
        subscriptions = [subscription_of(itf, pv) for pv in ("K:A", "K:B")]
        assert len(monitor_threads()) == 1
        itf.close()
        for name in ("K:A", "K:B"):  # the server saw each subscription's channel close
            m.devices[name].wait(lambda d, n=round_ + 1: d.disconnects == n)
        assert len(itf._monitors) == 0 and monitor_threads() == []
        assert all(gone(ref) for ref in subscriptions)
    def left() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.name.startswith(("pva", "epics"))
                and t.is_alive()]

    # the process's releaser threads (transport/_gate.py) end a moment after their last release
    deadline = time.monotonic() + 5.0
    while left() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert left() == []


def test_close_under_a_waiting_check_fails_it_at_once_as_closed(machine):
    m = machine({"W:A": None})  # never opened: the check waits for its first value
    itf = m.interface(timeout=30.0)
    outcome: dict[str, Any] = {}

    def set_it() -> None:
        try:
            itf.set_values({"W:A": 1.0})
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc

    worker = threading.Thread(target=set_it)
    worker.start()
    m.devices["W:A"].wait(lambda d: d.connects == 1)  # the check is waiting now
    itf.close()
    worker.join(WAIT)
    assert not worker.is_alive(), "the check kept waiting on a closed context"
    error = outcome["error"]
    assert isinstance(error, NotConnectedError)
    assert "context was closed" in error.problems["W:A"]
    assert error.results["W:A"].status == "not_attempted"
    assert m.puts() == {}


# ---- a forked child ------------------------------------------------------------------------

def _drive_fork(conf: dict[str, str]) -> dict[str, Any]:
    """Parent sets (monitors and their thread running), forks; the child sets; the parent again."""
    itf = Interface(conf=conf, timeout=2.0, retry_delay=0.1)
    report: dict[str, Any] = {"parent_first": itf.set_values({"F:A": 1.0})["F:A"].status}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh context, subscriptions and thread of its own
        try:
            child = {"status": itf.set_values({"F:A": 2.0})["F:A"].status}
            child["limits_checked"] = False
            try:
                itf.set_values({"F:A": 50.0})
            except InvalidInputError:
                child["limits_checked"] = True
            child["monitored"] = itf._monitors.state("F:A")
            itf.close()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            child = {"error": repr(exc)}
        os.write(write, json.dumps(child).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report["child"] = json.loads(pipe.read() or '{"error": "no report"}')
    os.waitpid(pid, 0)
    report["parent_again"] = itf.set_values({"F:A": 3.0})["F:A"].status
    itf.close()
    return report


def test_a_forked_child_sets_through_its_own_monitors(machine):
    m = machine({"F:A": 0.0})
    done = subprocess.run([sys.executable, __file__, "fork", json.dumps(m.server.conf())],
                          capture_output=True, text=True, timeout=40)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in report["child"], report["child"]["error"]
    assert report == {"parent_first": "set", "parent_again": "set",
                      "child": {"status": "set", "limits_checked": True, "monitored": "connected"}}
    assert m.puts() == {"F:A": [1.0, 2.0, 3.0]}


if __name__ == "__main__":
    if sys.argv[1] == "fork":
        print(json.dumps(_drive_fork(json.loads(sys.argv[2]))))


def _cpu_seconds(thread: threading.Thread) -> float:
    """CPU time (user + system) a thread has used, from /proc (Linux)."""
    fields = open(f"/proc/self/task/{thread.native_id}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads a thread's CPU time from /proc")
def test_the_monitor_thread_waits_while_a_set_runs_with_updates_pending(machine):
    # the set's own put makes an update of its PV's monitor, left pending while the set runs;
    # the monitors' thread must wait for the set's end, not poll for it (it once spun, holding
    # the GIL from the validations)
    m = machine({"M:A": 0.0})
    with m.interface() as itf:
        itf.set_values({"M:A": 1.0})  # subscribes M:A; the monitors' thread starts
        thread = next(t for t in threading.enumerate() if t.name == "pva-monitors")
        before = _cpu_seconds(thread)
        itf.set_values({"M:A": 2.0}, {"M:A": lambda **_: time.sleep(1.5)})
        used = _cpu_seconds(thread) - before
    assert used < 0.2, f"the monitors' thread used {used:.2f} s of CPU during a 1.5 s set"
