"""The soft IOC obeys its owner: control PVs (and, if asked, setpoints) accept writes only from
the accounts and hosts their rule names; serving beyond loopback and under a prefix.

"Another account" is a real one: a child process drops to the OS account `nobody` before it
opens its p4p context, so the server sees that account in `op.account()` (needs root).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial

import pytest
from _network import other_address
from p4p.client.thread import Context, RemoteError

from epics_pva import Interface, PutError, wait_for_readback
from epics_pva.tools.preflight import run_preflight
from softioc import NetworkRefused, SoftIOC
from softioc.pytest_plugin import demo_config_path
from softioc.server import owner

CONFIG = {"setpoint": [{"name": "DEMO:Q1:SET", "readback": "DEMO:Q1:RBV", "limits": [-5.0, 5.0]}]}
ARM = "SOFTIOC:FAULT:ARM"
# one soft IOC, and a machine of two shard processes (the second serves DEMO:Q2:SET)
PROCESSES = pytest.mark.parametrize("processes", [1, 2])


def config_for(processes: int, **ioc) -> dict:
    """CONFIG for one process; for two, a second setpoint so that each shard serves one."""
    setpoints = CONFIG["setpoint"] + ([{"name": "DEMO:Q2:SET", "readback": "DEMO:Q2:RBV", "limits": [-5.0, 5.0]}]
                                      if processes > 1 else [])
    return {"ioc": {**ioc, "processes": processes}, "setpoint": setpoints}


def armed_kinds(ioc, pv: str) -> list[str]:
    """The kinds of the faults armed on `pv` (a machine lists them as dicts)."""
    return [a["kind"] if isinstance(a, dict) else a.fault.kind for a in ioc.faults.active(pv)]

_AS_NOBODY = """
import json, os, sys
from p4p.client.thread import Context
os.setgid(65534); os.setuid(65534)  # from here on the process is the account nobody
conf, puts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ctx = Context("pva", conf=conf, useenv=False)
out = []
for name, value in puts:
    try:
        ctx.put(name, value, timeout=5)
        out.append(None)
    except Exception as exc:
        out.append(f"{type(exc).__name__}: {exc}")
ctx.close()
print(json.dumps(out))
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing to another OS account needs root")


def put_as_nobody(ioc: SoftIOC, puts: list[tuple[str, object]]) -> list[str | None]:
    """Send each put from a process of the account nobody; each one's error text, or None."""
    child = subprocess.run(
        [sys.executable, "-c", _AS_NOBODY, json.dumps(ioc.client_conf()), json.dumps(puts)],
        capture_output=True, text=True, timeout=60, cwd="/",
        env={k: v for k, v in os.environ.items() if not k.startswith("EPICS_")})
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout)


@needs_root
@PROCESSES
def test_control_pvs_refuse_another_account_and_the_audit_records_it(softioc_factory, processes):
    ioc = softioc_factory(config_for(processes))
    errors = put_as_nobody(ioc, [(ARM, "DEMO:Q1:SET put_reject count=1"), ("SOFTIOC:RESTART", 0.1),
                                 ("SOFTIOC:FAULT:CLEAR", ""), ("DEMO:Q1:SET", 1.5)])
    for name, error in zip((ARM, "SOFTIOC:RESTART", "SOFTIOC:FAULT:CLEAR"), errors[:3], strict=True):
        assert error == (f"RemoteError: {name}: write refused by the soft IOC's control_from rule: "
                         f"account 'nobody' from 127.0.0.1 is not in ['{owner()}']")
    assert errors[3] is None  # setpoints are open to every client by default
    assert ioc.faults.active() == [] and ioc.running
    if processes > 1:
        # each shard's own control PVs obey the rule too, and are audited by their shard
        assert put_as_nobody(ioc, [("SOFTIOC:SHARD1:FAULT:ARM", "DEMO:Q2:SET put_reject count=1")]) == [
            "RemoteError: SOFTIOC:SHARD1:FAULT:ARM: write refused by the soft IOC's control_from rule: "
            f"account 'nobody' from 127.0.0.1 is not in ['{owner()}']"]
        assert [r.pv for r in ioc.audit.puts(outcome="rejected")][-1] == "SOFTIOC:SHARD1:FAULT:ARM"
    # the machine's control PVs audit their refusals as one soft IOC's do
    rejected = [r for r in ioc.audit.puts(outcome="rejected") if "SHARD1" not in r.pv]
    assert [r.pv for r in rejected] == [ARM, "SOFTIOC:RESTART", "SOFTIOC:FAULT:CLEAR"]
    assert rejected[0].value == "DEMO:Q1:SET put_reject count=1" and rejected[1].value == 0.1
    assert all("control_from" in r.message and r.peer.startswith("127.0.0.1:") for r in rejected)
    assert [(r.pv, r.value) for r in ioc.audit.puts(outcome="accepted")] == [("DEMO:Q1:SET", 1.5)]
    ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
    try:  # the owner still can
        ctx.put(ARM, "DEMO:Q1:SET put_reject count=1", timeout=5)
        assert armed_kinds(ioc, "DEMO:Q1:SET") == ["put_reject"]
    finally:
        ctx.close()


@needs_root
@PROCESSES
def test_control_from_names_who_else_may_write(softioc_factory, processes):
    ioc = softioc_factory(config_for(processes, control_from=["nobody@127.0.0.1"]))
    assert put_as_nobody(ioc, [(ARM, "DEMO:Q1:SET put_reject count=1")]) == [None]
    assert armed_kinds(ioc, "DEMO:Q1:SET") == ["put_reject"]
    ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
    try:  # a list given replaces the default: the owner is not in it
        with pytest.raises(RemoteError, match=rf"account '{owner()}' from 127.0.0.1 is not in \['nobody@127.0.0.1'\]"):
            ctx.put("SOFTIOC:FAULT:CLEAR", "", timeout=5)
    finally:
        ctx.close()
    everyone = softioc_factory(config_for(processes, control_from=["@localhost"]))
    assert put_as_nobody(everyone, [("SOFTIOC:FAULT:CLEAR", "")]) == [None]


@needs_root
@PROCESSES
def test_write_from_restricts_setpoints_and_the_interface_names_the_rule(softioc_factory, processes):
    ioc = softioc_factory(config_for(processes, write_from=[owner()]))
    [error] = put_as_nobody(ioc, [("DEMO:Q1:SET", 2.0)])
    assert error == ("RemoteError: DEMO:Q1:SET: write refused by the soft IOC's write_from rule: "
                     f"account 'nobody' from 127.0.0.1 is not in ['{owner()}']")
    with Interface(conf=ioc.client_conf()) as interface:
        interface.set_values({"DEMO:Q1:SET": 1.0})
    assert [(r.pv, r.value, r.outcome) for r in ioc.audit.puts()] == [
        ("DEMO:Q1:SET", 2.0, "rejected"), ("DEMO:Q1:SET", 1.0, "accepted")]
    closed = softioc_factory(config_for(processes, write_from=["someone-else"]))
    with Interface(conf=closed.client_conf()) as interface:
        with pytest.raises(PutError, match="put rejected by the server: DEMO:Q1:SET: write refused by the soft "
                                           "IOC's write_from rule"):
            interface.set_value("DEMO:Q1:SET", 1.0)
        assert float(interface.get_value("DEMO:Q1:SET")) == 0.0


@pytest.mark.parametrize("entries, why", [
    ("root", "must be list"), ([""], "must be"), (["a b"], "no spaces"), (["alice@"], "names no host"),
])
def test_bad_access_rules_are_config_errors_naming_the_key(entries, why):
    from softioc import ConfigError, load_config

    with pytest.raises(ConfigError, match=rf"\[ioc\].*control_from.*{why}"):
        load_config({**CONFIG, "ioc": {"control_from": entries}})


# ---- shadowing: beyond loopback only when allowed; a prefix keeps real names free --------------


def test_serving_beyond_loopback_is_refused_before_any_server_exists():
    ioc = SoftIOC(demo_config_path(), host="192.0.2.77")
    with pytest.raises(NetworkRefused, match=r"refusing to serve on 192\.0\.2\.77, which is not loopback: it "
                                             r"would answer for these PV names \(DEMO:Q1:SET, "):
        ioc.start()
    assert not ioc.running and not ioc._endpoint.up and ioc._channels == {}
    with pytest.raises(NetworkRefused, match="allow_network"):
        SoftIOC(demo_config_path(), host="0.0.0.0").start()


@pytest.mark.private_network
@PROCESSES
def test_allow_network_serves_on_a_non_loopback_address(softioc_factory, processes):
    address = other_address()
    ioc = softioc_factory(config_for(processes), host=address, allow_network=True)
    conf = ioc.client_conf()
    assert conf["EPICS_PVA_ADDR_LIST"].startswith(f"{address}:")
    assert all(entry.startswith(f"{address}:") for entry in conf["EPICS_PVA_ADDR_LIST"].split())
    names = ["DEMO:Q1:SET", "DEMO:Q2:SET"][:processes]
    with Interface(conf=conf) as interface:
        interface.set_values(dict.fromkeys(names, 1.0))
        assert interface.get_values(names) == dict.fromkeys(names, 1.0)
    config = config_for(processes, allow_network=True)
    assert softioc_factory(config, host=address).running
    with pytest.raises(NetworkRefused, match=f"refusing to serve on {address}"):
        softioc_factory(config_for(processes), host=address)


@PROCESSES
def test_a_prefix_serves_every_pv_under_it_and_the_interface_maps_names(softioc_factory, processes):
    ioc = softioc_factory(config_for(processes, prefix="SIM:"))
    ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
    try:
        for name in ioc.pv_names():  # every shard's PVs, under the prefix, with the one id
            assert ctx.get("SIM:" + name, timeout=5).raw["softiocId"] == ioc.identity
        assert ctx.get("SIM:SOFTIOC:ID", timeout=5).raw["value"] == ioc.identity
        with pytest.raises(TimeoutError):
            ctx.get("DEMO:Q1:SET", timeout=1.0)  # the real name is not answered
    finally:
        ctx.close()
    assert ioc.interface_settings() == {"EPICS_PVA_INTERFACE_REHEARSAL_ID": ioc.identity,
                                        "EPICS_PVA_INTERFACE_PREFIX": "SIM:"}
    check = partial(wait_for_readback, readback_pv="DEMO:Q1:RBV", tolerance=0.01, count_down=5.0, offset=0.0)
    with Interface(conf=ioc.client_conf(), prefix="SIM:", rehearsal=True, rehearsal_id=ioc.identity) as interface:
        results = interface.set_values({"DEMO:Q1:SET": 1.25}, configs={"DEMO:Q1:SET": check})
        assert list(results) == ["DEMO:Q1:SET"] and results["DEMO:Q1:SET"].pv == "DEMO:Q1:SET"
        assert results["DEMO:Q1:SET"].validation_result == pytest.approx(1.25, abs=0.01)  # the readback, via the prefix
        assert interface.get_values(["DEMO:Q1:SET"]) == {"DEMO:Q1:SET": 1.25}
        with pytest.raises(PutError, match=r"^DEMO:Q1:RBV = 1.0: put rejected by the server: DEMO:Q1:RBV is read-only"):
            interface.set_value("DEMO:Q1:RBV", 1.0)  # errors name the PV as given
    assert [(r.pv, r.value, r.outcome) for r in ioc.audit.puts()] == [
        ("DEMO:Q1:SET", 1.25, "accepted"), ("DEMO:Q1:RBV", 1.0, "rejected")]
    report = run_preflight({"DEMO:Q1:SET": None}, ["DEMO:Q1:RBV"], conf=ioc.client_conf(), prefix="SIM:",
                           update_time=0)
    assert report.ok() and [c.pv for c in report.checks] == ["DEMO:Q1:SET", "DEMO:Q1:RBV"]
    assert not run_preflight({"DEMO:Q1:SET": None}, conf=ioc.client_conf(), update_time=0, timeout=0.5).ok()
    if processes > 1:  # the second shard's PV, in the same rehearsal
        with Interface(conf=ioc.client_conf(), prefix="SIM:", rehearsal=True, rehearsal_id=ioc.identity) as interface:
            interface.set_values({"DEMO:Q1:SET": 0.5, "DEMO:Q2:SET": -0.5})
            assert interface.get_values(["DEMO:Q1:SET", "DEMO:Q2:SET"]) == {"DEMO:Q1:SET": 0.5, "DEMO:Q2:SET": -0.5}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "softioc", *map(str, args)], capture_output=True, text=True,
                          timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("EPICS_")})


def test_cli_refuses_a_network_host_without_allow_network_and_prints_prefix_and_id():
    refused = run_cli(demo_config_path(), "--host", "192.0.2.77", "--duration", "0")
    assert refused.returncode == 1 and "refusing to serve on 192.0.2.77" in refused.stderr
    assert "--allow-network" in refused.stderr and "# ready" not in refused.stdout
    served = run_cli(demo_config_path(), "--prefix", "SIM:", "--control-from", "nobody", "--duration", "0")
    assert served.returncode == 0, served.stderr
    lines = served.stdout.splitlines()
    ids = [line.split("=", 1)[1] for line in lines if line.startswith("EPICS_PVA_INTERFACE_REHEARSAL_ID=")]
    assert len(ids) == 1 and len(ids[0]) == 32
    assert "EPICS_PVA_INTERFACE_PREFIX=SIM:" in lines
    assert any("control PVs under SIM:SOFTIOC:" in line for line in lines)
    assert run_cli(demo_config_path(), "--prefix", "SIM:", "--list-pvs").stdout.split()[0] == "SIM:DEMO:Q1:SET"
    bad = run_cli(demo_config_path(), "--control-from", "a b", "--duration", "0")
    assert bad.returncode == 2 and "--control-from" in bad.stderr
