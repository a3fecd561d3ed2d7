"""The write guard: the operator's switches hold for every Interface, read at every set.

Each test serves a real soft IOC on loopback and counts, on the server side (its audit), the
puts that reached it. The switches are set in this process's environment (monkeypatch puts
them back); tests/test_write_doors.py exports them to a new process for each door that writes.
"""

from __future__ import annotations

import logging

import pytest

from epics_pva import Interface, RehearsalError, Status
from epics_pva.core import Settings, decide, read_switches

CONFIG = {
    "ioc": {"update_rate": 50.0},
    "setpoint": [
        {"name": "DEMO:Q1:SET", "readback": "DEMO:Q1:RBV", "limits": [-5.0, 5.0]},
        {"name": "DEMO:Q2:SET", "readback": "DEMO:Q2:RBV", "limits": [-5.0, 5.0]},
    ],
}
STEP = {"DEMO:Q1:SET": 1.0, "DEMO:Q2:SET": -1.0}
SWITCHES = ("READ_ONLY", "REHEARSAL", "REHEARSAL_ID", "REHEARSAL_ALLOW", "TIMEOUT", "PUT_ATTEMPTS")


@pytest.fixture(autouse=True)
def clean_switches(monkeypatch):
    for name in SWITCHES:
        monkeypatch.delenv(f"EPICS_PVA_INTERFACE_{name}", raising=False)


@pytest.fixture
def ioc(softioc_factory):
    return softioc_factory(CONFIG)


def puts(ioc) -> int:
    return len(ioc.audit.puts())


def test_read_only_exported_makes_a_plain_interface_send_nothing(ioc, monkeypatch):
    monkeypatch.setenv("EPICS_PVA_INTERFACE_READ_ONLY", "1")
    with Interface(conf=ioc.client_conf(), timeout=2.0) as interface:
        assert interface.read_only and interface.mode.label.startswith("read-only (forced by")
        results = interface.set_values(STEP)
        assert {r.status for r in results.values()} == {Status.READ_ONLY}
        assert all(r.ok for r in results.values())
        assert interface.set_value("DEMO:Q1:SET", 2.0).status == Status.READ_ONLY
        assert interface.get_values(["DEMO:Q1:SET"])  # reads go on
    assert puts(ioc) == 0


def test_read_only_forced_over_an_argument_and_a_saved_setting(ioc, monkeypatch):
    monkeypatch.setenv("EPICS_PVA_INTERFACE_READ_ONLY", "yes")
    for interface in (Interface(conf=ioc.client_conf(), read_only=False),
                      Interface(Settings(conf=ioc.client_conf(), read_only=False)),
                      Interface(conf=ioc.client_conf(), use_env=False)):
        with interface:
            assert interface.set_values(STEP)["DEMO:Q1:SET"].status == Status.READ_ONLY
    assert puts(ioc) == 0


def test_a_switch_exported_after_construction_holds_for_the_next_set(ioc, monkeypatch):
    with Interface(conf=ioc.client_conf(), timeout=2.0) as interface:
        interface.set_values({"DEMO:Q1:SET": 0.5})
        monkeypatch.setenv("EPICS_PVA_INTERFACE_READ_ONLY", "on")
        assert interface.set_values({"DEMO:Q1:SET": 0.75})["DEMO:Q1:SET"].status == Status.READ_ONLY
        monkeypatch.setenv("EPICS_PVA_INTERFACE_READ_ONLY", "0")  # a false switch undoes nothing asked
        assert interface.set_values({"DEMO:Q1:SET": 1.0})["DEMO:Q1:SET"].status == Status.SET
    assert [r.value for r in ioc.audit.puts()] == [0.5, 1.0]


@pytest.mark.parametrize("text", ["maybe", "2", "ja", "tru"])
def test_a_switch_that_cannot_be_understood_takes_the_safe_side_and_says_so(ioc, monkeypatch, caplog, text):
    monkeypatch.setenv("EPICS_PVA_INTERFACE_READ_ONLY", text)
    caplog.set_level(logging.WARNING, logger="epics_pva.interface")
    with Interface(conf=ioc.client_conf()) as interface:
        assert interface.set_values(STEP)["DEMO:Q1:SET"].status == Status.READ_ONLY
    assert puts(ioc) == 0
    assert f"EPICS_PVA_INTERFACE_READ_ONLY={text!r} is not a yes/no value: taken as read-only" in caplog.text


def test_a_forced_switch_is_said_at_warning_once_per_process(ioc, monkeypatch, caplog):
    import epics_pva.core._guard as guard

    monkeypatch.setattr(guard, "_announced", set())
    monkeypatch.setenv("EPICS_PVA_INTERFACE_READ_ONLY", "1")
    caplog.set_level(logging.WARNING, logger="epics_pva.interface")
    for _ in range(3):
        with Interface(conf=ioc.client_conf()) as interface:
            interface.set_values(STEP)
    said = [r for r in caplog.records if "forced by EPICS_PVA_INTERFACE_READ_ONLY" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING


def test_rehearsal_exported_with_a_wrong_id_refuses_before_any_put_naming_the_pv(ioc, monkeypatch):
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EPICS_PVA_INTERFACE_REHEARSAL", "1")
    monkeypatch.setenv("EPICS_PVA_INTERFACE_REHEARSAL_ID", "0" * 32)
    with Interface(timeout=2.0) as interface:
        assert interface.rehearsal and interface.rehearsal_id == "0" * 32
        with pytest.raises(RehearsalError, match="DEMO:Q1:SET") as caught:
            interface.set_values(STEP)
    assert {r.status for r in caught.value.results.values()} == {Status.NOT_ATTEMPTED}
    assert puts(ioc) == 0


def test_rehearsal_exported_without_an_id_refuses_every_set_but_not_the_reads(ioc, monkeypatch):
    monkeypatch.setenv("EPICS_PVA_INTERFACE_REHEARSAL", "1")
    with Interface(conf=ioc.client_conf(), timeout=2.0) as interface:
        assert interface.rehearsal and interface.mode.label.startswith("refused")
        assert set(interface.get_values(["DEMO:Q1:SET"])) == {"DEMO:Q1:SET"}
        with pytest.raises(RehearsalError, match="EPICS_PVA_INTERFACE_REHEARSAL_ID is not set") as caught:
            interface.set_values(STEP)
    assert set(caught.value.results) == set(STEP)
    assert puts(ioc) == 0


def test_rehearsal_exported_with_the_soft_iocs_id_writes_to_it(ioc, monkeypatch):
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EPICS_PVA_INTERFACE_REHEARSAL", "true")
    monkeypatch.setenv("EPICS_PVA_INTERFACE_REHEARSAL_ID", ioc.identity)
    with Interface(timeout=2.0, rehearsal_id="f" * 32) as interface:  # the operator's id wins
        assert interface.mode.label == f"rehearsal (forced by EPICS_PVA_INTERFACE_REHEARSAL): puts only to soft IOC {ioc.identity}"
        assert {r.status for r in interface.set_values(STEP).values()} == {Status.SET}
    assert puts(ioc) == 2


def test_read_only_wins_over_rehearsal(ioc, monkeypatch):
    monkeypatch.setenv("EPICS_PVA_INTERFACE_READ_ONLY", "1")
    monkeypatch.setenv("EPICS_PVA_INTERFACE_REHEARSAL", "1")  # and no id: refused, were it not read-only
    with Interface(conf=ioc.client_conf()) as interface:
        assert interface.set_values(STEP)["DEMO:Q2:SET"].status == Status.READ_ONLY
    assert puts(ioc) == 0


def test_the_other_variables_are_defaults_that_arguments_override(monkeypatch):
    monkeypatch.setenv("EPICS_PVA_INTERFACE_TIMEOUT", "2.5")
    monkeypatch.setenv("EPICS_PVA_INTERFACE_PUT_ATTEMPTS", "4")
    assert (Interface().timeout, Interface().put_attempts) == (2.5, 4)
    assert Interface(timeout=1.0).timeout == 1.0 and Interface(timeout=1.0).put_attempts == 4
    assert Interface(use_env=False).timeout == Settings().timeout
    assert Interface(Settings(timeout=3.0)).put_attempts == Settings().put_attempts  # a ready Settings is as given
    monkeypatch.setenv("EPICS_PVA_INTERFACE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="EPICS_PVA_INTERFACE_TIMEOUT='soon' is not a number"):
        Interface()
    assert Interface(use_env=False).timeout == Settings().timeout


def test_only_code_that_says_so_ignores_the_switches(ioc, monkeypatch):
    monkeypatch.setenv("EPICS_PVA_INTERFACE_READ_ONLY", "1")
    with Interface(conf=ioc.client_conf(), honour_switches=False) as interface:
        assert interface.set_values({"DEMO:Q1:SET": 1.5})["DEMO:Q1:SET"].status == Status.SET
    assert puts(ioc) == 1


def test_the_info_view_shows_the_mode_first(ioc, monkeypatch):
    with Interface(conf=ioc.client_conf(), timeout=2.0) as interface:
        assert interface.get_info(["DEMO:Q1:SET"])["vars"]["DEMO:Q1:SET"]["mode"] == "write: puts go to the machine"
        monkeypatch.setenv("EPICS_PVA_INTERFACE_READ_ONLY", "1")
        info = interface.get_info(["DEMO:Q1:SET"])
    rows = info["vars"]["DEMO:Q1:SET"]
    assert next(iter(rows)) == "mode" and rows["mode"].startswith("read-only (forced by EPICS_PVA_INTERFACE_READ_ONLY)")
    assert info["interface"]["mode"] == rows["mode"]


def test_read_switches_reads_the_environment_given():
    switches = read_switches({"EPICS_PVA_INTERFACE_READ_ONLY": " no ", "EPICS_PVA_INTERFACE_REHEARSAL": "x",
                              "EPICS_PVA_INTERFACE_REHEARSAL_ID": "has space"})
    assert (switches.read_only, switches.rehearsal, switches.rehearsal_id) == (False, True, "")
    assert len(switches.notes) == 2
    mode = decide(Settings(), {"EPICS_PVA_INTERFACE_REHEARSAL": "1", "EPICS_PVA_INTERFACE_REHEARSAL_ID": "abc",
                               "EPICS_PVA_INTERFACE_REHEARSAL_ALLOW": "sim-host"})
    assert (mode.settings.rehearsal, mode.settings.rehearsal_id, mode.settings.rehearsal_allow) == (True, "abc", "sim-host")
    assert decide(Settings(), {}).settings == Settings()


def test_no_module_but_the_set_path_sends_a_put():
    """The guard holds only if every write goes through set_values: no other module puts on a context."""
    import ast
    from pathlib import Path

    import epics_pva

    root = Path(epics_pva.__file__).parent
    senders: dict[str, list[int]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            name = ""
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "put":
                receiver = node.func.value
                name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                name = next((a.name for a in node.names if a.name in ("put_many", "put_wave")), "")
            if name and ("ctx" in name.lower() or "context" in name.lower() or name in ("put_many", "put_wave")):
                senders.setdefault(str(path.relative_to(root)), []).append(node.lineno)
    # the transport defines the batch puts; the set path's run of a call is their one caller
    assert {p for p in senders if not p.startswith("transport/")} == {"core/_set_run.py"}, senders


def test_one_at_fork_registry():
    """Every hook epics_pva runs at a fork is in epics_pva._fork, so their order is one list."""
    from pathlib import Path

    import epics_pva

    root = Path(epics_pva.__file__).parent
    registering = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "os.register_at_fork" in p.read_text())
    assert registering == ["_fork.py"]
