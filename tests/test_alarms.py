"""The alarm contract: INVALID is no measurement, MAJOR/MINOR are returned and logged once per
change, get_readings reports the server's alarm and time stamp, wait_for_readback never settles
on INVALID. Over PVAccess against p4p servers on loopback whose posts carry alarms."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
from functools import partial

import pytest
from p4p import Type, Value
from p4p.client.thread import Context
from p4p.nt import NTScalar
from p4p.server import Server
from p4p.server.thread import SharedPV

from epics_pva import (
    Interface,
    InvalidInputError,
    ReadError,
    Reading,
    SetValuesError,
    ValidationError,
    wait_for_readback,
)
from epics_pva.core import Alarm, AlarmMemory

INVALID, MAJOR, MINOR = 3, 2, 1
STAMP = 1_700_000_000.25  # a server time stamp no client clock would give


def scalar(value: float = 0.0) -> SharedPV:
    """A double PV publishing what an ai/ao does: value, alarm, timeStamp, display, control, valueAlarm."""
    return SharedPV(nt=NTScalar("d", control=True, display=True, valueAlarm=True), initial=value)


class Echo:
    """A setpoint's put handler: the PV takes the value and the put completes."""

    def put(self, pv: SharedPV, op) -> None:
        pv.post(op.value())
        op.done()


@pytest.fixture
def pvs():
    """The served PVs: RE:GOOD, RE:DEAD (INVALID UDF), RE:HOT, RE:RBV with RE:SET, RE:BARE (no alarm field)."""
    bare_type = Type([("value", "d")])
    served = {
        "RE:GOOD": scalar(1.5),
        "RE:DEAD": scalar(),
        "RE:HOT": scalar(4.0),
        "RE:RBV": scalar(),
        "RE:SET": SharedPV(nt=NTScalar("d"), initial=0.0, handler=Echo()),
        "RE:BARE": SharedPV(initial=Value(bare_type, {"value": 2.5})),
    }
    served["RE:DEAD"].post(0.0, severity=INVALID, message="UDF")
    return served


@pytest.fixture
def server(pvs):
    with Server(providers=[pvs], isolate=True) as srv:
        yield srv


@pytest.fixture
def interface(server):
    with Interface(conf=server.conf(), timeout=0.5) as itf:
        yield itf


def post_alarm(pv: SharedPV, value: float, severity: int, message: str, status: int = 0, **kws) -> None:
    pv.post({"value": value, "alarm": {"severity": severity, "status": status, "message": message}}, **kws)


def alarm_records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "epics_pva.interface" and r.levelno == logging.WARNING]


# ---- get_values ---------------------------------------------------------------------------


def test_an_invalid_pv_is_a_read_failure_naming_pv_severity_and_message(interface):
    with pytest.raises(ReadError) as info:
        interface.get_values(["RE:GOOD", "RE:DEAD"])
    assert str(info.value) == "Could not read 1 of 2 PV(s):\n  RE:DEAD: alarm INVALID (UDF)"
    assert info.value.failures == {"RE:DEAD": "alarm INVALID (UDF)"}
    assert info.value.values == {"RE:GOOD": 1.5}


def test_an_invalid_pv_fails_get_value_too(interface):
    with pytest.raises(ReadError, match=r"RE:DEAD: alarm INVALID \(UDF\)"):
        interface.get_value("RE:DEAD")


def test_an_invalid_alarm_without_message_still_says_invalid(interface, pvs):
    post_alarm(pvs["RE:DEAD"], 7.0, INVALID, "")
    with pytest.raises(ReadError, match=r"RE:DEAD: alarm INVALID \(no message\)"):
        interface.get_values(["RE:DEAD"])


def test_with_nan_on_read_error_an_invalid_pv_reads_nan_and_is_logged(server, caplog):
    with Interface(conf=server.conf(), timeout=0.5, nan_on_read_error=True) as itf:
        values = itf.get_values(["RE:DEAD", "RE:GOOD"])
    assert list(values) == ["RE:DEAD", "RE:GOOD"]
    assert math.isnan(values["RE:DEAD"]) and values["RE:GOOD"] == 1.5
    assert any("RE:DEAD: alarm INVALID (UDF)" in m and "NaN" in m for m in alarm_records(caplog))


def test_the_pv_recovering_from_invalid_reads_again(interface, pvs):
    with pytest.raises(ReadError):
        interface.get_values(["RE:DEAD"])
    pvs["RE:DEAD"].post(3.25, severity=0, message="")
    assert interface.get_values(["RE:DEAD"]) == {"RE:DEAD": 3.25}


@pytest.mark.parametrize("severity, name, message", [(MAJOR, "MAJOR", "HIHI"), (MINOR, "MINOR", "HIGH")])
def test_major_and_minor_values_are_returned_and_logged(interface, pvs, caplog, severity, name, message):
    post_alarm(pvs["RE:HOT"], 5.0, severity, message)
    with caplog.at_level(logging.WARNING, logger="epics_pva.interface"):
        assert interface.get_values(["RE:HOT", "RE:GOOD"]) == {"RE:HOT": 5.0, "RE:GOOD": 1.5}
    assert alarm_records(caplog) == [f"RE:HOT = 5.0: alarm {name} ({message})"]


def test_an_alarm_is_logged_once_per_change_not_per_read(interface, pvs, caplog):
    hot = pvs["RE:HOT"]
    steps = [  # (severity, message, reads): the log must follow the changes only
        (MAJOR, "HIHI", 3), (MAJOR, "HIHI", 2), (MINOR, "HIGH", 3), (0, "", 2), (MAJOR, "HIHI", 1),
        (MAJOR, "LOLO", 2),
    ]
    with caplog.at_level(logging.INFO, logger="epics_pva.interface"):
        for number, (severity, message, reads) in enumerate(steps):
            post_alarm(hot, float(number), severity, message)
            for _ in range(reads):
                assert interface.get_values(["RE:HOT"]) == {"RE:HOT": float(number)}
    warnings = alarm_records(caplog)
    assert warnings == ["RE:HOT = 0.0: alarm MAJOR (HIHI)", "RE:HOT = 2.0: alarm MINOR (HIGH)",
                        "RE:HOT = 4.0: alarm MAJOR (HIHI)", "RE:HOT = 5.0: alarm MAJOR (LOLO)"]
    cleared = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO
               and r.name == "epics_pva.interface" and "cleared" in r.getMessage()]
    assert cleared == ["RE:HOT: alarm cleared"]


def test_each_interface_has_its_own_memory_of_alarms(server, pvs, caplog):
    post_alarm(pvs["RE:HOT"], 5.0, MAJOR, "HIHI")
    with caplog.at_level(logging.WARNING, logger="epics_pva.interface"):
        for _ in range(2):
            with Interface(conf=server.conf(), timeout=0.5) as itf:
                itf.get_values(["RE:HOT"])
                itf.get_values(["RE:HOT"])
    assert alarm_records(caplog) == ["RE:HOT = 5.0: alarm MAJOR (HIHI)"] * 2


def test_threads_reading_one_alarmed_pv_log_its_alarm_once(interface, pvs, caplog):
    post_alarm(pvs["RE:HOT"], 5.0, MAJOR, "HIHI")
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def read() -> None:
        try:
            start.wait(5)
            for _ in range(5):
                assert interface.get_values(["RE:HOT"]) == {"RE:HOT": 5.0}
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    with caplog.at_level(logging.WARNING, logger="epics_pva.interface"):
        threads = [threading.Thread(target=read) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not errors and not any(t.is_alive() for t in threads)
    assert alarm_records(caplog) == ["RE:HOT = 5.0: alarm MAJOR (HIHI)"]


def test_a_pv_without_an_alarm_field_has_no_alarm(interface, caplog):
    with caplog.at_level(logging.WARNING, logger="epics_pva.interface"):
        assert interface.get_values(["RE:BARE"]) == {"RE:BARE": 2.5}
        reading = interface.get_readings(["RE:BARE"])["RE:BARE"]
    assert (reading.value, reading.severity, reading.status, reading.message) == (2.5, 0, 0, "")
    assert reading.ok and math.isnan(reading.timestamp)  # no timeStamp field either
    assert alarm_records(caplog) == []


def test_the_memory_of_alarms_is_bounded():
    memory = AlarmMemory(size=2)
    major = Alarm(MAJOR, 0, "HIHI")
    assert memory.changed("A", major) and memory.changed("B", major)
    assert not memory.changed("A", major)  # A is now the most recent
    assert memory.changed("C", major) and len(memory) == 2  # B, the least recent, is forgotten
    assert not memory.changed("A", major) and memory.changed("B", major)
    assert not memory.changed("D", Alarm())  # a first sight in no alarm is no change


FORK_WHILE_LOCKED = """
import os, sys, threading, time
from epics_pva.core import Alarm, AlarmMemory
memory = AlarmMemory()
held, release = threading.Event(), threading.Event()
def hold():
    with memory._lock:
        held.set()
        release.wait(30)
threading.Thread(target=hold, daemon=True).start()
assert held.wait(10)
pid = os.fork()
if pid == 0:
    os._exit(0 if memory.changed("A", Alarm(2, 0, "HIHI")) else 1)
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        release.set()
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.01)
os.kill(pid, 9)
os.waitpid(pid, 0)
sys.exit("the forked child hung on the lock")
"""


def test_the_memory_of_alarms_works_in_a_child_forked_while_its_lock_was_held():
    done = subprocess.run([sys.executable, "-c", FORK_WHILE_LOCKED], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


# ---- get_readings -------------------------------------------------------------------------


def test_get_readings_reports_value_alarm_and_the_servers_time_stamp(interface, pvs):
    post_alarm(pvs["RE:HOT"], 5.0, MAJOR, "HIHI", status=3, timestamp=STAMP)
    readings = interface.get_readings(["RE:HOT", "RE:GOOD"])
    assert list(readings) == ["RE:HOT", "RE:GOOD"]
    hot = readings["RE:HOT"]
    assert isinstance(hot, Reading)
    assert (hot.value, hot.severity, hot.status, hot.message) == (5.0, MAJOR, 3, "HIHI")
    assert hot.timestamp == pytest.approx(STAMP, abs=1e-6) and hot.ok
    good = readings["RE:GOOD"]
    assert (good.value, good.severity, good.message, good.ok) == (1.5, 0, "", True)
    with pytest.raises(AttributeError):
        hot.value = 1.0  # frozen


def test_get_readings_reports_an_invalid_value_without_refusing_it(interface, pvs):
    post_alarm(pvs["RE:DEAD"], 0.5, INVALID, "LINK", status=4, timestamp=STAMP + 1)
    dead = interface.get_readings(["RE:DEAD"])["RE:DEAD"]
    assert (dead.value, dead.severity, dead.status, dead.message) == (0.5, INVALID, 4, "LINK")
    assert dead.timestamp == pytest.approx(STAMP + 1, abs=1e-6) and not dead.ok


def test_get_readings_raises_for_an_unreadable_pv(interface):
    with pytest.raises(ReadError) as info:
        interface.get_readings(["RE:GOOD", "RE:NOSUCH"])
    assert list(info.value.failures) == ["RE:NOSUCH"]
    assert "no reply within 0.5 s" in info.value.failures["RE:NOSUCH"]
    assert info.value.values["RE:GOOD"].value == 1.5


def test_get_readings_with_nan_on_read_error_gives_an_invalid_nan_reading(server, caplog):
    with Interface(conf=server.conf(), timeout=0.5, nan_on_read_error=True) as itf:
        readings = itf.get_readings(["RE:NOSUCH", "RE:GOOD"])
    assert list(readings) == ["RE:NOSUCH", "RE:GOOD"]
    lost = readings["RE:NOSUCH"]
    assert math.isnan(lost.value) and math.isnan(lost.timestamp) and not lost.ok
    assert (lost.severity, lost.status) == (INVALID, 7) and "no reply within 0.5 s" in lost.message
    assert readings["RE:GOOD"].value == 1.5
    assert any("RE:NOSUCH" in m for m in alarm_records(caplog))


@pytest.mark.parametrize("names, problem", [
    ("RE:GOOD", "not one string"),
    (["RE:GOOD", "RE:GOOD"], "more than once"),
    (["RE:GOOD", ""], "empty PV name"),
    (5, "give a list of PV names"),
])
def test_get_readings_checks_names_like_get_values(interface, names, problem):
    for read in (interface.get_readings, interface.get_values):
        with pytest.raises(InvalidInputError, match=problem):
            read(names)


def test_get_readings_of_nothing_is_empty(interface):
    assert interface.get_readings([]) == {}


# ---- wait_for_readback --------------------------------------------------------------------


class AlarmSpyContext(Context):
    """A real p4p context that signals once a wait's monitor callback has received an INVALID update."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.saw_invalid = threading.Event()


@pytest.fixture
def context(server, monkeypatch):
    from epics_pva.core import _readback
    from epics_pva.transport import Monitor

    ctx = AlarmSpyContext("pva", conf=server.conf(), useenv=False)

    def spied(context, name, cb, *args, **kwargs):
        def spy(update):
            cb(update)
            if getattr(update, "severity", 0) >= INVALID:
                ctx.saw_invalid.set()
        return Monitor(context, name, spy, *args, **kwargs)

    monkeypatch.setattr(_readback, "Monitor", spied)
    yield ctx
    ctx.close()


def wait(ctx, value=1.0, tolerance=0.01, count_down=5.0):
    return wait_for_readback(set_pv="RE:SET", set_value=value, readback_pv="RE:RBV", tolerance=tolerance,
                             count_down=count_down, offset=0.0, context=ctx, timeout=1.0)


def test_an_invalid_readback_on_target_is_never_taken_as_settled(context, pvs):
    post_alarm(pvs["RE:RBV"], 3.0, INVALID, "LINK")
    with pytest.raises(ValueError) as info:
        wait(context, 3.0, count_down=0.5)
    assert context.saw_invalid.is_set()
    assert str(info.value) == (
        "PV RE:SET: readback RE:RBV: last readback 3 was in alarm INVALID (LINK), so not taken "
        "as settled (expected 3, tolerance 0.01; time limit 0.5 s)")


def test_an_invalid_readback_off_target_says_it_was_invalid(context, pvs):
    post_alarm(pvs["RE:RBV"], 0.0, INVALID, "UDF")
    with pytest.raises(ValueError, match=r"last readback 0 was in alarm INVALID \(UDF\)"):
        wait(context, 3.0, count_down=0.3)


def test_the_wait_settles_on_the_first_valid_update_after_invalid_ones(context, pvs):
    rbv = pvs["RE:RBV"]
    post_alarm(rbv, 1.0, INVALID, "LINK")
    result: list = []
    waiter = threading.Thread(target=lambda: result.append(wait(context, 1.0, count_down=10.0)))
    waiter.start()
    try:
        assert context.saw_invalid.wait(5), "the wait never received the INVALID update"
        post_alarm(rbv, 1.0, INVALID, "LINK")  # a second INVALID update on target: still not settled
        post_alarm(rbv, 1.005, MINOR, "HIGH")  # valid (MINOR is a measurement) and within tolerance
    finally:
        waiter.join(10)
    assert not waiter.is_alive() and result == [1.005]


def test_a_major_readback_on_target_settles(context, pvs):
    post_alarm(pvs["RE:RBV"], 2.0, MAJOR, "HIHI")
    assert wait(context, 2.0, count_down=2.0) == 2.0


def test_a_set_validated_on_an_invalid_readback_fails_saying_so(interface, pvs):
    post_alarm(pvs["RE:RBV"], 4.0, INVALID, "LINK")
    configs = {"RE:SET": partial(wait_for_readback, readback_pv="RE:RBV", tolerance=0.05,
                                 count_down=0.4, offset=0)}
    with pytest.raises(SetValuesError) as info:
        interface.set_values({"RE:SET": 4.0}, configs=configs)
    error = info.value.results["RE:SET"].error
    assert isinstance(error, ValidationError)
    assert "last readback 4 was in alarm INVALID (LINK)" in str(info.value)
    with Context("pva", conf=interface.conf, useenv=False) as ctx:
        assert ctx.get("RE:SET") == 4.0  # the put itself reached the server


# ---- against EPICS base's softIoc (QSRV2): real records raising real alarms -----------------

BASE = "BASE:"  # the prefix of softioc/examples/epics_base.db in the epics_base_ioc fixture
EPICS_EPOCH = 631_152_000.0  # 1990-01-01 UTC: the time stamp of a record never processed

needs_linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="the EPICS base IOC fixture reads /proc (Linux)")


@pytest.fixture
def base(epics_base_ioc):
    with Interface(conf=epics_base_ioc.client_conf(), timeout=5.0) as itf:
        yield itf


@pytest.fixture
def base_ctx(epics_base_ioc, monitor):
    """A p4p client of the IOC, returned once DEAD:RBV has been scanned (until then it is UDF)."""
    ctx = Context("pva", conf=epics_base_ioc.client_conf(), useenv=False)
    monitor(ctx, BASE + "DEAD:RBV").wait_value(lambda v: v.raw["alarm.message"] == "LINK", timeout=10)
    yield ctx
    ctx.close()


@needs_linux
def test_base_a_never_processed_ai_and_its_ms_linked_readback_fail_to_read(base, base_ctx):
    with pytest.raises(ReadError) as info:
        base.get_values([BASE + "TEMP", BASE + "DEAD", BASE + "DEAD:RBV"])
    assert info.value.failures == {BASE + "DEAD": "alarm INVALID (UDF)",
                                   BASE + "DEAD:RBV": "alarm INVALID (LINK)"}
    assert info.value.values == {BASE + "TEMP": 5.0}
    assert "  BASE:DEAD: alarm INVALID (UDF)\n" in str(info.value)


@needs_linux
def test_base_invalid_records_read_nan_with_nan_on_read_error(epics_base_ioc, base_ctx):
    with Interface(conf=epics_base_ioc.client_conf(), timeout=5.0, nan_on_read_error=True) as itf:
        values = itf.get_values([BASE + "DEAD", BASE + "DEAD:RBV", BASE + "Q1:SET"])
    assert math.isnan(values[BASE + "DEAD"]) and math.isnan(values[BASE + "DEAD:RBV"])
    assert not math.isnan(values[BASE + "Q1:SET"])


@needs_linux
def test_base_a_hihi_ai_is_returned_and_its_alarm_changes_are_logged_once(base, base_ctx, caplog):
    name = BASE + "TEMP"
    try:
        with caplog.at_level(logging.WARNING, logger="epics_pva.interface"):
            assert base.get_values([name]) == {name: 5.0}
            assert base.get_values([name]) == {name: 5.0}
            base_ctx.put(name, 3.5, timeout=5.0)  # a put processes the ai: past HIGH, MINOR
            for _ in range(3):
                assert base.get_values([name]) == {name: 3.5}
    finally:
        base_ctx.put(name, 5.0, timeout=5.0)
    assert alarm_records(caplog) == ["BASE:TEMP = 5.0: alarm MAJOR (HIHI)",
                                     "BASE:TEMP = 3.5: alarm MINOR (HIGH)"]


@needs_linux
def test_base_get_readings_reports_qsrvs_alarms_and_time_stamps(base, base_ctx):
    names = [BASE + "DEAD", BASE + "DEAD:RBV", BASE + "TEMP"]
    readings = base.get_readings(names)
    dead, linked, temp = (readings[n] for n in names)
    assert (dead.value, dead.severity, dead.status, dead.message, dead.ok) == (0.0, 3, 2, "UDF", False)
    assert dead.timestamp == EPICS_EPOCH
    assert (linked.value, linked.severity, linked.message, linked.ok) == (1.0, 3, "LINK", False)
    assert (temp.value, temp.severity, temp.status, temp.message, temp.ok) == (5.0, 2, 1, "HIHI", True)
    assert temp.timestamp == base_ctx.get(BASE + "TEMP", timeout=5.0).timestamp  # the record's own
    assert temp.timestamp > EPICS_EPOCH


@needs_linux
def test_base_wait_for_readback_never_settles_on_the_invalid_linked_readback(base_ctx):
    # DEAD:RBV holds the expected 1.0 exactly, in INVALID LINK, updated every 0.1 s
    with pytest.raises(ValueError) as info:
        wait_for_readback(set_pv=BASE + "Q1:SET", set_value=1.0, readback_pv=BASE + "DEAD:RBV",
                          tolerance=0.01, count_down=0.5, offset=0.0, context=base_ctx, timeout=5.0)
    assert "readback BASE:DEAD:RBV: last readback 1 was in alarm INVALID (LINK)" in str(info.value)


@needs_linux
def test_base_a_major_readback_on_target_settles(base_ctx):
    assert wait_for_readback(set_pv=BASE + "Q1:SET", set_value=5.0, readback_pv=BASE + "TEMP",
                             tolerance=0.01, count_down=2.0, offset=0.0, context=base_ctx,
                             timeout=5.0) == 5.0


@needs_linux
def test_base_a_set_validated_on_an_invalid_readback_fails_saying_so(base, base_ctx):
    target = 2.0 if float(base_ctx.get(BASE + "Q2:SET", timeout=5.0)) != 2.0 else -2.0
    configs = {BASE + "Q2:SET": partial(wait_for_readback, readback_pv=BASE + "DEAD:RBV",
                                        tolerance=0.01, count_down=0.5, offset=1.0 - target)}
    with pytest.raises(SetValuesError, match=r"last readback 1 was in alarm INVALID \(LINK\)"):
        base.set_values({BASE + "Q2:SET": target}, configs=configs)
    assert float(base_ctx.get(BASE + "Q2:SET", timeout=5.0)) == target  # the put itself reached the record
