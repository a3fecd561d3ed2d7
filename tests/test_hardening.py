"""Soft IOC holes a careless or hostile user finds: a whole-server outage armed over the wire,
fault parameters that are not finite or absurdly long, and two IOCs asking for one TCP port."""

import re
import socket

import pytest
from p4p.client.thread import Context, RemoteError

from softioc import ConfigError, PortInUseError, SoftIOC, load_config
from softioc.faults import fault_from_dict

FAST = {"seed": 5, "update_rate": 100.0, "time_scale": 10.0}
MACHINE = {"ioc": FAST, "setpoint": [{"name": "H:SET", "readback": "H:RBV", "limits": [-10, 10]}]}


@pytest.fixture
def ioc(softioc_factory):
    return softioc_factory(MACHINE)


def test_a_whole_server_outage_armed_over_the_wire_completes_the_put_and_fires_once(ioc, client_for, until):
    ctx = client_for(ioc)
    ctx.put("SOFTIOC:FAULT:ARM", "* outage duration=0.5", timeout=3.0)  # completed before the server goes
    until(lambda: [f.event for f in ioc.audit.faults(event=None)] == ["armed", "fired", "expired"],
          timeout=10.0, what="the outage armed, fired and expired")
    assert float(ctx.get("SOFTIOC:TIME", timeout=10.0)) > 0  # served again
    outages = [(f.pv, f.event) for f in ioc.audit.faults(event=None)]
    assert outages == [("*", "armed"), ("*", "fired"), ("*", "expired")]  # no re-sent put armed it again
    assert ioc.faults.active() == []


BAD_PARAMETERS = [
    ("* outage duration=NaN", "outage", "duration", "nan"),
    ("H:SET outage duration=Infinity", "outage", "duration", "inf"),
    ("H:SET outage duration=1e400", "outage", "duration", "inf"),
    ("H:SET outage duration=3601", "outage", "duration", "3601"),
    ("H:SET put_timeout complete_after=NaN", "put_timeout", "complete_after", "nan"),
    ("H:SET put_timeout complete_after=1e9", "put_timeout", "complete_after", "1000000000.0"),
    ("H:SET readback_bias bias=NaN", "readback_bias", "bias", "nan"),
    ("H:SET readback_bias drift=-Infinity", "readback_bias", "drift", "-inf"),
    ("H:SET readback_bias bias=1e999", "readback_bias", "bias", "inf"),
    ("H:SET slow_readback rate=NaN", "slow_readback", "rate", "nan"),
    ("H:SET put_reject probability=NaN", "put_reject", "probability", "nan"),
    ("H:SET stuck_readback duration=NaN", "stuck_readback", "duration", "nan"),
    ("H:SET put_reject count=" + "9" * 400, "put_reject", "count", "9999"),
]


@pytest.mark.parametrize(("text", "kind", "key", "value"), BAD_PARAMETERS)
def test_arm_refuses_non_finite_and_absurd_parameters(ioc, client_for, text, kind, key, value):
    ctx = client_for(ioc)
    with pytest.raises(RemoteError) as info:
        ctx.put("SOFTIOC:FAULT:ARM", text, timeout=3.0)
    message = str(info.value)
    assert f"fault {kind!r}" in message and key in message and value in message, message
    assert ioc.faults.active() == [] and ioc.audit.faults(event=None) == []
    assert float(ctx.get("SOFTIOC:TIME", timeout=3.0)) >= 0  # still serving


@pytest.mark.parametrize(("kind", "key", "value"), [
    ("outage", "duration", float("nan")), ("put_timeout", "complete_after", float("inf")),
    ("readback_bias", "bias", float("nan")), ("readback_bias", "drift", float("inf")),
    ("slow_readback", "rate", float("inf")), ("put_reject", "probability", float("nan")),
    ("stuck_readback", "duration", 1e6),
])
def test_fault_from_dict_refuses_non_finite_and_absurd_values(kind, key, value):
    with pytest.raises(ValueError, match=rf"fault '{kind}': {key} must be .*got {re.escape(repr(value))}"):
        fault_from_dict(kind, {key: value})


@pytest.mark.parametrize(("line", "key", "shown"), [
    ("at = nan", "at", "nan"), ("at = inf", "at", "inf"), ("at = 1e9", "at", "1000000000.0"),
    ("duration = nan", "duration", "nan"), ("duration = inf", "duration", "inf"),
])
def test_config_refuses_non_finite_and_absurd_fault_times(tmp_path, line, key, shown):
    path = tmp_path / "faults.toml"
    path.write_text(f'[[setpoint]]\nname = "H:SET"\n\n[[fault]]\npv = "H:SET"\nkind = "outage"\n{line}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: [[fault]] #1: ") and key in message and shown in message, message


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_second_ioc_on_a_taken_explicit_port_fails_to_start(softioc_factory):
    port = _free_tcp_port()
    first = softioc_factory(MACHINE, port=port)
    assert first.client_conf()["EPICS_PVA_SERVER_PORT"] == str(port)
    second = SoftIOC({**MACHINE, "setpoint": [{"name": "OTHER:SET"}]}, port=port)
    with pytest.raises(PortInUseError, match=rf"TCP port {port} on 127.0.0.1 is in use"):
        second.start()
    assert not second.running
    ctx = Context("pva", conf=first.client_conf(), useenv=False)
    try:  # the first IOC still answers, and nothing serves the second one's PVs
        assert float(ctx.get("H:SET", timeout=3.0)) == 0.0
        with pytest.raises(TimeoutError):
            ctx.get("OTHER:SET", timeout=0.5)
    finally:
        ctx.close()
    second.port = 0  # the failed start left nothing behind: the same IOC starts on a free port
    with second:
        assert second.client_conf()["EPICS_PVA_SERVER_PORT"] != str(port)
