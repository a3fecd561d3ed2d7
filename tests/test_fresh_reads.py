"""fresh_reads: a read after a validated set gives a value the machine computed after the set.

An observable recomputed only at its scan (2 Hz here, the soft IOC's `scan` key; a calc record
at SCAN ".5 second" on EPICS base) still holds its pre-settle value right after a set whose
readback validation finished: read at once, it is stale; with fresh_reads it never is.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from functools import partial

import pytest

from epics_pva import Interface, ReadError, average_fresh, first_after, wait_for_readback
from softioc.epics_base import EpicsBaseIOC

STEPS = 20
TOLERANCE = 1e-3  # the observable's noise is 1e-6: a value off by more was computed before the set

CONFIG = {
    "ioc": {"seed": 3, "update_rate": 20.0},
    "setpoint": [
        {"name": "F:Q:SET", "readback": "F:Q:RBV", "limits": [-10, 10], "lag": "none", "noise": 0.0,
         "initial": 0.0},
        {"name": "F:SLOW:SET", "readback": "F:SLOW:RBV", "lag": "none", "noise": 0.0},
    ],
    "observable": [
        {"name": "F:OBJ", "expression": "2 * q", "inputs": {"q": "F:Q:RBV"}, "noise": 1e-6, "scan": 0.5},
        {"name": "F:STILL", "expression": "s", "inputs": {"s": "F:SLOW:RBV"}},
    ],
}


@pytest.fixture
def softioc_config():
    return CONFIG


def targets() -> list[float]:
    """STEPS setpoints, each at least 0.5 from the one before."""
    return [round(((i * 7) % 19) * 0.5 - 4.5, 3) for i in range(1, STEPS + 1)]


def run_steps(interface: Interface, set_pv: str, readback_pv: str, objective: str) -> list[tuple[float, float]]:
    """STEPS validated set-then-read steps: [(target, objective read)]."""
    check = {set_pv: partial(wait_for_readback, readback_pv=readback_pv, tolerance=1e-6, count_down=5.0,
                             offset=0.0)}
    interface.get_values([objective])  # a routine reads its objective at the start point first
    seen = []
    for target in targets():
        interface.set_values({set_pv: target}, configs=check)
        seen.append((target, interface.get_values([objective])[objective]))
    return seen


def stale(seen: list[tuple[float, float]]) -> int:
    return sum(abs(value - 2 * target) > TOLERANCE for target, value in seen)


def test_without_fresh_reads_a_scanned_observable_reads_stale(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False) as interface:
        seen = run_steps(interface, "F:Q:SET", "F:Q:RBV", "F:OBJ")
    assert stale(seen) >= STEPS // 2, seen  # each read is before the next scan ~80 % of the time


def test_with_fresh_reads_no_read_is_stale(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False, fresh_reads=True) as interface:
        seen = run_steps(interface, "F:Q:SET", "F:Q:RBV", "F:OBJ")
        assert len(interface._fresh) == 1  # one monitor, kept open across the steps
    assert stale(seen) == 0, seen


def test_the_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("EPICS_PVA_INTERFACE_FRESH_READS", "yes")
    assert Interface().fresh_reads is True
    assert Interface(use_env=False).fresh_reads is False


def test_a_pv_that_does_not_update_is_a_read_error_naming_it(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False, fresh_reads=True, timeout=0.6) as interface:
        assert interface.get_values(["F:STILL", "F:OBJ"])  # before any set: read as usual
        interface.set_values({"F:Q:SET": 1.25})
        start = time.monotonic()
        with pytest.raises(ReadError) as raised:
            interface.get_values(["F:OBJ", "F:STILL"])
        assert time.monotonic() - start < 1.5  # both waited at once, each at most the timeout
        assert list(raised.value.failures) == ["F:STILL"]
        # the wait it had, not what was left of it once the others' shared wait ended
        assert re.search(r"F:STILL: no update since the set within 0\.6 s", str(raised.value))


@pytest.mark.parametrize("read_function", [None, partial(average_fresh, n=2)], ids=["latest", "average"])
def test_a_close_under_a_fresh_read_ends_it_at_once_as_closed(soft_ioc, until, read_function):
    """A read waiting for news after a set fails as closed when close() comes: not as a PV
    that did not update (nothing can be concluded of it), and without waiting its timeout."""
    with Interface(conf=soft_ioc.client_conf(), use_env=False, fresh_reads=True, timeout=30.0) as interface:
        interface.set_values({"F:Q:SET": 0.5})
        configs = {"F:STILL": read_function}
        outcome: list[BaseException] = []

        def read() -> None:
            try:
                interface.get_values(["F:STILL"], configs=configs)
            except BaseException as exc:  # noqa: BLE001 - what the reader saw, for the test
                outcome.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        until(lambda: len(interface._fresh) == 1, 10.0, "the read's monitor open")  # then it waits
        time.sleep(0.2)
        interface.close()
        reader.join(10.0)
        assert not reader.is_alive()  # F:STILL never updates: only the close ended the wait
    assert len(outcome) == 1 and isinstance(outcome[0], ReadError), outcome
    assert "client context was closed while reading F:STILL" in outcome[0].failures["F:STILL"]


def test_a_pv_the_set_wrote_is_read_as_usual(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False, fresh_reads=True, timeout=1.0) as interface:
        interface.set_values({"F:SLOW:SET": 2.5})
        assert interface.get_values(["F:SLOW:SET"]) == {"F:SLOW:SET": 2.5}


def test_no_fresh_wait_before_any_set_or_in_read_only(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False, fresh_reads=True, timeout=0.5,
                   read_only=True, honour_switches=False) as interface:
        interface.get_values(["F:STILL"])
        interface.set_values({"F:Q:SET": 3.0})  # nothing written: nothing to wait for
        assert interface.get_values(["F:STILL"]) == {"F:STILL": 0.0}


def test_average_fresh_averages_the_next_updates_after_the_set(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False, fresh_reads=True) as interface:
        interface.get_values(["F:OBJ"])
        interface.set_values({"F:Q:SET": 1.5}, configs={
            "F:Q:SET": partial(wait_for_readback, readback_pv="F:Q:RBV", tolerance=1e-6, count_down=5.0,
                               offset=0.0)})
        start = time.monotonic()
        got = interface.get_readings(["F:OBJ"], configs={"F:OBJ": partial(average_fresh, n=3)})["F:OBJ"]
        took = time.monotonic() - start
    assert math.isclose(got.value, 3.0, abs_tol=TOLERANCE)
    assert 0.9 <= took <= 2.0  # three scans at 2 Hz: 1 to 1.5 s


def test_first_after_waits_that_long_after_the_set(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False, fresh_reads=True) as interface:
        interface.get_values(["F:OBJ"])
        interface.set_values({"F:Q:SET": -1.0})
        start = time.monotonic()
        got = interface.get_values(["F:OBJ"], configs={"F:OBJ": partial(first_after, seconds=1.2)})
        took = time.monotonic() - start
    assert math.isclose(got["F:OBJ"], -2.0, abs_tol=TOLERANCE)
    assert 1.2 <= took <= 1.9  # 1.2 s, then up to one scan period


def test_read_functions_check_their_arguments(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False, fresh_reads=True) as interface:
        interface.set_values({"F:Q:SET": 0.5})
        with pytest.raises(ReadError, match="average_fresh n"):
            interface.get_values(["F:OBJ"], configs={"F:OBJ": partial(average_fresh, n=0)})
        with pytest.raises(TypeError, match="F:OBJ"):
            interface.get_values(["F:OBJ"], configs={"F:OBJ": 3})


def test_monitors_are_bounded(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False, fresh_reads=True, monitor_limit=1) as interface:
        interface.get_values(["F:OBJ"])
        interface.get_values(["F:STILL"])
        assert len(interface._fresh) == 1
        interface.close()
        assert len(interface._fresh) == 0


def test_reads_from_threads_share_the_monitors(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False, fresh_reads=True) as interface:
        interface.get_values(["F:OBJ"])
        interface.set_values({"F:Q:SET": 2.0})
        found = []
        threads = [threading.Thread(target=lambda: found.append(interface.get_value("F:OBJ"))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(found) == 4 and all(math.isclose(v, 4.0, abs_tol=TOLERANCE) for v in found)


# ---- EPICS base: a calc record at SCAN ".5 second" ---------------------------------------------

DB = """
record(ao, "FB:Q:SET") {
    field(DRVL, "-10")
    field(DRVH, "10")
    field(VAL, "0")
    field(PINI, "YES")
}
record(calc, "FB:Q:RBV") {
    field(SCAN, ".1 second")
    field(INPA, "FB:Q:SET NPP")
    field(CALC, "A")
}
record(calc, "FB:OBJ") {
    field(SCAN, ".5 second")
    field(INPA, "FB:Q:RBV NPP")
    field(CALC, "2*A")
    field(MDEL, "-1")
}
"""


@pytest.fixture(scope="module")
def base_ioc(tmp_path_factory):
    if not sys.platform.startswith("linux"):
        pytest.skip("EPICS base's softIoc is run on Linux here")
    db = tmp_path_factory.mktemp("fresh") / "fresh.db"
    db.write_text(DB)
    ioc = EpicsBaseIOC(db=db, macros={}, ready_pv="FB:Q:SET", scanned_pv="FB:OBJ").start()
    yield ioc
    ioc.stop()


def test_epics_base_calc_reads_stale_without_fresh_reads(base_ioc):
    with Interface(conf=base_ioc.client_conf(), use_env=False) as interface:
        seen = run_steps(interface, "FB:Q:SET", "FB:Q:RBV", "FB:OBJ")
    assert stale(seen) >= STEPS // 2, seen


def test_epics_base_calc_never_reads_stale_with_fresh_reads(base_ioc):
    with Interface(conf=base_ioc.client_conf(), use_env=False, fresh_reads=True) as interface:
        seen = run_steps(interface, "FB:Q:SET", "FB:Q:RBV", "FB:OBJ")
    assert stale(seen) == 0, seen


def intervals(conf, pv: str, seconds: float = 3.2) -> list[float]:
    """The seconds between a PV's monitor updates over `seconds` (the first, its current value, left out)."""
    from p4p.client.thread import Context

    arrivals: list[float] = []
    with Context("pva", conf=conf, useenv=False) as ctx:
        subscription = ctx.monitor(f"{pv}", lambda _value: arrivals.append(time.monotonic()))
        time.sleep(seconds)
        subscription.close()
    return [b - a for a, b in zip(arrivals[1:], arrivals[2:], strict=False)]


def test_the_soft_iocs_scan_updates_as_a_calc_record_of_the_same_scan(soft_ioc, base_ioc):
    ours, base = intervals(soft_ioc.client_conf(), "F:OBJ"), intervals(base_ioc.client_conf(), "FB:OBJ")
    assert len(ours) >= 4 and len(base) >= 4
    for found in (ours, base):
        found.sort()
        assert 0.4 <= found[len(found) // 2] <= 0.6, (ours, base)  # every half second, both


def test_a_read_function_makes_its_pv_fresh_without_the_setting(soft_ioc):
    with Interface(conf=soft_ioc.client_conf(), use_env=False, timeout=0.6) as interface:
        interface.get_values(["F:OBJ", "F:STILL"])
        interface.set_values({"F:Q:SET": 4.5})
        got = interface.get_values(["F:OBJ", "F:STILL"], configs={"F:OBJ": partial(first_after, seconds=0)})
        assert math.isclose(got["F:OBJ"], 9.0, abs_tol=TOLERANCE)
        assert got["F:STILL"] == 0.0  # no read function, no setting: read as usual, no wait
        assert len(interface._fresh) == 1
