"""Rehearsal mode: a set reaches only the rehearsal's soft IOC, proved before every put.

Every server here is real and on loopback: the soft IOC, EPICS base's softIoc serving the same
PV names, and stray p4p servers. "Zero puts" is shown on the server side (read back, or a
put counter in the stray server's handler).
"""

from __future__ import annotations

import threading

import pytest
from p4p.client.thread import Context
from p4p.nt import NTScalar
from p4p.server import Server
from p4p.server.thread import SharedPV

from epics_pva import Interface, RehearsalError, SetValuesError, Status, StrangerServerError
from epics_pva.core import prove_on_the_wire, settings_problems
from epics_pva.transport import PvInfo, put_many
from softioc.epics_base import EpicsBaseIOC, shipped_db_path

CONFIG = {
    "ioc": {"update_rate": 50.0},
    "setpoint": [
        {"name": "DEMO:Q1:SET", "readback": "DEMO:Q1:RBV", "limits": [-5.0, 5.0]},
        {"name": "DEMO:Q2:SET", "readback": "DEMO:Q2:RBV", "limits": [-5.0, 5.0]},
    ],
}
NAMES = ["DEMO:Q1:SET", "DEMO:Q2:SET"]
# one soft IOC, and a machine of two shard processes: DEMO:Q1 on shard 0, DEMO:Q2 on shard 1
PROCESSES = pytest.mark.parametrize("processes", [1, 2])


def config_for(processes: int) -> dict:
    return {**CONFIG, "ioc": {**CONFIG["ioc"], "processes": processes}}


def rehearsal(conf, identity, **kwargs):
    kwargs.setdefault("timeout", 2.0)
    return Interface(conf=conf, rehearsal=True, rehearsal_id=identity, **kwargs)


@pytest.fixture(scope="module")
def base_same_names():
    """EPICS base's softIoc serving real records named exactly as the soft IOC's PVs."""
    ioc = EpicsBaseIOC(db=shipped_db_path(), macros={"P": "DEMO:"}, ready_pv="DEMO:Q1:SET").start()
    yield ioc
    ioc.stop()


class Counting:
    """A stray server's put handler: counts every put that reaches it, and accepts it."""

    def __init__(self) -> None:
        self.puts = 0
        self._lock = threading.Lock()

    def put(self, pv, op):
        with self._lock:
            self.puts += 1
        pv.post(op.value())
        op.done()


def stray_server(extra=None, conf=None):
    """A p4p server of DEMO:Q1:SET and DEMO:Q2:SET (optionally publishing `extra` fields)."""
    handler = Counting()
    nt = NTScalar("d", extra=[(k, "s") for k in (extra or {})])
    pvs = {name: SharedPV(nt=nt, initial={"value": 0.0, **(extra or {})}, handler=handler) for name in NAMES}
    if conf is None:
        server = Server(providers=[pvs], isolate=True)
    else:
        server = Server(providers=[pvs], conf=conf, useenv=False)
    return server, pvs, handler


# ---- the soft IOC's identity -----------------------------------------------------------------


RECONNECT = 30.0


@PROCESSES
def test_every_pv_of_one_machine_carries_one_id_kept_across_restart_new_on_a_new_start(softioc_factory, client_for, processes):
    ioc = softioc_factory(config_for(processes))
    ctx = client_for(ioc)
    names = ioc.pv_names(control=True)
    ids = {ctx.get(name, timeout=5).raw["softiocId"] for name in names}
    assert ids == {ioc.identity} and len(ioc.identity) == 32
    assert ctx.get("SOFTIOC:ID", timeout=5).raw["value"] == ioc.identity
    assert ioc.interface_settings() == {"EPICS_PVA_INTERFACE_REHEARSAL_ID": ioc.identity}
    first = ioc.identity
    ioc.restart(0.1)
    # the client reconnects by search after each restart; a second restart within ~30 s meets
    # its search back-off (about 6 s), more on a loaded machine: wait for it, not for speed
    assert ctx.get("DEMO:Q1:SET", timeout=RECONNECT).raw["softiocId"] == first
    ioc.stop()
    ioc.start()
    assert ioc.identity != first
    assert ctx.get("DEMO:Q1:RBV", timeout=RECONNECT).raw["softiocId"] == ioc.identity


# ---- the rehearsal's own soft IOC: it works -------------------------------------------------


@PROCESSES
def test_rehearsal_sets_the_soft_ioc_it_was_meant_for(softioc_factory, processes):
    ioc = softioc_factory(config_for(processes))
    with rehearsal(ioc.client_conf(), ioc.identity) as interface:
        results = interface.set_values({"DEMO:Q1:SET": 1.5, "DEMO:Q2:SET": -0.5})
        assert {r.status for r in results.values()} == {Status.SET}
        assert interface.get_values(NAMES) == {"DEMO:Q1:SET": 1.5, "DEMO:Q2:SET": -0.5}
    assert [(r.pv, r.value) for r in ioc.audit.puts(outcome="accepted")] in (
        [("DEMO:Q1:SET", 1.5), ("DEMO:Q2:SET", -0.5)], [("DEMO:Q2:SET", -0.5), ("DEMO:Q1:SET", 1.5)])


@PROCESSES
def test_rehearsal_refuses_another_soft_ioc_by_its_id(softioc_factory, processes):
    meant, other = softioc_factory(config_for(processes)), softioc_factory(config_for(processes))
    with rehearsal(other.client_conf(), meant.identity) as interface:
        with pytest.raises(RehearsalError) as info:
            interface.set_values({"DEMO:Q1:SET": 1.0})
    assert (f"DEMO:Q1:SET is served by a server that is not the rehearsal's soft IOC "
            f"(softiocId {other.identity} != expected {meant.identity})") in str(info.value)
    assert other.audit.puts() == [] and meant.audit.puts() == []


# ---- a real IOC or a stray server with the same names: nothing is sent ------------------------


def test_rehearsal_sends_nothing_to_epics_base_serving_the_same_names(base_same_names):
    ioc = base_same_names
    with Interface(conf=ioc.client_conf()) as reader:
        before = reader.get_values(NAMES)
        for parallel in (True, False):
            with rehearsal(ioc.client_conf(), "0123456789abcdef0123456789abcdef", parallel=parallel) as interface:
                with pytest.raises(RehearsalError) as info:
                    interface.set_values({"DEMO:Q1:SET": before["DEMO:Q1:SET"] + 1.25, "DEMO:Q2:SET": 2.0})
                error = info.value
                assert isinstance(error, SetValuesError)
                assert ("DEMO:Q1:SET is served by a server that is not the rehearsal's soft IOC "
                        "(no softiocId field)") in str(error)
                assert set(error.problems) == set(NAMES)
                assert {r.status for r in error.results.values()} == {Status.NOT_ATTEMPTED}
                assert error.results["DEMO:Q2:SET"].reason == error.problems["DEMO:Q2:SET"]
                with pytest.raises(RehearsalError):
                    interface.set_value("DEMO:Q1:SET", 3.0)
                assert interface.get_values(NAMES) == before  # reads still work, and nothing was written
        assert reader.get_values(NAMES) == before


@pytest.mark.parametrize("extra, why", [
    (None, "(no softiocId field)"),
    ({"softiocId": "f" * 32}, f"(softiocId {'f' * 32} != expected {'0' * 32})"),
])
def test_rehearsal_sends_nothing_to_a_stray_p4p_server(extra, why):
    server, pvs, handler = stray_server(extra)
    with server, rehearsal(server.conf(), "0" * 32) as interface:
        with pytest.raises(RehearsalError, match=rf"DEMO:Q2:SET is served by a server that is not the "
                                                 rf"rehearsal's soft IOC {why.replace('(', '[(]').replace(')', '[)]')}"):
            interface.set_values({"DEMO:Q1:SET": 1.0, "DEMO:Q2:SET": 2.0})
        assert interface.get_values(NAMES) == {"DEMO:Q1:SET": 0.0, "DEMO:Q2:SET": 0.0}
    assert handler.puts == 0


@PROCESSES
def test_a_pv_that_cannot_be_read_refuses_the_whole_call(softioc_factory, processes):
    ioc = softioc_factory(config_for(processes))
    with rehearsal(ioc.client_conf(), ioc.identity, timeout=0.5) as interface:
        with pytest.raises(RehearsalError, match="DEMO:NOPE cannot be proved to be served by the rehearsal's"):
            interface.set_values({"DEMO:Q1:SET": 1.0, "DEMO:NOPE": 1.0})
    assert ioc.audit.puts() == []


# ---- each put proves the id again, on the connection it goes out on -----------------------------


@pytest.mark.parametrize("extra, why", [
    (None, "(no softiocId field)"),
    ({"softiocId": "f" * 32}, f"(softiocId {'f' * 32} != expected {'0' * 32})"),
])
def test_a_put_whose_monitor_still_shows_the_soft_ioc_is_not_sent_to_a_stranger(extra, why):
    """The window after a reconnect: the PV's monitor still holds the soft IOC's id, but the
    channel already reaches a stranger. The put's own Get shows it, and nothing is sent."""
    server, pvs, handler = stray_server(extra)
    stale = [PvInfo(kind="float", code="d", server_id="0" * 32)] * 2  # what the monitor last said
    with server:
        ctx = Context("pva", conf=server.conf(), useenv=False)
        try:
            outcomes = put_many(ctx, NAMES, [1.0, 2.0], 2.0, stale, prove_on_the_wire("0" * 32))
            assert [type(o) for o in outcomes] == [StrangerServerError] * 2
            assert str(outcomes[1]) == (f"DEMO:Q2:SET = 2.0: not sent: DEMO:Q2:SET is served by a server that "
                                        f"is not the rehearsal's soft IOC {why}, as the put's own Get showed")
            assert [ctx.get(name, timeout=2.0) for name in NAMES] == [0.0, 0.0]
        finally:
            ctx.close()
    assert handler.puts == 0


@PROCESSES
def test_a_put_proving_the_id_reaches_the_soft_ioc_it_names(softioc_factory, client_for, processes):
    ioc = softioc_factory(config_for(processes))
    ctx = client_for(ioc)
    infos = [PvInfo(kind="float", code="d", server_id=ioc.identity)] * 2
    assert put_many(ctx, NAMES, [1.5, -0.5], 2.0, infos, prove_on_the_wire(ioc.identity)) == [None, None]
    refused = put_many(ctx, NAMES, [3.0, 3.0], 2.0, infos, prove_on_the_wire("0" * 32))
    assert [type(o) for o in refused] == [StrangerServerError] * 2
    assert sorted((r.pv, r.value) for r in ioc.audit.puts()) == [("DEMO:Q1:SET", 1.5), ("DEMO:Q2:SET", -0.5)]


# ---- the soft IOC dies and a stranger answers on its ports: refused ----------------------------


def test_after_a_restart_the_same_interface_proves_the_id_again_and_refuses_a_stranger(softioc_factory):
    ioc = softioc_factory(CONFIG)
    interface = rehearsal(ioc.client_conf(), ioc.identity)
    try:
        interface.set_values({"DEMO:Q1:SET": 1.0})
        ioc.restart(0.2)  # an outage: the same machine comes back, with the same id
        interface.set_values({"DEMO:Q1:SET": 2.0})
        assert [r.value for r in ioc.audit.puts(outcome="accepted")] == [1.0, 2.0]
        ports = {k: v for k, v in ioc._endpoint.effective.items() if k.startswith("EPICS_PVAS_")}
        ioc.stop()  # the soft IOC dies; another server takes its ports and its names
        server, pvs, handler = stray_server(conf=ports)
        with server:
            with pytest.raises(RehearsalError, match=r"DEMO:Q1:SET is served by a server that is not "
                                                     r"the rehearsal's soft IOC \(no softiocId field\)"):
                interface.set_values({"DEMO:Q1:SET": 3.0})
            assert interface.get_values(["DEMO:Q1:SET"]) == {"DEMO:Q1:SET": 0.0}  # it did answer reads
        assert handler.puts == 0
    finally:
        interface.close()


class Stranger:
    """A server that takes a stopped soft IOC's ports and PV names: another soft IOC (its own
    id) or a plain p4p server (no id); `puts()` counts the puts that reached it."""

    def __init__(self, kind, ports, softioc_factory):
        self.kind, self.ports, self._factory = kind, ports, softioc_factory
        self.started = threading.Event()
        self._ioc = self._server = self._handler = None

    def start(self):
        if self.kind == "soft IOC":
            self._ioc = self._factory(CONFIG, port=int(self.ports["EPICS_PVAS_SERVER_PORT"]),
                                      broadcast_port=int(self.ports["EPICS_PVAS_BROADCAST_PORT"]))
        else:
            self._server, _, self._handler = stray_server(conf=self.ports)
        self.started.set()

    def puts(self):
        return len(self._ioc.audit.puts()) if self._ioc is not None else self._handler.puts

    def stop(self):
        if self._server is not None:
            self._server.stop()  # a soft IOC is stopped by its fixture


@pytest.mark.parametrize("kind", ["soft IOC", "p4p server"])
@pytest.mark.parametrize("when", ["before the call", "during the call"])
def test_no_put_reaches_a_stranger_that_takes_the_soft_iocs_ports(softioc_factory, kind, when):
    """The rehearsal proved the soft IOC and holds its monitors; the soft IOC stops and a
    stranger serves the same names on its ports, before the next call or while it waits.
    Whether the monitors have heard of it yet or not, nothing is sent: the monitor's first
    value from the stranger, or else each put's own Get on the new connection, shows it."""
    ioc = softioc_factory(CONFIG)
    interface = rehearsal(ioc.client_conf(), ioc.identity, timeout=5.0)
    stranger = Stranger(kind, {k: v for k, v in ioc._endpoint.effective.items() if k.startswith("EPICS_PVAS_")},
                        softioc_factory)
    starter = threading.Timer(0.3, stranger.start)
    try:
        interface.set_values({"DEMO:Q1:SET": 1.0, "DEMO:Q2:SET": -1.0})  # proved; monitors held
        assert len(ioc.audit.puts(outcome="accepted")) == 2
        ioc.stop()
        if when == "before the call":
            stranger.start()
        else:  # the call begins with nothing serving; the stranger answers while it waits
            starter.start()
        with pytest.raises((RehearsalError, StrangerServerError)) as info:
            interface.set_values({"DEMO:Q1:SET": 2.0, "DEMO:Q2:SET": -2.0})
        assert stranger.started.wait(10.0)
        for pv in NAMES:
            assert f"{pv} is served by a server that is not the rehearsal's soft IOC" in str(info.value)
        assert interface.get_values(["DEMO:Q1:SET"]) == {"DEMO:Q1:SET": 0.0}  # the stranger answers reads
        assert stranger.puts() == 0
    finally:
        starter.cancel()
        if starter.is_alive():
            starter.join(10.0)
        interface.close()
        stranger.stop()


class Holding:
    """A put handler that never completes a put: its server dies with the put pending."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.ops = []

    def put(self, pv, op):
        self.ops.append(op)
        self.held.set()


def dying_server(identity):
    """A p4p server standing in for a soft IOC killed mid-put: it publishes `identity` as its
    softiocId on DEMO:Q1:SET and DEMO:Q2:SET and holds every put it gets."""
    handler = Holding()
    nt = NTScalar("d", extra=[("softiocId", "s")])
    pvs = {name: SharedPV(nt=nt, initial={"value": 0.0, "softiocId": identity}, handler=handler)
           for name in NAMES}
    server = Server(providers=[pvs], isolate=True)
    ports = {k: v for k, v in server.conf().items() if k.startswith("EPICS_PVAS_")}
    return server, handler, ports


@pytest.mark.parametrize("vetted", [False, True])
def test_a_put_whose_connection_dropped_before_its_reply_is_not_sent_again_to_a_stranger(vetted):
    """pvxs sends a put again by itself, on the next connection to whichever server answers the
    name, when the connection dropped after the put went out and before its reply. Unvetted, a
    stranger on the same ports gets it; vetted, the put is fetched again first, and that copy
    is not sent (the error says the first one was)."""
    identity = "a" * 32
    first, holding, ports = dying_server(identity)
    ctx = Context("pva", conf=first.conf(), useenv=False)
    outcomes: list = []
    info = [PvInfo(kind="float", code="d", server_id=identity)]
    putter = threading.Thread(target=lambda: outcomes.extend(
        put_many(ctx, ["DEMO:Q1:SET"], [3.0], 10.0, info, prove_on_the_wire(identity) if vetted else None)))
    try:
        putter.start()
        assert holding.held.wait(5.0)  # sent, and pending at the first server
        first.stop()
        server, _, counting = stray_server(conf=ports)
        with server:
            putter.join(15.0)
            assert not putter.is_alive()
            if not vetted:  # what rehearsal guards against: the stranger got the put
                assert outcomes == [None] and counting.puts == 1
                return
            [error] = outcomes
            assert isinstance(error, StrangerServerError) and error.sent
            assert str(error) == (
                "DEMO:Q1:SET = 3.0: sent once, on a connection that dropped before its reply (its fate "
                "there is unknown); not sent again on the new connection: DEMO:Q1:SET is served by a "
                "server that is not the rehearsal's soft IOC (no softiocId field), as the put's own Get showed")
            assert ctx.get("DEMO:Q1:SET", timeout=5.0) == 0.0
            assert counting.puts == 0
    finally:
        putter.join(15.0)
        ctx.close()


def test_a_rehearsal_put_cut_off_by_its_servers_death_is_reported_sent_and_not_sent_to_a_stranger():
    identity = "a" * 32
    first, holding, ports = dying_server(identity)
    interface = rehearsal(first.conf(), identity, timeout=10.0)
    raised: list = []

    def call() -> None:
        try:
            interface.set_values({"DEMO:Q1:SET": 3.0})
        except Exception as exc:  # noqa: BLE001 - looked at below
            raised.append(exc)

    putter = threading.Thread(target=call)
    try:
        putter.start()
        assert holding.held.wait(5.0)
        first.stop()
        server, _, counting = stray_server(conf=ports)
        with server:
            putter.join(15.0)
            assert not putter.is_alive()
            [error] = raised
            # not a RehearsalError ("nothing was sent"): the first copy went out
            assert type(error) is SetValuesError
            result = error.results["DEMO:Q1:SET"]
            assert result.status == Status.FAILED
            assert isinstance(result.error, StrangerServerError) and result.error.sent
            assert "sent once, on a connection that dropped before its reply" in str(error)
            assert counting.puts == 0
    finally:
        putter.join(15.0)
        interface.close()


# ---- settings that could reach beyond loopback: refused before a context is built ----------------


@pytest.mark.parametrize("change, setting", [
    ({"EPICS_PVA_AUTO_ADDR_LIST": "YES"}, "EPICS_PVA_AUTO_ADDR_LIST"),
    ({"EPICS_PVA_AUTO_ADDR_LIST": None}, "EPICS_PVA_AUTO_ADDR_LIST"),
    ({"EPICS_PVA_ADDR_LIST": "127.0.0.1 255.255.255.255"}, "EPICS_PVA_ADDR_LIST"),
    ({"EPICS_PVA_ADDR_LIST": "192.0.2.255:5076"}, "EPICS_PVA_ADDR_LIST"),
    ({"EPICS_PVA_ADDR_LIST": "192.0.2.7"}, "EPICS_PVA_ADDR_LIST"),
    ({"EPICS_PVA_NAME_SERVERS": "192.0.2.7:5075"}, "EPICS_PVA_NAME_SERVERS"),
])
def test_a_settings_leak_is_refused_before_any_context_exists(softioc_factory, monkeypatch, change, setting):
    ioc = softioc_factory(CONFIG)
    conf = {**ioc.client_conf(), **change}
    conf = {k: v for k, v in conf.items() if v is not None}
    for name in [k for k in list(__import__("os").environ) if k.startswith("EPICS_PVA_")]:
        monkeypatch.delenv(name)
    for name, value in conf.items():
        monkeypatch.setenv(name, value)
    for given in (conf, None):  # given as conf, or taken from the environment
        interface = rehearsal(given, ioc.identity)
        with pytest.raises(RehearsalError, match=setting) as info:
            interface.set_values({"DEMO:Q1:SET": 1.0})
        assert set(info.value.problems) == {setting}
        assert not interface._connection.connected  # no p4p context was built with it
    assert ioc.audit.puts() == []


@pytest.mark.parametrize("auto", ["off", "false", " NO", "NO ", "", "OFF", "False", "n", "00"])
def test_an_auto_addr_list_pvxs_reads_as_yes_is_refused_saying_so(softioc_factory, monkeypatch, auto):
    """pvxs takes only NO (any letter case) or 0 as NO; any other value it logs as invalid and
    keeps its default YES, broadcasting searches. Refused before any context is built."""
    ioc = softioc_factory(CONFIG)
    conf = {**ioc.client_conf(), "EPICS_PVA_AUTO_ADDR_LIST": auto}
    for name in [k for k in __import__("os").environ if k.startswith("EPICS_PVA_")]:
        monkeypatch.delenv(name)
    for name, value in conf.items():
        monkeypatch.setenv(name, value)
    for given in (conf, None):  # given as conf, or taken from the environment
        interface = rehearsal(given, ioc.identity)
        with pytest.raises(RehearsalError) as info:
            interface.set_values({"DEMO:Q1:SET": 1.0})
        assert set(info.value.problems) == {"EPICS_PVA_AUTO_ADDR_LIST"}
        assert (f"EPICS_PVA_AUTO_ADDR_LIST is {auto!r}, which pvxs reads as YES"
                in info.value.problems["EPICS_PVA_AUTO_ADDR_LIST"])
        assert not interface._connection.connected  # no p4p context was built with it
    assert ioc.audit.puts() == []


@pytest.mark.parametrize("auto", ["NO", "no", "No", "0"])
def test_every_spelling_pvxs_reads_as_no_passes(softioc_factory, auto):
    ioc = softioc_factory(CONFIG)
    with rehearsal({**ioc.client_conf(), "EPICS_PVA_AUTO_ADDR_LIST": auto}, ioc.identity) as interface:
        interface.set_values({"DEMO:Q1:SET": 1.0})
    assert [r.value for r in ioc.audit.puts(outcome="accepted")] == [1.0]


def test_the_checked_environment_is_the_one_the_context_uses(softioc_factory, monkeypatch):
    ioc = softioc_factory(CONFIG)
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    with rehearsal(None, ioc.identity) as interface:
        interface.set_values({"DEMO:Q1:SET": 1.0})  # the context is built from the environment now
        monkeypatch.setenv("EPICS_PVA_AUTO_ADDR_LIST", "YES")  # too late: the context has its copy
        interface.set_values({"DEMO:Q1:SET": 2.0})
        assert interface._connection.client_conf()["EPICS_PVA_AUTO_ADDR_LIST"] == "NO"
        interface.close()  # the next context would be built from YES: refused before it exists
        with pytest.raises(RehearsalError, match="EPICS_PVA_AUTO_ADDR_LIST"):
            interface.set_values({"DEMO:Q1:SET": 3.0})
        assert not interface._connection.connected
    assert [r.value for r in ioc.audit.puts(outcome="accepted")] == [1.0, 2.0]


def test_allowed_hosts_and_loopback_pass_the_settings_check():
    loopback = {"EPICS_PVA_AUTO_ADDR_LIST": "NO", "EPICS_PVA_ADDR_LIST": "127.0.0.1:5076 localhost [::1]:5076"}
    assert settings_problems(loopback) == {}
    remote = {"EPICS_PVA_AUTO_ADDR_LIST": "no", "EPICS_PVA_ADDR_LIST": "10.1.2.3 sim-host:5076",
              "EPICS_PVA_NAME_SERVERS": "10.1.2.3:5075"}
    assert set(settings_problems(remote)) == {"EPICS_PVA_ADDR_LIST", "EPICS_PVA_NAME_SERVERS"}
    assert settings_problems(remote, allow="10.1.2.3, SIM-HOST") == {}
    broadcast = {"EPICS_PVA_AUTO_ADDR_LIST": "NO", "EPICS_PVA_ADDR_LIST": "10.1.2.255"}
    assert "broadcast" in settings_problems(broadcast, allow="10.1.2.255")["EPICS_PVA_ADDR_LIST"]


def test_read_only_rehearsal_sends_nothing_and_checks_nothing(base_same_names):
    with rehearsal(base_same_names.client_conf(), "0" * 32, read_only=True) as interface:
        results = interface.set_values({"DEMO:Q1:SET": 1.0})
    assert results["DEMO:Q1:SET"].status == Status.READ_ONLY


def test_rehearsal_without_an_id_is_refused_at_construction():
    with pytest.raises(ValueError, match="rehearsal needs rehearsal_id .*EPICS_PVA_INTERFACE_REHEARSAL_ID"):
        Interface(rehearsal=True)
    with pytest.raises(ValueError, match="rehearsal_id must be a string without spaces"):
        Interface(rehearsal=True, rehearsal_id="a b")
