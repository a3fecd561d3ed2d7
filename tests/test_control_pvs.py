"""Control PVs: arm, clear and watch faults over the wire from a client that is not the test's IOC
(the fault spec's parsing: tests/unit/test_control_pvs.py)."""

import json
import math
import subprocess
import sys
import textwrap

import pytest
from p4p.client.thread import RemoteError

from softioc.server import CONTROL_PVS
from softioc.testing import wait_for_value

FAST = {"seed": 3, "update_rate": 100.0, "time_scale": 10.0}
MACHINE = {"ioc": FAST, "setpoint": [
    {"name": "X:SET", "readback": "X:RBV", "limits": [-10, 10]},
    {"name": "Y:SET", "readback": "Y:RBV"},
]}
CONTROL = ["FAULT:ARM", "FAULT:CLEAR", "FAULT:ACTIVE", "FAULT:FIRED", "FAULT:LAST", "PUTS", "RESTART", "TIME"]


@pytest.fixture
def ioc(softioc_factory):
    return softioc_factory(MACHINE)


@pytest.fixture
def operator(ioc, client_for):
    """A client that only talks to the control PVs."""
    return client_for(ioc)


@pytest.fixture
def machine_client(ioc, client_for):
    """Another client: the one whose puts the faults affect."""
    return client_for(ioc)


def test_control_pvs_are_served_under_the_prefix(ioc, operator):
    values = operator.get([f"SOFTIOC:{name}" for name in CONTROL], timeout=5)
    assert json.loads(values[2]) == [] and int(values[3]) == 0 and int(values[5]) == 0


def test_one_iocs_control_pvs_are_the_shared_table_then_its_id(ioc, operator):
    # the table a machine's control surface serves too (softioc.surface), in its order
    assert [name for name, _code, _initial in CONTROL_PVS] == CONTROL
    assert ioc.pv_names(control=True)[-len(CONTROL) - 1:] == [f"SOFTIOC:{n}" for n in [*CONTROL, "ID"]]
    assert operator.get("SOFTIOC:ID", timeout=5) == ioc.identity


def test_arm_over_the_wire_then_watch_and_clear(ioc, operator, machine_client, monitor):
    active, fired, last = (monitor(operator, f"SOFTIOC:FAULT:{n}") for n in ("ACTIVE", "FIRED", "LAST"))
    operator.put("SOFTIOC:FAULT:ARM", "X:SET put_reject count=2 message='beam permit lost'", timeout=5)
    (entry,) = json.loads(active.wait_value(lambda v: v != "[]"))
    armed = active.mark()
    assert entry == {"pv": "X:SET", "kind": "put_reject", "count": 2, "probability": None,
                     "message": "beam permit lost", "fired": 0, "remaining": 2}
    for value in (1.0, 2.0):
        with pytest.raises(RemoteError, match="beam permit lost"):
            machine_client.put("X:SET", value, timeout=5)
    machine_client.put("X:SET", 3.0, timeout=5)
    fired.wait_value(lambda v: v == 2)
    active.wait_value(lambda v: v == "[]", after=armed)  # spent, so no longer armed
    assert json.loads(last.wait_value(lambda v: '"expired"' in v))["kind"] == "put_reject"
    monitor(operator, "SOFTIOC:PUTS").wait_value(lambda v: v == 3)
    assert [f.detail["value"] for f in ioc.audit.faults("X:SET")] == [1.0, 2.0]

    operator.put("SOFTIOC:FAULT:ARM", "X:SET put_reject count=null", timeout=5)
    operator.put("SOFTIOC:FAULT:ARM", "Y:SET put_reject count=null", timeout=5)
    active.wait_value(lambda v: len(json.loads(v)) == 2)
    operator.put("SOFTIOC:FAULT:CLEAR", "X:SET", timeout=5)
    assert [a.pv for a in ioc.faults.active()] == ["Y:SET"]
    machine_client.put("X:SET", 4.0, timeout=5)
    operator.put("SOFTIOC:FAULT:CLEAR", "", timeout=5)  # empty: every fault
    assert ioc.faults.active() == []
    machine_client.put("Y:SET", 4.0, timeout=5)


def test_put_timeout_armed_over_the_wire(ioc, operator, machine_client):
    operator.put("SOFTIOC:FAULT:ARM", "X:SET put_timeout count=1 apply=true", timeout=5)
    machine_client.get("X:SET", timeout=5)  # connected: the timeout below is the fault's, not a search's
    with pytest.raises(TimeoutError):
        machine_client.put("X:SET", 7.0, timeout=0.5)
    assert float(machine_client.get("X:SET", timeout=5)) == 7.0
    operator.put("SOFTIOC:FAULT:CLEAR", "", timeout=5)
    assert ioc.faults.held() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("X:SET", "SOFTIOC:FAULT:ARM: expected 'PV KIND key=value ...'"),
        ("X:SET melt", "SOFTIOC:FAULT:ARM: unknown fault kind 'melt'"),
        ("NOPE put_reject", "SOFTIOC:FAULT:ARM: 'NOPE' is not served by this soft IOC"),
        ("X:RBV stuck_readback", "'X:RBV' is not a setpoint"),
        ("X:SET put_reject count=abc", "parameter 'count' has the wrong type"),
        ("X:SET put_reject count=0", "count must be >= 1"),
        ("* put_reject", "'*' (the whole server) does not take fault 'put_reject'"),
    ],
)
def test_bad_arm_requests_are_refused_with_a_message(ioc, operator, text, message):
    with pytest.raises(RemoteError) as info:
        operator.put("SOFTIOC:FAULT:ARM", text, timeout=5)
    assert message in str(info.value)
    assert ioc.faults.active() == []


@pytest.mark.parametrize("name", ["FAULT:ACTIVE", "FAULT:FIRED", "FAULT:LAST", "PUTS", "TIME"])
def test_status_pvs_are_read_only(ioc, operator, name):
    with pytest.raises(RemoteError, match=f"SOFTIOC:{name} is read-only"):
        operator.put(f"SOFTIOC:{name}", "1" if "LAST" in name or "ACTIVE" in name else 1, timeout=5)


def test_restart_over_the_wire(ioc, operator, client_for, monitor):
    victim = client_for(ioc)
    rbv = monitor(victim, "X:RBV")
    rbv.wait_value(lambda v: True)
    connected = rbv.mark()
    conf = ioc.client_conf()
    with pytest.raises(RemoteError, match="downtime must be within"):
        operator.put("SOFTIOC:RESTART", -1.0, timeout=5)
    operator.put("SOFTIOC:RESTART", 0.3, timeout=5)  # completes before the server goes away
    rbv.wait_disconnect(after=connected)
    mark = rbv.mark()
    victim.put("X:SET", 2.0, timeout=15)  # the same context reconnects to the same ports
    rbv.wait_value(lambda v: v == 2.0, timeout=15, after=mark)
    assert ioc.client_conf() == conf


def test_time_pv_follows_simulated_time(ioc, operator, monitor):
    time_pv = monitor(operator, "SOFTIOC:TIME")
    value = float(time_pv.wait_value(lambda v: v >= 1.0))
    assert value <= ioc.sim_time + 1e-6  # published rounded to a microsecond


def test_custom_control_prefix(softioc_factory, client_for):
    ioc = softioc_factory({**MACHINE, "ioc": {**FAST, "control_prefix": "SIM1:"}})
    ctx = client_for(ioc)
    ctx.put("SIM1:FAULT:ARM", "X:SET put_reject", timeout=5)
    with pytest.raises(RemoteError, match="put rejected by fault injection"):
        ctx.put("X:SET", 1.0, timeout=5)
    with pytest.raises(TimeoutError):
        ctx.get("SOFTIOC:FAULT:ARM", timeout=0.2)


CHILD = textwrap.dedent("""
    import json, sys
    from p4p.client.thread import Context
    ctx = Context("pva", conf=json.loads(sys.argv[1]), useenv=False)
    ctx.put("SOFTIOC:FAULT:ARM", "X:SET put_reject count=1 message='armed by another process'", timeout=5)
    print(ctx.get("SOFTIOC:FAULT:ACTIVE", timeout=5).raw["value"])  # published before the put completed
    ctx.close()
""")


def test_another_process_arms_a_fault(ioc, machine_client):
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(ioc.client_conf())],
                           capture_output=True, text=True, timeout=30)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout)[0]["message"] == "armed by another process"
    with pytest.raises(RemoteError, match="armed by another process"):
        machine_client.put("X:SET", 1.0, timeout=5)
    machine_client.put("X:SET", 1.0, timeout=5)


# (control PV, value, what the rejection says); each refused put leaves nothing armed
BAD_CONTROL_PUTS = [
    ("FAULT:ARM", "X:SET put_reject count=1 count=2", "key 'count' is given twice"),
    ("FAULT:ARM", "X:SET put_reject pv=Y:SET", "key 'pv' is the first word"),
    ("FAULT:ARM", "X:SET put_reject message=" + "m" * 10**6, "the limit is 10,000"),
    ("FAULT:ARM", "X:SET put_reject message=\x1b[2J", "contains the character '\\x1b'"),
    ("FAULT:ARM", "X:SET put_reject count=" + "[" * 5000 + "]" * 5000, "count"),
    ("FAULT:CLEAR", "NOPE", "cannot clear faults on 'NOPE': not a PV of this IOC"),
    ("FAULT:CLEAR", "X:SET\x01", "contains the character '\\x01'"),
    ("FAULT:CLEAR", "y" * 10**6, "1,000,000 characters long"),
    ("RESTART", math.nan, "downtime must be within [0, 3600] s, got nan"),
    ("RESTART", math.inf, "got inf"),
    ("RESTART", 1e300, "got 1e+300"),
    ("RESTART", -1.0, "got -1.0"),
]


def test_bad_control_puts_are_rejected_and_the_ioc_keeps_answering(ioc, operator):
    operator.put("SOFTIOC:FAULT:ARM", "Y:SET put_reject count=null", timeout=5)
    for name, value, message in BAD_CONTROL_PUTS:
        with pytest.raises(RemoteError) as info:
            operator.put(f"SOFTIOC:{name}", value, timeout=5)
        assert f"SOFTIOC:{name}: " in str(info.value) and message in str(info.value), (name, info.value)
        assert [a.pv for a in ioc.faults.active()] == ["Y:SET"], (name, value)  # nothing armed or cleared
        assert isinstance(json.loads(operator.get("SOFTIOC:FAULT:ACTIVE", timeout=5)), list)
        assert operator.get("X:RBV", timeout=5) is not None
    assert ioc._serve_again_at is None  # no refused RESTART took the server down


def test_a_nul_in_control_text_is_cut_by_the_client_before_the_server_sees_it(ioc, operator):
    # the PVAccess client ends the string at NUL; the server can only judge what arrives
    operator.put("SOFTIOC:FAULT:ARM", "X:SET put_reject\x00 count=2", timeout=5)
    assert [(a.pv, a.fault.kind, a.remaining) for a in ioc.faults.active()] == [("X:SET", "put_reject", 1)]


def test_text_beginning_with_a_brace_is_read_by_the_client_as_json_and_never_sent(ioc, operator):
    # p4p's thread Context turns a string beginning with '{' into a structure assignment
    before = ioc.audit.put_count()
    with pytest.raises(ValueError, match="as json"):
        operator.put("SOFTIOC:FAULT:ARM", "{X:SET put_reject", timeout=5)
    assert ioc.faults.active() == [] and ioc.audit.put_count() == before
    assert isinstance(json.loads(operator.get("SOFTIOC:FAULT:ACTIVE", timeout=5)), list)


# ---- one process and a machine of two answer alike ---------------------------------------------

PROCESSES = pytest.mark.parametrize("processes", [1, 2])


def _config(processes: int, **ioc) -> dict:
    """MACHINE for `processes` (with two, X on shard 0 and Y on shard 1)."""
    return {**MACHINE, "ioc": {**FAST, "processes": processes, **ioc}}


@PROCESSES
def test_a_refused_control_write_is_counted_in_puts_and_audited(softioc_factory, client_for, processes):
    ioc = softioc_factory(_config(processes, control_from=["someone-else"]))
    operator = client_for(ioc)
    with pytest.raises(RemoteError, match="write refused by the soft IOC's control_from rule"):
        operator.put("SOFTIOC:FAULT:ARM", "X:SET put_reject count=1", timeout=5)
    wait_for_value(operator, "SOFTIOC:PUTS", 1)  # a machine polls its shards at 10 Hz
    [refused] = ioc.audit.puts(outcome="rejected")
    assert (refused.pv, refused.value) == ("SOFTIOC:FAULT:ARM", "X:SET put_reject count=1")
    assert "control_from" in refused.message and refused.peer.startswith("127.0.0.1:")
    operator.put("X:SET", 1.0, timeout=5)  # setpoints are open to everyone
    wait_for_value(operator, "SOFTIOC:PUTS", 2)
    assert ioc.audit.put_count() == 2


@PROCESSES
def test_a_huge_clear_is_refused_with_its_text_cut_short(softioc_factory, client_for, processes):
    ioc = softioc_factory(_config(processes))
    operator = client_for(ioc)
    operator.put("SOFTIOC:FAULT:ARM", "Y:SET put_reject count=null", timeout=5)
    with pytest.raises(RemoteError) as info:
        operator.put("SOFTIOC:FAULT:CLEAR", "X" * 5_000_000, timeout=30)
    assert str(info.value) == ("SOFTIOC:FAULT:CLEAR: a PV name to clear is 5,000,000 characters long; the "
                               "limit is 10,000 (it begins 'XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX)")
    assert [a["pv"] if isinstance(a, dict) else a.pv for a in ioc.faults.active()] == ["Y:SET"]
    assert operator.get("X:RBV", timeout=5) is not None
