"""The interface against EPICS base's own softIoc (QSRV2), and what that IOC serves.

One IOC per module (the `epics_base_ioc` fixture) serves softioc/examples/epics_base.db;
tests that kill an IOC or change its environment start their own.
"""

from __future__ import annotations

import functools
import os
import random
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from _network import other_address
from p4p.client.thread import Context, RemoteError

from epics_pva import (
    Interface,
    InvalidInputError,
    PutError,
    ReadError,
    SetValuesError,
    wait_for_readback,
)
from softioc.epics_base import EpicsBaseError, EpicsBaseIOC, NotLoopbackError, sockets_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc for sockets and processes (Linux)")

P = "BASE:"
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def ctx(epics_base_ioc):
    """A plain p4p client of the module's IOC, to observe what the interface did."""
    context = Context("pva", conf=epics_base_ioc.client_conf(), useenv=False)
    yield context
    context.close()


@pytest.fixture
def interface(epics_base_ioc):
    with Interface(conf=epics_base_ioc.client_conf(), timeout=TIMEOUT, put_attempts=2,
                   retry_delay=0.1) as iface:
        yield iface


def stamp(ctx: Context, name: str) -> tuple[int, int]:
    """The record's timeStamp: a put that reaches a record processes it and moves this."""
    raw = ctx.get(name, timeout=TIMEOUT).raw
    return raw["timeStamp.secondsPastEpoch"], raw["timeStamp.nanoseconds"]


def alarm(ctx: Context, name: str) -> tuple[int, int, str]:
    raw = ctx.get(name, timeout=TIMEOUT).raw
    return raw["alarm.severity"], raw["alarm.status"], raw["alarm.message"]


def fresh_target(ctx: Context, name: str, low: float = -4.0, high: float = 4.0) -> float:
    """A value within [low, high] at least 1 away from the PV's current value."""
    current = float(ctx.get(name, timeout=TIMEOUT))
    while True:
        target = round(random.uniform(low, high), 3)
        if abs(target - current) >= 1.0:
            return target


# ---- types ----------------------------------------------------------------------------------

def test_each_record_type_reads_as_its_python_type(interface, ctx):
    ctx.put(P + "WAVE", [0.0, 0.0, 0.0], timeout=TIMEOUT)
    ctx.put(P + "MODE", "Off", timeout=TIMEOUT)
    values = interface.get_values([P + "Q1:SET", P + "COUNT", P + "MODE", P + "LABEL", P + "WAVE"])
    assert type(values[P + "Q1:SET"]) is float
    assert type(values[P + "COUNT"]) is int
    assert values[P + "MODE"] == "Off"
    assert type(values[P + "LABEL"]) is str
    assert isinstance(values[P + "WAVE"], np.ndarray) and values[P + "WAVE"].dtype == np.float64
    assert list(values[P + "WAVE"]) == [0.0, 0.0, 0.0]


def test_each_record_type_is_set_and_reads_back(interface, ctx):
    q1 = fresh_target(ctx, P + "Q1:SET")
    count = random.randint(1, 99)
    wave = [round(random.uniform(-9, 9), 2) for _ in range(5)]
    word = f"run-{random.randint(0, 10**6)}"
    results = interface.set_values({P + "Q1:SET": q1, P + "COUNT": count, P + "MODE": "Standby",
                                    P + "LABEL": word, P + "WAVE": wave})
    assert all(r.status == "set" and r.attempts == 1 for r in results.values())
    assert float(ctx.get(P + "Q1:SET", timeout=TIMEOUT)) == q1
    assert int(ctx.get(P + "COUNT", timeout=TIMEOUT)) == count
    assert ctx.get(P + "MODE", timeout=TIMEOUT).raw["value.index"] == 1
    assert ctx.get(P + "LABEL", timeout=TIMEOUT).raw["value"] == word
    assert list(ctx.get(P + "WAVE", timeout=TIMEOUT)) == wave
    interface.set_value(P + "MODE", 2)  # an mbbo takes its index as well as its label
    assert interface.get_value(P + "MODE") == "On"


def test_what_qsrv_serves_for_each_record_type(ctx):
    numeric = ["value", "alarm", "timeStamp", "display", "control", "valueAlarm"]
    for name in ("Q1:SET", "Q1:RBV", "TEMP", "COUNT", "WAVE"):
        assert list(ctx.get(P + name, timeout=TIMEOUT).raw.keys()) == numeric, name
    assert list(ctx.get(P + "MODE", timeout=TIMEOUT).raw.keys()) == ["value", "alarm", "timeStamp", "display"]
    assert list(ctx.get(P + "LABEL", timeout=TIMEOUT).raw.keys()) == ["value", "alarm", "timeStamp", "display"]
    q1 = ctx.get(P + "Q1:SET", timeout=TIMEOUT).raw
    assert (q1["control.limitLow"], q1["control.limitHigh"]) == (-5.0, 5.0)  # DRVL/DRVH
    assert (q1["display.units"], q1["display.precision"]) == ("A", 3)
    assert q1["display.description"] == "Quadrupole 1 current"
    assert list(ctx.get(P + "MODE", timeout=TIMEOUT).raw["value.choices"]) == ["Off", "Standby", "On"]


# ---- limits, alarms: what the real records do ---------------------------------------------------

def test_an_ao_clamps_a_raw_put_beyond_its_drive_limits_without_alarm(ctx):
    try:
        ctx.put(P + "Q2:SET", 7.0, timeout=TIMEOUT)
        assert float(ctx.get(P + "Q2:SET", timeout=TIMEOUT)) == 5.0
        assert alarm(ctx, P + "Q2:SET") == (0, 0, "")
        ctx.put(P + "Q2:SET", -9.0, timeout=TIMEOUT)
        assert float(ctx.get(P + "Q2:SET", timeout=TIMEOUT)) == -5.0
        ctx.put(P + "COUNT", 200, timeout=TIMEOUT)  # a longout clamps to its DRVH too
        assert int(ctx.get(P + "COUNT", timeout=TIMEOUT)) == 100
    finally:
        ctx.put(P + "Q2:SET", 0.0, timeout=TIMEOUT)


def test_alarm_limits_of_an_ai(ctx):
    raw = ctx.get(P + "TEMP", timeout=TIMEOUT).raw
    limits = [raw[f"valueAlarm.{k}"] for k in
              ("lowAlarmLimit", "lowWarningLimit", "highWarningLimit", "highAlarmLimit")]
    assert limits == [-4.0, -3.0, 3.0, 4.0]
    try:
        for value, expected in [(3.5, (1, "HIGH")), (4.5, (2, "HIHI")), (-3.5, (1, "LOW")),
                                (-4.5, (2, "LOLO")), (0.0, (0, "")), (5.0, (2, "HIHI"))]:
            ctx.put(P + "TEMP", value, timeout=TIMEOUT)
            severity, status, message = alarm(ctx, P + "TEMP")
            assert (severity, message) == expected, value
            assert status == (1 if severity else 0), value
    finally:
        ctx.put(P + "TEMP", 5.0, timeout=TIMEOUT)


def test_a_never_processed_ai_and_a_readback_linked_to_it_are_invalid(ctx):
    assert float(ctx.get(P + "DEAD", timeout=TIMEOUT)) == 0.0
    assert alarm(ctx, P + "DEAD") == (3, 2, "UDF")
    assert float(ctx.get(P + "DEAD:RBV", timeout=TIMEOUT)) == 1.0  # the right value (0 + 1) ...
    assert alarm(ctx, P + "DEAD:RBV") == (3, 3, "LINK")  # ... in INVALID alarm, carried by MS


# ---- the interface against the real records --------------------------------------------------

def test_a_value_beyond_the_drive_limit_is_refused_before_any_put(interface, ctx):
    before_value, before_stamp = float(ctx.get(P + "Q1:SET", timeout=TIMEOUT)), stamp(ctx, P + "Q1:SET")
    count_stamp = stamp(ctx, P + "COUNT")
    with pytest.raises(InvalidInputError) as caught:
        interface.set_values({P + "Q1:SET": 7.0, P + "COUNT": 1})
    assert set(caught.value.problems) == {P + "Q1:SET"}
    assert "7" in caught.value.problems[P + "Q1:SET"]
    assert "outside the PV's control limits [-5, 5]" in caught.value.problems[P + "Q1:SET"]
    with pytest.raises(InvalidInputError, match=P + "COUNT"):
        interface.set_values({P + "COUNT": 101})
    # no put reached either record: neither was processed (an ao processes on every put)
    assert float(ctx.get(P + "Q1:SET", timeout=TIMEOUT)) == before_value
    assert stamp(ctx, P + "Q1:SET") == before_stamp
    assert stamp(ctx, P + "COUNT") == count_stamp


def test_a_disabled_record_rejects_the_put_and_it_is_not_retried(interface, ctx):
    before = stamp(ctx, P + "LOCKED:SET")
    with pytest.raises(PutError) as caught:
        interface.set_value(P + "LOCKED:SET", 2.0)
    assert caught.value.attempts == 1
    assert caught.value.pv == P + "LOCKED:SET"
    assert "Field Disabled" in str(caught.value)
    assert float(ctx.get(P + "LOCKED:SET", timeout=TIMEOUT)) == 1.0
    assert stamp(ctx, P + "LOCKED:SET") == before
    with pytest.raises(RemoteError, match="Field Disabled"):  # what the server says, verbatim
        ctx.put(P + "LOCKED:SET", 2.0, timeout=TIMEOUT)


def test_validated_parallel_sets_wait_for_the_lagging_readbacks(epics_base_ioc, ctx):
    targets = {P + "Q1:SET": fresh_target(ctx, P + "Q1:SET"),
               P + "Q2:SET": fresh_target(ctx, P + "Q2:SET")}
    configs = {pv: functools.partial(wait_for_readback, readback_pv=pv.replace(":SET", ":RBV"),
                                     tolerance=1e-3, count_down=10.0, offset=0.0)
               for pv in targets}
    with Interface(conf=epics_base_ioc.client_conf(), parallel=True, timeout=TIMEOUT) as iface:
        results = iface.set_values(targets, configs)
    for pv, target in targets.items():
        assert results[pv].status == "set" and results[pv].attempts == 1
        assert abs(results[pv].validation_result - target) <= 1e-3
        # the readback got there (halving the distance every 0.1 s): validation waited for it
        assert abs(float(ctx.get(pv.replace(":SET", ":RBV"), timeout=TIMEOUT)) - target) <= 1e-3


def test_a_readback_that_cannot_settle_fails_validation(epics_base_ioc, ctx):
    validate = functools.partial(wait_for_readback, readback_pv=P + "Q1:RBV", tolerance=1e-3,
                                 count_down=0.5, offset=100.0)  # never reachable
    with Interface(conf=epics_base_ioc.client_conf(), timeout=TIMEOUT) as iface:
        with pytest.raises(SetValuesError) as caught:
            iface.set_values({P + "Q1:SET": fresh_target(ctx, P + "Q1:SET")}, {P + "Q1:SET": validate})
    assert P + "Q1:RBV" in str(caught.value)


def test_read_only_sends_nothing(epics_base_ioc, ctx):
    before = {pv: (float(ctx.get(pv, timeout=TIMEOUT)), stamp(ctx, pv)) for pv in (P + "Q1:SET", P + "Q2:SET")}
    with Interface(conf=epics_base_ioc.client_conf(), read_only=True, timeout=TIMEOUT) as iface:
        results = iface.set_values({P + "Q1:SET": fresh_target(ctx, P + "Q1:SET"),
                                    P + "Q2:SET": fresh_target(ctx, P + "Q2:SET")})
    assert {r.status for r in results.values()} == {"read_only"}
    assert {r.attempts for r in results.values()} == {0}
    after = {pv: (float(ctx.get(pv, timeout=TIMEOUT)), stamp(ctx, pv)) for pv in before}
    assert after == before  # value and processing time unchanged: no put reached the records


# ---- the IOC process: restart, loopback, lifetime ----------------------------------------------

def test_the_interface_recovers_when_the_ioc_is_killed_and_restarted(monkeypatch):
    # an environment pointing elsewhere must not leak into the IOC
    monkeypatch.setenv("EPICS_PVAS_INTF_ADDR_LIST", "0.0.0.0")
    monkeypatch.setenv("EPICS_CAS_INTF_ADDR_LIST", "0.0.0.0")
    with EpicsBaseIOC() as ioc:
        assert all(a.startswith("127.") for proto, a, _, listens in sockets_of(ioc.pid)
                   if proto == "tcp" and listens)
        ports = (ioc.pva_server_port, ioc.pva_broadcast_port, ioc.ca_server_port)
        with Interface(conf=ioc.client_conf(), timeout=1.0, put_attempts=1) as iface:
            iface.set_value(P + "Q1:SET", 1.5)
            assert iface.get_value(P + "Q1:SET") == 1.5
            first_pid = ioc.pid
            ioc.kill()
            with pytest.raises(ReadError, match=P + "Q1:SET"):
                iface.get_values([P + "Q1:SET"])
            ioc.start()
            assert ioc.pid != first_pid
            assert (ioc.pva_server_port, ioc.pva_broadcast_port, ioc.ca_server_port) == ports
            assert ("tcp", "127.0.0.1", ports[0], True) in sockets_of(ioc.pid)
            deadline = time.monotonic() + 15.0
            while True:  # bounded: each read waits at most the interface's 1 s timeout
                try:
                    value = iface.get_value(P + "Q1:SET")
                    break
                except ReadError:
                    if time.monotonic() > deadline:
                        raise
            assert value == 0.0  # a new IOC: the record's value from the .db
            iface.set_value(P + "Q1:SET", -2.5)
            assert iface.get_value(P + "Q1:SET") == -2.5


def listening_tcp(sockets: list[tuple[str, str, int, bool]]) -> set[tuple[str, int]]:
    return {(address, port) for proto, address, port, listens in sockets
            if proto.startswith("tcp") and listens}


def test_the_ioc_serves_on_loopback_only(epics_base_ioc):
    ioc = epics_base_ioc
    sockets = sockets_of(ioc.pid)
    # both servers accept connections on loopback only, on the ports they were given
    assert listening_tcp(sockets) == {("127.0.0.1", ioc.pva_server_port), ("127.0.0.1", ioc.ca_server_port)}
    assert ("udp", "127.0.0.1", ioc.ca_server_port, True) in sockets  # CA search
    # nothing on the EPICS default ports: no inherited or default setting is in use
    assert not {port for _, _, port, _ in sockets} & {5064, 5065, 5075, 5076}


@pytest.mark.private_network
def test_a_search_arriving_on_another_interface_finds_nothing(epics_base_ioc):
    # PVA's search socket is bound to the wildcard (pvxs filters by interface)
    ioc = epics_base_ioc
    conf = dict(ioc.client_conf(), EPICS_PVA_ADDR_LIST=f"127.0.0.1:{ioc.pva_broadcast_port}")
    with Context("pva", conf=conf, useenv=False) as local:
        local.get(P + "Q1:SET", timeout=5.0)  # the same search at loopback is answered
    conf = dict(ioc.client_conf(), EPICS_PVA_ADDR_LIST=f"{other_address()}:{ioc.pva_broadcast_port}")
    with Context("pva", conf=conf, useenv=False) as other:
        with pytest.raises(TimeoutError):
            other.get(P + "Q1:SET", timeout=1.0)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::1", "localhost", "ioc.example"])
def test_a_non_loopback_address_is_refused_before_anything_starts(host):
    with pytest.raises(NotLoopbackError, match=f"host '{host}': not an IPv4 loopback address"):
        EpicsBaseIOC(host=host)


def test_a_missing_db_is_refused():
    with pytest.raises(EpicsBaseError, match="no-such.db"):
        EpicsBaseIOC(db="no-such.db")


def test_a_broken_db_fails_start_with_the_iocs_output(tmp_path):
    db = tmp_path / "broken.db"
    db.write_text('record(nosuchtype, "X") {}\n')
    ioc = EpicsBaseIOC(db=db, start_timeout=20.0)
    with pytest.raises(EpicsBaseError, match="nosuchtype") as caught:
        ioc.start()
    assert "its output" in str(caught.value)
    assert not ioc.running


def taken(port: int) -> socket.socket:
    """A listening socket on loopback `port`, as another process would hold it."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    return holder


def test_a_port_taken_before_the_first_start_binds_it_is_replaced():
    ioc = EpicsBaseIOC()
    given = ioc.pva_server_port
    holder = taken(given)  # the race: free when chosen, taken before the IOC binds it
    try:
        ioc.start()
        try:
            assert ioc.pva_server_port != given
            ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
            try:
                assert ctx.get("BASE:Q1:SET", timeout=5.0) == 0.0  # served, on the new ports
            finally:
                ctx.close()
            ioc.stop()
            with taken(ioc.pva_server_port):  # a restart keeps its ports: taken now, it says so
                with pytest.raises(EpicsBaseError, match=rf"not listening on 127.0.0.1 tcp:{ioc.pva_server_port} "
                                                         r"\(port taken\?\)"):
                    ioc.start()
            assert not ioc.running
        finally:
            ioc.stop()
    finally:
        holder.close()


SCRIPT = textwrap.dedent("""
    import sys, threading
    import softioc.child_process
    from softioc.epics_base import EpicsBaseIOC
    if sys.argv[1] == "stdin":  # only the closing stdin pipe is left to end the IOC
        softioc.child_process._die_with_parent = lambda: None
    ioc = EpicsBaseIOC().start()
    print(ioc.pid, flush=True)
    threading.Event().wait()
""")


@pytest.mark.parametrize("mechanism", ["pdeathsig", "stdin"])
def test_the_ioc_dies_with_its_parent(mechanism, tmp_path):
    errors = tmp_path / "parent.stderr"
    with errors.open("w") as stderr:  # a file, not a pipe: a chatty parent never blocks on it
        parent = subprocess.Popen([sys.executable, "-c", SCRIPT, mechanism], stdout=subprocess.PIPE,
                                  stderr=stderr, text=True, cwd=Path(__file__).parent.parent)
    try:
        ready, _, _ = select.select([parent.stdout], [], [], 40.0)
        line = parent.stdout.readline() if ready else ""
        assert line.strip().isdigit(), (f"the parent did not start its IOC within 40 s (exit status "
                                        f"{parent.poll()}); its stderr:\n{errors.read_text()}")
        ioc_pid = int(line)
        pidfd = os.pidfd_open(ioc_pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        parent.stdout.close()
    try:
        gone, _, _ = select.select([pidfd], [], [], 10.0)  # readable once the process has exited
        if not gone:
            os.kill(ioc_pid, signal.SIGKILL)
        assert gone, f"IOC pid {ioc_pid} outlived its killed parent by 10 s ({mechanism})"
    finally:
        os.close(pidfd)
