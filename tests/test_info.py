"""Interface.get_info: an operator's Info rows of each PV, read from a real p4p server."""

from __future__ import annotations

from datetime import datetime
from functools import partial

import pytest
from p4p.client.thread import Context
from p4p.nt import NTScalar
from p4p.server import Server
from p4p.server.thread import SharedPV

from epics_pva import Interface, InvalidInputError, SetValuesError, __version__, wait_for_readback
from softioc import Alarm

STAMP = 1700000000.25  # 2023-11-14T22:13:20.250 UTC


class Recording:
    """A put handler that records every put reaching the server (none should, for get_info)."""

    def __init__(self) -> None:
        self.puts: list[object] = []

    def put(self, pv, op):
        self.puts.append(float(op.value()))
        pv.post(op.value())
        op.done()


@pytest.fixture
def server():
    nt = NTScalar("d", display=True, control=True, valueAlarm=True)
    handler = Recording()
    setpoint = SharedPV(nt=nt, handler=handler, initial=nt.wrap(
        {"value": 4.5, "display.units": "mm", "control.limitLow": -5.0, "control.limitHigh": 5.0,
         "alarm.severity": 2, "alarm.message": "HIHI"}, timestamp=STAMP))
    readback = SharedPV(nt=NTScalar("d"), initial=4.52)
    with Server(providers=[{"X:SET": setpoint, "X:RBV": readback}], isolate=True) as srv:
        srv.handler = handler
        yield srv


def test_every_row_of_a_pv_in_alarm_is_text(server):
    with Interface(conf=server.conf(), timeout=2.0) as interface:
        info = interface.get_info(["X:SET"])
    rows = info["vars"]["X:SET"]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in rows.items())
    assert rows["value"] == "4.5" and rows["units"] == "mm" and rows["control limits"] == "-5 to 5"
    assert rows["alarm severity"] == "MAJOR (2)" and rows["alarm message"] == "HIHI"
    assert datetime.fromisoformat(rows["timestamp"]).timestamp() == STAMP
    assert rows["connected"] == "yes"
    # the server's own TCP address, found by a name search, and its GUID (12 bytes as hex)
    address, _, guid = rows["server"].partition(" (guid ")
    assert address == f"127.0.0.1:{server.conf()['EPICS_PVAS_SERVER_PORT']}"
    assert len(guid) == 25 and guid.endswith(")") and int(guid[:-1], 16) >= 0
    assert "readback PV" not in rows  # no wait_for_readback config given
    assert info["interface"]["version"] == __version__ and info["interface"]["timeout"] == "2.0"
    assert info["interface"]["EPICS_PVA_ADDR_LIST"].startswith(server.conf()["EPICS_PVA_ADDR_LIST"])
    assert server.handler.puts == []


def test_a_setpoint_with_a_wait_for_readback_config_shows_its_readback(server):
    config = partial(wait_for_readback, readback_pv="X:RBV", tolerance=0.05, count_down=3, offset=0)
    with Interface(conf=server.conf(), timeout=2.0) as interface:
        rows = interface.get_info(["X:SET"], configs={"X:SET": config})["vars"]["X:SET"]
        assert rows["readback PV"] == "X:RBV" and rows["readback"] == "4.52"
        assert rows["tolerance"] == "0.05" and rows["settle time limit"] == "3 s"
        assert rows["within tolerance"].startswith("yes (off by 0.02")
        ctx = Context("pva", conf=server.conf(), useenv=False)
        try:
            ctx.put("X:SET", 1.0, timeout=2.0)  # the readback stays at 4.52: now far off
        finally:
            ctx.close()
        rows = interface.get_info(["X:SET"], configs={"X:SET": config})["vars"]["X:SET"]
    assert rows["value"] == "1.0" and rows["within tolerance"].startswith("no (off by 3.52")
    assert server.handler.puts == [1.0]  # the test's own put; get_info sent none


def test_an_unreachable_pv_says_why_and_the_others_still_show(server):
    with Interface(conf=server.conf(), timeout=0.5) as interface:
        found = interface.get_info(["NO:SUCH:PV", "X:RBV"])["vars"]
    assert list(found) == ["NO:SUCH:PV", "X:RBV"]
    assert found["NO:SUCH:PV"]["connected"] == "no: no reply within 0.5 s (unknown PV, or its server is down)"
    where = f"127.0.0.1:{server.conf()['EPICS_PVA_BROADCAST_PORT']}"
    assert found["NO:SUCH:PV"]["server"] == f"not found: no server at {where} claimed it within 0.5 s"
    assert found["X:RBV"]["server"].startswith(f"127.0.0.1:{server.conf()['EPICS_PVAS_SERVER_PORT']} (guid ")
    assert found["X:RBV"]["value"] == "4.52" and found["X:RBV"]["units"] == "none published"
    assert found["X:RBV"]["control limits"] == "none published"


def test_bad_names_are_refused_naming_them(server):
    with Interface(conf=server.conf(), timeout=0.5) as interface:
        with pytest.raises(InvalidInputError, match="'X:SET'"):
            interface.get_info("X:SET")
        with pytest.raises(InvalidInputError, match="X:SET.*more than once"):
            interface.get_info(["X:SET", "X:SET"])


def test_a_config_with_a_tolerance_that_is_no_number_is_shown_as_given(server):
    config = partial(wait_for_readback, readback_pv="X:RBV", tolerance="close", count_down=3, offset=0)
    with Interface(conf=server.conf(), timeout=2.0) as interface:
        rows = interface.get_info(["X:SET"], configs={"X:SET": config})["vars"]["X:SET"]
    assert rows["tolerance"] == "'close' (not a number)" and "within tolerance" not in rows
    assert rows["readback"] == "4.52"


def test_with_an_empty_address_list_the_server_row_says_it_was_not_searched(server):
    # the name server list reaches the server over TCP, so the get still succeeds
    conf = {**server.conf(), "EPICS_PVA_ADDR_LIST": "",
            "EPICS_PVA_NAME_SERVERS": f"127.0.0.1:{server.conf()['EPICS_PVAS_SERVER_PORT']}"}
    with Interface(conf=conf, timeout=2.0) as interface:
        rows = interface.get_info(["X:RBV"])["vars"]["X:RBV"]
    assert rows["value"] == "4.52"
    assert rows["server"] == ("not searched: EPICS_PVA_ADDR_LIST is empty (automatic search is not "
                              "repeated here); EPICS_PVA_NAME_SERVERS (search over TCP) is not searched here")


def test_under_a_prefix_the_search_asks_for_the_name_on_the_wire():
    with Server(providers=[{"PRE:X:RBV": SharedPV(nt=NTScalar("d"), initial=2.5)}], isolate=True) as srv:
        with Interface(conf=srv.conf(), timeout=2.0, prefix="PRE:") as interface:
            rows = interface.get_info(["X:RBV"])["vars"]["X:RBV"]
        assert rows["value"] == "2.5"
        assert rows["server"].startswith(f"127.0.0.1:{srv.conf()['EPICS_PVAS_SERVER_PORT']} (guid ")


def test_an_invalid_readback_is_never_within_tolerance_as_validation_never_settles_on_it(softioc_factory):
    """The soft IOC's readback follows its setpoint at once (no lag) and stays within tolerance;
    an alarm fault puts it in INVALID alarm, its value unchanged. wait_for_readback refuses to
    settle on it; the Info rows say "no" and why, not "yes"."""
    ioc = softioc_factory({"ioc": {"update_rate": 50.0}, "setpoint": [
        {"name": "X:SET", "readback": "X:RBV", "limits": [-5.0, 5.0], "initial": 1.0}]})
    config = partial(wait_for_readback, readback_pv="X:RBV", tolerance=0.05, count_down=0.5, offset=0)
    with Interface(conf=ioc.client_conf(), timeout=2.0) as interface:
        rows = interface.get_info(["X:SET"], configs={"X:SET": config})["vars"]["X:SET"]
        assert rows["within tolerance"] == "yes (off by 0)"
        ioc.faults.arm("X:RBV", Alarm(severity="INVALID", message="power supply off"))
        reading = interface.get_readings(["X:RBV"])["X:RBV"]
        assert (reading.value, reading.severity, reading.message) == (1.0, 3, "power supply off")
        rows = interface.get_info(["X:SET"], configs={"X:SET": config})["vars"]["X:SET"]
        assert rows["readback"] == "1.0" and rows["readback alarm"] == "INVALID (power supply off)"
        assert rows["within tolerance"] == "no: readback INVALID (power supply off)"
        with pytest.raises(SetValuesError) as info:  # validation agrees: never settled
            interface.set_values({"X:SET": 1.0}, {"X:SET": config})
        assert "INVALID (power supply off)" in str(info.value)
        ioc.faults.clear("X:RBV")
        rows = interface.get_info(["X:SET"], configs={"X:SET": config})["vars"]["X:SET"]
        assert rows["within tolerance"] == "yes (off by 0)"
