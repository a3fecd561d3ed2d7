"""Every door that writes obeys the operator's switches, each in a new process that inherits them.

A soft IOC serves on loopback in this process; each door runs as its own program with the
soft IOC's client settings and a switch exported, as an operator's shell would have them.
What counts is on the server side: its audit must show zero puts from the door.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from epics_pva import Interface

CONFIG = {
    "ioc": {"update_rate": 50.0},
    "setpoint": [
        {"name": "DOOR:Q1:SET", "readback": "DOOR:Q1:RBV", "limits": [-5.0, 5.0], "initial": 1.0},
        {"name": "DOOR:Q2:SET", "readback": "DOOR:Q2:RBV", "limits": [-5.0, 5.0], "initial": -1.0},
    ],
}
WAIT = 60.0  # seconds a door may take before the test calls it hung
READ_ONLY = {"EPICS_PVA_INTERFACE_READ_ONLY": "1"}
WRONG_ID = {"EPICS_PVA_INTERFACE_REHEARSAL": "1", "EPICS_PVA_INTERFACE_REHEARSAL_ID": "0" * 32}


def script(name: str) -> str:
    """The console script `name` installed beside this interpreter."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.skip(f"{name} is not installed beside {sys.executable}")
    return str(path)


def run(argv: list[str], ioc, switches: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_PVA")}
    env.update(ioc.client_conf(), **switches)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=WAIT)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


@pytest.fixture
def ioc(softioc_factory):
    return softioc_factory(CONFIG)


@pytest.fixture
def journal(ioc, tmp_path):
    """A journal of one earlier set that moved both setpoints, so a restore has work to do."""
    path = tmp_path / "journal.jsonl"
    with Interface(conf=ioc.client_conf(), journal=str(path), use_env=False, honour_switches=False) as itf:
        itf.set_values({"DOOR:Q1:SET": 2.0, "DOOR:Q2:SET": 3.0})
    return path


def interface_door(ioc, tmp_path):
    return python("""
        from epics_pva import Interface, RehearsalError
        try:
            print(Interface(timeout=2.0).set_values({"DOOR:Q1:SET": 0.5, "DOOR:Q2:SET": 0.25}))
        except RehearsalError as error:
            raise SystemExit(str(error))
    """)


def restore_door(ioc, tmp_path):
    path = tmp_path / "journal.jsonl"
    with Interface(conf=ioc.client_conf(), journal=str(path), use_env=False, honour_switches=False) as itf:
        itf.set_values({"DOOR:Q1:SET": 2.0, "DOOR:Q2:SET": 3.0})
    return [script("pva-journal"), "restore", str(path), "--write", "--timeout", "2"]


def write_test_door(ioc, tmp_path):
    return [script("pva-preflight"), "--setpoint", "DOOR:Q1:SET", "--setpoint", "DOOR:Q2:SET",
            "--write-test", "--update-time", "0", "--timeout", "2"]


def step_door(ioc, tmp_path):
    return [script("pva-preflight"), "--pair", "DOOR:Q1:SET=DOOR:Q1:RBV", "--step", "0.5", "--write-test",
            "--timeout", "2"]


def badger_door(ioc, tmp_path):
    pytest.importorskip("badger", reason="the Badger plugin's door needs Badger (tox -e badger)")
    return python("""
        from epics_pva.badger import Interface
        from epics_pva import RehearsalError
        try:
            print(Interface().set_values({"DOOR:Q1:SET": 0.5, "DOOR:Q2:SET": 0.25}))
        except RehearsalError as error:
            raise SystemExit(str(error))
    """)


DOORS = {"Interface()": interface_door, "pva-journal restore --write": restore_door,
         "pva-preflight --write-test": write_test_door, "pva-preflight --step": step_door,
         "the Badger plugin": badger_door}


@pytest.mark.parametrize("door", DOORS)
def test_read_only_exported_no_door_writes(ioc, tmp_path, door):
    argv = DOORS[door](ioc, tmp_path)
    before = len(ioc.audit.puts())
    done = run(argv, ioc, READ_ONLY)
    assert len(ioc.audit.puts()) == before, (door, done.stdout, done.stderr)
    assert "read-only" in (done.stdout + done.stderr).lower() or "read_only" in done.stdout, (door, done.stdout, done.stderr)


@pytest.mark.parametrize("door", DOORS)
def test_rehearsal_with_a_wrong_id_exported_no_door_writes_and_each_says_so(ioc, tmp_path, door):
    argv = DOORS[door](ioc, tmp_path)
    before = len(ioc.audit.puts())
    done = run(argv, ioc, WRONG_ID)
    assert len(ioc.audit.puts()) == before, (door, done.stdout, done.stderr)
    assert done.returncode != 0, (door, done.stdout, done.stderr)
    assert "DOOR:Q1:SET" in done.stdout + done.stderr and "rehearsal" in (done.stdout + done.stderr).lower()


def test_without_a_switch_the_interface_door_writes(ioc, tmp_path):
    """The control case: the same program, no switch exported, reaches the soft IOC."""
    done = run(interface_door(ioc, tmp_path), ioc, {})
    assert done.returncode == 0, done.stderr
    assert sorted(r.value for r in ioc.audit.puts()) == [0.25, 0.5]


def test_restoring_a_rehearsal_of_a_prefixed_mirror_never_writes_to_the_machine_beside_it(softioc_factory, tmp_path):
    """The hostile case: a mirror served under SIM: beside a stand-in for the real machine, both
    found by one client's search; a rehearsal's journal, restored from a new process, must never
    reach the stand-in, whatever the operator exports."""
    mirror = softioc_factory({**CONFIG, "ioc": {**CONFIG["ioc"], "prefix": "SIM:"}})
    machine = softioc_factory({**CONFIG, "setpoint": [{**CONFIG["setpoint"][0], "initial": 4.5}]})
    both = {"EPICS_PVA_ADDR_LIST": f"{mirror.client_conf()['EPICS_PVA_ADDR_LIST']} "
                                   f"{machine.client_conf()['EPICS_PVA_ADDR_LIST']}",
            "EPICS_PVA_AUTO_ADDR_LIST": "NO"}
    path = tmp_path / "rehearsal.jsonl"
    with Interface(conf=both, prefix="SIM:", rehearsal=True, rehearsal_id=mirror.identity, journal=str(path),
                   use_env=False, honour_switches=False) as rehearsal:
        rehearsal.set_values({"DOOR:Q1:SET": 2.0})
    assert [(r.pv, r.value) for r in mirror.audit.puts()] == [("DOOR:Q1:SET", 2.0)]  # the audit names its own PVs

    def restore(**switches: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_PVA")}
        env.update(both, **switches)
        return subprocess.run([script("pva-journal"), "restore", str(path), "--write", "--timeout", "2"],
                              env=env, capture_output=True, text=True, timeout=WAIT)

    for switches in ({}, WRONG_ID, READ_ONLY):
        done = restore(**switches)
        assert done.returncode != 0, (switches, done.stdout, done.stderr)
        assert machine.audit.puts() == [] and len(mirror.audit.puts()) == 1, (switches, done.stdout)
    done = restore(EPICS_PVA_INTERFACE_REHEARSAL="1", EPICS_PVA_INTERFACE_REHEARSAL_ID=mirror.identity)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(r.pv, r.value) for r in mirror.audit.puts()][1:] == [("DOOR:Q1:SET", 1.0)]
    assert machine.audit.puts() == []
    with Interface(conf=machine.client_conf(), use_env=False) as reader:
        assert reader.get_values(["DOOR:Q1:SET"]) == {"DOOR:Q1:SET": 4.5}
