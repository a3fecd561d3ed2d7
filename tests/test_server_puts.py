"""How the soft IOC handles puts: at once on the server's thread when the machine is free,
queued in arrival order while another thread holds it; and the client's many-PV reads."""

from __future__ import annotations

import threading
import time

import pytest
from p4p.client.thread import Context, RemoteError

from epics_pva import ContextClosedError
from epics_pva.core import reading_of
from epics_pva.transport import get_many, put_many
from softioc.server import ACCEPTED, REJECTED

TIMEOUT = 5.0
CONFIG = {"ioc": {"seed": 1, "update_rate": 20.0}, "setpoint": [
    {"name": "Q:A", "initial": 0.0, "limits": [-10.0, 10.0]},
    {"name": "Q:B", "initial": 0.0, "limits": [-10.0, 10.0], "limit_action": "reject"},
]}


def test_puts_arriving_while_the_machine_is_busy_wait_and_are_handled_in_order(softioc_factory, until):
    ioc = softioc_factory(CONFIG)
    with Context("pva", conf=ioc.client_conf(), useenv=False) as ctx:
        ctx.get(["Q:A", "Q:B"], timeout=TIMEOUT)  # connected: the puts below go straight out
        outcomes: list = []
        names = ["Q:A", "Q:B", "Q:A", "Q:B", "Q:A"]
        values = [1.0, 2.0, 3.0, 50.0, 5.0]  # 50 is beyond Q:B's limits: refused, in its turn
        with ioc._lock:  # as the update loop holds it during a step
            sender = threading.Thread(target=lambda: outcomes.extend(put_many(ctx, names, values, TIMEOUT)))
            sender.start()
            until(lambda: ioc._puts.waiting == len(names), TIMEOUT, "the puts queued behind the lock")
            assert ioc.audit.puts() == []  # nothing handled while the machine is busy
        sender.join(TIMEOUT)
        assert not sender.is_alive()
        assert outcomes[:3] == [None, None, None] and outcomes[4] is None
        assert isinstance(outcomes[3], RemoteError)
        assert [(r.pv, r.value, r.outcome) for r in ioc.audit.puts()] == [
            ("Q:A", 1.0, ACCEPTED), ("Q:B", 2.0, ACCEPTED), ("Q:A", 3.0, ACCEPTED),
            ("Q:B", 50.0, REJECTED), ("Q:A", 5.0, ACCEPTED)]
        # the worker counts a handler done just after it answered its put: wait for that, bounded
        until(lambda: ioc._puts.waiting == 0, TIMEOUT, "the put queue drained")
        # and once the machine is free again a put is handled at once, audited as before
        assert put_many(ctx, ["Q:A"], [6.0], TIMEOUT) == [None]
        assert ioc.audit.puts()[-1].applied == 6.0
        assert float(ctx.get("Q:A", timeout=TIMEOUT)) == 6.0


def test_many_puts_at_once_are_each_audited_with_their_peer(softioc_factory):
    ioc = softioc_factory({"ioc": {"seed": 1}, "setpoint": [
        {"name": f"M:{i:03d}", "initial": 0.0} for i in range(200)]})
    names = [f"M:{i:03d}" for i in range(200)]
    with Context("pva", conf=ioc.client_conf(), useenv=False) as ctx:
        assert put_many(ctx, names, [float(i) for i in range(200)], TIMEOUT) == [None] * 200
        assert [float(v) for v in ctx.get(names, timeout=TIMEOUT)] == [float(i) for i in range(200)]
    records = ioc.audit.puts(outcome=ACCEPTED)
    assert sorted(r.pv for r in records) == names
    assert all(r.peer.startswith("127.0.0.1:") and r.applied == float(r.pv[2:]) for r in records)


# ---- get_many ------------------------------------------------------------------------------

def test_get_many_gives_each_pv_its_reading_or_its_own_error(softioc_factory):
    ioc = softioc_factory(CONFIG)
    with Context("pva", conf=ioc.client_conf(), useenv=False) as ctx:
        ctx.put("Q:A", 4.5, timeout=TIMEOUT)
        start = time.monotonic()
        replies = get_many(ctx, ["Q:A", "NO:SUCH:PV", "Q:B"], 0.5, convert=reading_of)
        assert time.monotonic() - start < TIMEOUT  # bounded by the 0.5 s, not waiting forever
        assert replies[0].value == 4.5 and replies[0].severity == 0 and replies[0].timestamp > 0
        assert isinstance(replies[1], TimeoutError) and "NO:SUCH:PV" in str(replies[1])
        assert replies[2].value == 0.0
        raw = get_many(ctx, ["Q:A"], TIMEOUT)[0]  # without convert: the raw Value, value and alarm set
        assert raw["value"] == 4.5 and {"value", "alarm.severity"} <= raw.asSet()
        assert "display.units" not in raw.asSet()  # only value, alarm and time stamp were asked for


def test_get_many_on_a_context_closed_meanwhile_fails_at_once_as_closed(softioc_factory):
    ioc = softioc_factory(CONFIG)
    ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
    from epics_pva.transport import mark_closed

    closer = threading.Timer(0.2, lambda: (mark_closed(ctx), ctx.close()))
    closer.start()
    try:
        start = time.monotonic()
        replies = get_many(ctx, ["NO:SUCH:PV", "NOR:THIS"], 30.0)  # would wait 30 s for these
        assert time.monotonic() - start < 10.0
    finally:
        closer.join()
    assert all(isinstance(r, ContextClosedError) for r in replies)
    with pytest.raises(ContextClosedError):
        raise get_many(ctx, ["Q:A"], TIMEOUT)[0]  # and a closed context is refused before sending


def test_puts_still_arriving_while_queued_ones_drain_all_complete(softioc_factory, until):
    """The server's thread keeps handing puts over while a worker drains the queued ones: neither
    may wait for the other (a drained put's operation, freed, waits for the server's thread)."""
    names = [f"D:{i:03d}" for i in range(300)]
    ioc = softioc_factory({"ioc": {"seed": 1}, "setpoint": [{"name": n, "initial": 0.0} for n in names]})
    with Context("pva", conf=ioc.client_conf(), useenv=False) as ctx:
        ctx.get(names, timeout=TIMEOUT)
        for round_ in range(5):
            outcomes: list = []
            values = [float(round_)] * len(names)
            with ioc._lock:
                sender = threading.Thread(target=lambda out=outcomes, vals=values: out.extend(
                    put_many(ctx, names, vals, 20.0)))
                sender.start()
                until(lambda: ioc._puts.waiting > 0, TIMEOUT, "a put queued behind the lock")
            sender.join(30.0)  # released while the rest of the 300 still arrive
            assert not sender.is_alive(), "puts stuck: the server's thread and the worker wait on each other"
            assert outcomes == [None] * len(names)
        # the worker counts a handler done just after it answered its put: wait for that, bounded
        until(lambda: ioc._puts.waiting == 0, TIMEOUT, "the put queue drained")
        assert {float(v) for v in ctx.get(names, timeout=TIMEOUT)} == {4.0}
