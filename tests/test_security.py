"""Security habits: loopback by default and said so, config files that cannot run code, control
PVs that cannot either, and an interface that never writes in read-only mode.

The soft IOC's expression whitelist is unit-tested in test_expression.py and its refusals in
test_config.py; here the same attempts come in through the doors a user has: a TOML file,
the command line, a control PV over the wire.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _network import OUTER_TIMEOUT_S, other_address, private_network_unavailable
from p4p.client.thread import Context, RemoteError

from epics_pva import Interface
from softioc import ConfigError, SoftIOC
from softioc.pytest_plugin import demo_config_path

CONFIG = {
    "ioc": {"seed": 31, "update_rate": 50.0},
    "setpoint": [
        {"name": "SEC:A:SET", "readback": "SEC:A:RBV", "limits": [-10, 10]},
        {"name": "SEC:B:SET", "readback": "SEC:B:RBV", "limits": [-10, 10]},
    ],
}
SHORT = 1.0


@pytest.fixture
def softioc_config():
    return CONFIG


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}
    return {**env, **extra}


def listening(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on `port` (Linux /proc/net)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    addresses.add(str(ipaddress.IPv4Address(raw[::-1])))
                else:
                    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                    addresses.add(str(ipaddress.IPv6Address(b"".join(words))))
    return addresses


def found_via(ioc: SoftIOC, address: str) -> bool:
    """Whether a client searching only at `address` finds the IOC's PV."""
    conf = dict(ioc.client_conf(), EPICS_PVA_ADDR_LIST=f"{address}:{ioc.client_conf()['EPICS_PVA_BROADCAST_PORT']}")
    with Context("pva", conf=conf, useenv=False) as ctx:
        try:
            ctx.get("SEC:A:SET", timeout=SHORT)
            return True
        except TimeoutError:
            return False


# ---- where the soft IOC listens --------------------------------------------------------------

@pytest.mark.private_network
def test_tests_beyond_loopback_run_where_no_other_host_is():
    """The namespace a private_network test runs in has loopback and its own veth pair only."""
    assert {name for _, name in socket.if_nameindex()} == {"lo", "pvatest0", "pvatest1"}
    assert other_address() == "198.51.100.1"


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net (Linux)")
@pytest.mark.private_network
def test_the_soft_ioc_listens_on_loopback_only_and_says_where(softioc_factory, caplog):
    with caplog.at_level(logging.INFO, logger="softioc.server"):
        ioc = softioc_factory(CONFIG)
    port = int(ioc.client_conf()["EPICS_PVA_SERVER_PORT"])
    assert listening(port) == {"127.0.0.1"}
    assert found_via(ioc, "127.0.0.1")
    assert not found_via(ioc, other_address())  # a search arriving on another interface is not answered
    assert f"soft IOC serving 4 PVs on 127.0.0.1 tcp:{port} " in caplog.text


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net (Linux)")
@pytest.mark.private_network
def test_another_interface_only_when_named(softioc_factory):
    address = other_address()
    ioc = softioc_factory(CONFIG, host=address, allow_network=True)
    port = int(ioc.client_conf()["EPICS_PVA_SERVER_PORT"])
    assert listening(port) == {address}  # that interface, and not loopback or every interface
    assert found_via(ioc, address)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "softioc", *args], capture_output=True, text=True,
                          timeout=30, env=env or clean_env())


@pytest.mark.private_network
def test_the_command_line_warns_when_serving_beyond_loopback():
    address = other_address()
    done = run_cli(str(demo_config_path()), "--host", address, "--allow-network", "--duration", "0.5")
    assert done.returncode == 0, done.stderr
    assert f"# WARNING: serving on {address}, not loopback: other hosts can reach these PVs" in done.stdout
    assert f"WARNING softioc: serving on {address}, not loopback" in done.stderr


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net (Linux)")
def test_the_environment_cannot_widen_where_the_command_line_listens():
    """A developer's EPICS_PVAS_* settings are ignored: only --host moves the server."""
    env = clean_env(EPICS_PVAS_INTF_ADDR_LIST="0.0.0.0", EPICS_PVAS_BEACON_ADDR_LIST="255.255.255.255",
                    EPICS_PVAS_AUTO_BEACON_ADDR_LIST="YES")
    proc = subprocess.Popen([sys.executable, "-m", "softioc", str(demo_config_path()), "--duration", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = []
        for line in proc.stdout:  # ends at '# ready' (or at exit)
            banner.append(line.rstrip("\n"))
            if banner[-1] == "# ready":
                break
        assert banner and banner[-1] == "# ready", banner
        port = int(next(line.split("=")[1] for line in banner if line.startswith("EPICS_PVA_SERVER_PORT=")))
        assert listening(port) == {"127.0.0.1"}
        assert banner[0].startswith("# soft IOC ") and " serving on 127.0.0.1 tcp:" in banner[0]
        assert not any("WARNING" in line for line in banner)
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


# ---- config files are data -------------------------------------------------------------------

ESCAPES = [
    "__import__('os').system('touch {marker}')",
    "eval(\"__import__('os').system('touch {marker}')\")",
    "exec(\"open('{marker}', 'w')\")",
    "open('{marker}', 'w')",
    "().__class__.__base__.__subclasses__()",
    "q.__class__",
    "(lambda: __import__('os').system('touch {marker}'))()",
    "[__import__('os').system('touch {marker}') for _ in 'x'][0]",
    "f\"{{__import__('os').system('touch {marker}')}}\"",
    "(x := __import__('os'))",
    "max(q, __import__('os').system('touch {marker}'))",
    "globals()['__builtins__']",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_an_expression_in_a_config_file_cannot_run_code(tmp_path, escape):
    marker = tmp_path / "was-executed"
    config = tmp_path / "machine.toml"
    expression = escape.format(marker=marker)
    config.write_text(  # a TOML literal string: the expression exactly as written, quotes and all
        '[[setpoint]]\nname = "SEC:Q:SET"\nreadback = "SEC:Q:RBV"\n\n'
        f"[[observable]]\nname = \"SEC:OBJ\"\nexpression = '''{expression}'''\n"
        'inputs = { q = "SEC:Q:RBV" }\n'
    )
    with pytest.raises(ConfigError) as info:
        SoftIOC(config)
    assert str(config) in str(info.value) and "key 'expression'" in str(info.value)
    assert not marker.exists()
    done = run_cli(str(config))  # the command line refuses it the same way, and runs nothing
    assert done.returncode == 2 and "key 'expression'" in done.stderr
    assert not marker.exists()


def test_a_fault_table_cannot_smuggle_code_either(tmp_path):
    marker = tmp_path / "was-executed"
    config = tmp_path / "machine.toml"
    config.write_text(
        '[[setpoint]]\nname = "SEC:Q:SET"\n\n'
        f'[[fault]]\npv = "SEC:Q:SET"\nkind = "put_timeout"\ncount = "__import__(\'os\').system(\'touch {marker}\')"\n'
    )
    with pytest.raises(ConfigError, match=r"parameter 'count' has the wrong type"):
        SoftIOC(config)
    assert not marker.exists()


def test_arithmetic_that_overflows_gives_nan_or_inf_not_a_hang(softioc_factory, client_for):
    # numbers are floats: 9**9**9**9 overflows at once instead of computing a huge integer
    ioc = softioc_factory({
        "setpoint": [{"name": "SEC:Q:SET", "readback": "SEC:Q:RBV"}],
        "observable": [{"name": "SEC:HUGE", "expression": "9**9**9**9 + q", "inputs": {"q": "SEC:Q:RBV"}},
                       {"name": "SEC:INF", "expression": "(q + 1e308) * 10", "inputs": {"q": "SEC:Q:RBV"}}],
    })
    ctx = client_for(ioc)
    huge, inf = ctx.get(["SEC:HUGE", "SEC:INF"], timeout=5)
    assert str(float(huge)) == "nan" and float(inf) == float("inf")
    ctx.put("SEC:Q:SET", 1.0, timeout=5)  # still serving puts
    assert [r.outcome for r in ioc.audit.puts()] == ["accepted"]


def test_a_control_pv_cannot_run_code_sent_over_the_wire(soft_ioc, client_for, tmp_path):
    marker = tmp_path / "was-executed"
    ctx = client_for(soft_ioc)
    for payload in (f"SEC:A:SET put_timeout count=__import__('os').system('touch {marker}')",
                    f"SEC:A:SET put_reject count=1 'message=$(touch {marker})'",
                    f"$(touch {marker}) outage duration=1"):
        try:
            ctx.put("SOFTIOC:FAULT:ARM", payload, timeout=5)
        except RemoteError:
            pass  # refused: fine; what matters is that nothing ran
    assert not marker.exists()
    # the only fault armed is the rejection, whose message is kept as the plain text it was
    (armed,) = soft_ioc.faults.active()
    assert armed.fault.kind == "put_reject" and armed.fault.message == f"$(touch {marker})"


# ---- read-only never writes ----------------------------------------------------------------------

def writers(ran: list[str]):
    """Validation functions that try, each its own way, to write with the context they are given."""

    def put_self(set_pv, set_value, context, timeout):
        ran.append("put_self")
        context.put(set_pv, set_value, timeout=timeout)

    def put_other(set_pv, set_value, context, timeout):
        ran.append("put_other")
        context.put(["SEC:A:SET", "SEC:B:SET"], [9.0, 9.0], timeout=timeout)

    def put_later(set_pv, set_value, context, timeout):
        ran.append("put_later")
        threading.Timer(0.05, context.put, args=(set_pv, 7.0)).start()

    def put_through_interface(set_pv, set_value, context, timeout):
        ran.append("put_through_interface")
        with Interface(conf=context.conf(), timeout=timeout) as writer:
            writer.set_value(set_pv, 8.0)

    return {"SEC:A:SET": put_self, "SEC:B:SET": put_other}, put_later, put_through_interface


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "in_order"])
def test_read_only_never_runs_a_validation_function_so_it_can_never_write(soft_ioc, parallel, caplog):
    ran: list[str] = []
    configs, later, through = writers(ran)
    itf = Interface(read_only=True, parallel=parallel, conf=soft_ioc.client_conf(), timeout=SHORT)
    with itf, caplog.at_level(logging.INFO, logger="epics_pva"):
        many = itf.set_values({"SEC:A:SET": 1.0, "SEC:B:SET": 2.0}, configs=configs)
        one = itf.set_value("SEC:A:SET", 3.0, validation_function=later)
        two = itf.set_value("SEC:B:SET", 4.0, validation_function=through)
        values = itf.get_values(["SEC:A:SET", "SEC:B:SET"])
    assert ran == []
    assert {r.status for r in [*many.values(), one, two]} == {"read_only"}
    assert values == {"SEC:A:SET": 0.0, "SEC:B:SET": 0.0}
    assert soft_ioc.audit.puts() == []
    assert "read-only: would set SEC:A:SET = 1.0, SEC:B:SET = 2.0" in caplog.text


def test_the_same_functions_do_write_when_not_read_only(soft_ioc):
    """The control experiment: the functions above are real writers, so read-only is what stopped them."""
    ran: list[str] = []
    configs, _later, through = writers(ran)
    with Interface(conf=soft_ioc.client_conf(), timeout=SHORT) as itf:
        itf.set_values({"SEC:A:SET": 1.0, "SEC:B:SET": 2.0}, configs=configs)
        itf.set_value("SEC:B:SET", 4.0, validation_function=through)
    assert sorted(ran) == ["put_other", "put_self", "put_through_interface"]
    assert len(soft_ioc.audit.puts()) == 2 + 1 + 2 + 1 + 1


@pytest.mark.parametrize("flag, writes", [
    (True, False), ("yes", False), ("false", False), (1, False),  # anything truthy means read-only
    (False, True), (0, True), (None, True),
])
def test_read_only_is_fail_safe_and_survives_pickling(soft_ioc, flag, writes):
    itf = pickle.loads(pickle.dumps(Interface(read_only=flag, conf=soft_ioc.client_conf(), timeout=SHORT)))
    with itf:
        status = itf.set_value("SEC:A:SET", 1.0).status
    assert itf.read_only is (not writes)
    assert status == ("set" if writes else "read_only")
    assert len(soft_ioc.audit.puts()) == (1 if writes else 0)


@pytest.mark.timeout(3 * OUTER_TIMEOUT_S + 60)  # three namespace runs, each bounded by OUTER_TIMEOUT_S
def test_a_private_network_test_that_fails_or_skips_inside_fails_outside(tmp_path):
    """The namespace runner reports the inner outcome: only one passed test passes outside."""
    why = private_network_unavailable()
    if why is not None:
        pytest.skip(why)
    tests = Path(__file__).parent
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    private_network: in a namespace\n")
    (tmp_path / "conftest.py").write_text(f"import sys\nsys.path.insert(0, {str(tests)!r})\n"
                                          "from _network import pytest_collection_modifyitems, pytest_pyfunc_call  # noqa: F401\n")
    (tmp_path / "test_inner.py").write_text(
        "import pytest\nfrom _network import other_address\n\n"
        "@pytest.mark.private_network\ndef test_passes():\n    assert other_address() == '198.51.100.1'\n\n"
        "@pytest.mark.private_network\ndef test_fails():\n    assert other_address() == 'elsewhere'\n\n"
        "@pytest.mark.private_network\ndef test_skips():\n    pytest.skip('skipped inside')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3 * OUTER_TIMEOUT_S + 30)
    assert "PASSED test_inner.py::test_passes" in done.stdout, done.stdout
    assert "FAILED test_inner.py::test_fails" in done.stdout and "'198.51.100.1' == 'elsewhere'" in done.stdout
    assert "FAILED test_inner.py::test_skips" in done.stdout and "did not pass in its network namespace" in done.stdout
    assert "1 passed" in done.stdout and "2 failed" in done.stdout, done.stdout
