"""What epics_pva and the soft IOC take from p4p beyond its documentation: each fails loudly
if a p4p release changes it. Run these (and tests/test_close_races.py) before moving the p4p
pin in pyproject.toml; docs/development.md says how.

Client (epics_pva/transport): no private p4p name is used. Relied on:
- a closed Context's conf() is empty (how is_closed tells that a plain p4p Context is closed);
- a put builder's exception reaches the raw handler rebuilt as type(exc)(exc), so an exception
  of another constructor is lost (why _batch.py raises its own _Refused);
- the raw client's get/put/monitor take a handler each and return an object with close().
Server (softioc/server/_channels.py): no private p4p name is used. Relied on:
- SharedPV(nt=..., wrap=..., unwrap=...) uses wrap and unwrap over the nt's, so a put's
  op.value() is the Value as sent and post() of a ready Value sends it as it is.
"""

from __future__ import annotations

import threading

import pytest
from p4p import Value
from p4p.client.raw import Context as RawContext
from p4p.client.raw import RemoteError
from p4p.client.thread import Context
from p4p.nt import NTScalar, defaultNT
from p4p.server import Server
from p4p.server.thread import SharedPV

from epics_pva.transport import ClientContext, is_closed

TIMEOUT = 5.0


@pytest.fixture
def served():
    """A plain p4p server of one double PV whose put handler keeps what it got."""
    got: list[object] = []
    pv = SharedPV(nt=NTScalar("d"), initial=0.0, wrap=lambda v, **kws: v if isinstance(v, Value)
                  else NTScalar("d").wrap(v, **kws), unwrap=lambda v: v)

    @pv.put
    def put(pv_: SharedPV, op: object) -> None:
        got.append(op.value())  # type: ignore[attr-defined]
        pv_.post(op.value())  # type: ignore[attr-defined]
        op.done()  # type: ignore[attr-defined]

    with Server(providers=[{"API:D": pv}], isolate=True) as server:
        yield server, pv, got


def test_a_closed_contexts_conf_is_empty(served):
    server, _, _ = served
    ctx = Context("pva", conf=server.conf(), useenv=False)
    assert ctx.conf() and not is_closed(ctx)
    ctx.close()
    assert ctx.conf() == {}
    assert is_closed(ctx)


def test_a_put_builders_exception_reaches_the_handler_rebuilt_from_itself(served):
    server, _, _ = served
    with Context("pva", conf=server.conf(), useenv=False) as ctx:
        done = threading.Event()
        seen: list[BaseException] = []

        class Unbuildable(Exception):
            def __init__(self, a: str, b: str) -> None:
                super().__init__(f"{a} {b}")

        for error in (ValueError("plain"), Unbuildable("two", "args")):
            done.clear()
            seen.clear()

            def builder(_value: Value, error: BaseException = error) -> None:
                raise error

            def handler(outcome: object) -> None:
                seen.append(outcome)  # type: ignore[arg-type]
                done.set()

            op = RawContext.put(ctx, "API:D", handler, builder, None, True)
            try:
                got = done.wait(TIMEOUT if isinstance(error, ValueError) else 1.0)
            finally:
                op.close()
            if isinstance(error, ValueError):  # type(exc)(exc): the same message comes through
                assert got and type(seen[0]) is ValueError and str(seen[0]) == "plain"
            else:  # the rebuild fails in p4p: the handler never hears of it
                assert not got


def test_the_raw_client_takes_a_handler_per_operation_and_returns_a_closable_one(served):
    server, _, got = served
    with Context("pva", conf=server.conf(), useenv=False, nt=False) as ctx:
        done = threading.Event()
        outcomes: list[object] = []

        def handler(outcome: object) -> None:
            outcomes.append(outcome)
            done.set()

        def builder(value: Value) -> None:
            value["value"] = 2.5

        op = RawContext.put(ctx, "API:D", handler, builder, None, False)  # no Get first
        assert done.wait(TIMEOUT)
        op.close()
        assert outcomes == [None] and isinstance(got[-1], Value) and got[-1]["value"] == 2.5
        done.clear()
        op = RawContext.get(ctx, "API:D", handler, RawContext.makeRequest("field(value)"))
        assert done.wait(TIMEOUT)
        op.close()
        assert isinstance(outcomes[-1], Value) and outcomes[-1]["value"] == 2.5
        done.clear()
        sub = RawContext.monitor(ctx, "API:D", done.set, None)
        assert done.wait(TIMEOUT)
        assert isinstance(sub.pop(), Value)
        sub.close()
        assert not isinstance(outcomes[-1], RemoteError)


def test_default_nt_helpers_unwrap_and_assign(served):
    helpers = defaultNT()
    value = NTScalar("d").wrap(1.5)
    helper = helpers[value.getID()]()
    assert float(helper.unwrap(value)) == 1.5 and helper.unwrap(value).raw is value
    helper.assign(value, 3.0)
    assert value["value"] == 3.0


def test_a_client_context_unwraps_for_its_callers_as_p4p_does(served):
    server, _, _ = served
    with ClientContext("pva", conf=server.conf(), useenv=False) as ctx, \
            Context("pva", conf=server.conf(), useenv=False) as plain:
        ctx.put("API:D", 4.5, timeout=TIMEOUT)
        ours, theirs = ctx.get("API:D", timeout=TIMEOUT), plain.get("API:D", timeout=TIMEOUT)
        assert type(ours) is type(theirs) and ours == theirs == 4.5
    assert ctx.closed and is_closed(ctx)


def test_a_close_ends_a_batch_whose_list_holds_operations_never_started(caplog):
    """A batch cut off while starting keeps None where an operation was not started; close()
    ends the others all the same (it stopped at the None, logging an AttributeError, and left
    the rest to be freed on a stopped loop; seen when a fork closed contexts under reads)."""
    from epics_pva.transport._gate import gate_of, kept

    # a port nothing serves, on loopback: the get stays pending, no traffic leaves the host
    ctx = ClientContext("pva", conf={"EPICS_PVA_ADDR_LIST": "127.0.0.1:9", "EPICS_PVA_AUTO_ADDR_LIST": "NO"},
                        useenv=False)
    gate = gate_of(ctx)
    assert gate.enter()
    try:
        pending = RawContext.get(ctx, "NOBODY:SERVES:THIS", lambda _value: None)
    finally:
        gate.leave()
    ops = [None, pending]  # the first one's start was cut off by a close
    kept(ctx, ops)
    assert gate.operations() == 1
    with caplog.at_level("ERROR", logger="epics_pva"):
        ctx.close()
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
