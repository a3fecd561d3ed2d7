"""Badger's GUI, offscreen, through the plugin against the demo soft IOC, as an operator uses it.

The main window's own widgets do every step (devtools/badger_gui.py): the environment box
loads the demo environment (its bounds read from the machine), the variable table's Info
dialog shows the plugin's rows, "Run until" runs a routine in Badger's worker process (a
fork of this one), the Retry/Stop dialog shows a put the machine refused, and the reset
button puts the variables back. Each test fails if the plugin breaks one of them: an
exception in a slot fails the test (pytest-qt), a dialog nobody expected is recorded.

The soft IOC serves softioc/examples/demo.toml from a child process (devtools.ioc_process):
Badger forks its run workers from this process, and a forked child of a process holding a
p4p *server* hangs on its first p4p call (EPICS warns of epicsThread use after fork), so the
machine runs beside the GUI, as a real one does. Needs Badger and pytest-qt (tox -e badger);
QT_QPA_PLATFORM=offscreen needs no X server.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt starts: no display needed

import pytest  # noqa: E402

badger = pytest.importorskip("badger")
pytest.importorskip("pytestqt")

from _badger_session import badger_plugin_root  # noqa: E402

from devtools.badger_gui import open_info, reset_environment, run_until, select_environment  # noqa: E402
from devtools.ioc_process import IOCProcess  # noqa: E402
from epics_pva import Interface as PvaInterface  # noqa: E402
from epics_pva.badger import READ_ONLY_VARIABLE  # noqa: E402
from softioc.pytest_plugin import demo_config_path  # noqa: E402

Q1, Q2, OBJ = "DEMO:Q1:SET", "DEMO:Q2:SET", "DEMO:OBJ"
START = {Q1: 0.5, Q2: -1.0}  # demo.toml's initial values
SWITCHES = ("EPICS_PVA_INTERFACE_READ_ONLY", "EPICS_PVA_INTERFACE_REHEARSAL", "EPICS_PVA_INTERFACE_REHEARSAL_ID",
            "EPICS_PVA_INTERFACE_TIMEOUT", "EPICS_PVA_INTERFACE_PARALLEL", "EPICS_PVA_INTERFACE_PUT_ATTEMPTS",
            "EPICS_PVA_INTERFACE_RETRY_DELAY", "EPICS_PVA_INTERFACE_NAN_ON_READ_ERROR")


@pytest.fixture(scope="session")
def plugin_root(tmp_path_factory):
    return badger_plugin_root(tmp_path_factory)


@pytest.fixture
def demo_ioc(monkeypatch, plugin_root):
    """The demo machine in a child process; this process (and Badger's forks) reach it via EPICS_PVA_*."""
    for name in [k for k in os.environ if k.startswith("EPICS_PVA_")]:
        monkeypatch.delenv(name)
    with IOCProcess(demo_config_path(), start_timeout=60.0) as ioc:
        for name, value in ioc.client_conf.items():
            if name not in SWITCHES:
                monkeypatch.setenv(name, value)
        yield ioc


def machine_values(ioc):
    with PvaInterface(conf=ioc.client_conf, timeout=5.0) as reader:
        return reader.get_values([Q1, Q2])


@pytest.fixture
def home_page(qtbot, demo_ioc, monkeypatch):
    """Badger's main window (its run workers forked now, with this environment), on its home page."""
    from badger.factory import BADGER_FACTORY
    from badger.gui.windows.main_window import BadgerMainWindow

    # Badger keeps an environment's bounds for the process: read them from this machine
    monkeypatch.setitem(BADGER_FACTORY["environment"], "demo", None)
    window = BadgerMainWindow()
    qtbot.addWidget(window)
    window.show()
    yield window.home_page
    window.process_manager.close_proccesses()


def is_retry_dialog(dialog):
    from badger.gui.windows.measurement_retry_dialog import BadgerMeasurementRetryDialog

    return isinstance(dialog, BadgerMeasurementRetryDialog)


def test_the_gui_loads_the_demo_shows_info_runs_retries_and_resets(home_page, demo_ioc):
    select_environment(home_page, "demo", [Q1, Q2], OBJ)
    table = home_page.routine_editor.env_box.var_table
    # the hard bounds are the machine's control limits, read by the example's get_bounds
    assert table.all_variables == [{Q1: (-10.0, 10.0)}, {Q2: (-10.0, 10.0)}]
    # "Automatic": 10 % of the current value around it, non-empty on first use (not at 0)
    assert table.export_variables() == {Q1: pytest.approx([0.475, 0.525]), Q2: pytest.approx([-1.05, -0.95])}

    info = open_info(home_page, Q1)
    assert list(info)[:2] == ["mode", "value"]
    assert info["mode"] == "write: puts go to the machine"
    assert (info["value"], info["control limits"], info["connected"]) == ("0.5", "-10 to 10", "yes")
    assert (info["readback PV"], info["tolerance"]) == ("DEMO:Q1:RBV", "0.01")

    # the machine refuses the first put of DEMO:Q2:SET: Badger asks to retry or stop
    demo_ioc.call("arm", {"pv": Q2, "kind": "put_reject", "count": 1, "message": "interlock open"})
    shown = []

    def retry(dialog):  # once: the fault refuses one put; a second dialog is a failure, stopped
        shown.append(dialog.textLabel.text())
        (dialog.retryButton if len(shown) == 1 else dialog.stopButton).click()

    watch = run_until(home_page, 3, (is_retry_dialog, retry))
    assert watch.unexpected == []
    assert len(shown) == 1, f"{len(shown)} retry dialogs, expected one:\n" + "\n----\n".join(shown)
    [text] = shown
    # the PV and the cause come first, before any traceback line
    lead = "epics_pva.badger.PvFailure: DEMO:Q2:SET = -1.0: put rejected by the server: interlock open"
    assert lead in text and text.index(lead) < text.index("Traceback")
    assert text.rstrip().endswith("DEMO:Q2:SET = -1.0: put rejected by the server: interlock open")

    data = home_page.run_monitor.routine.data
    assert len(data) >= 3 and list(data[[Q1, Q2]].iloc[0]) == pytest.approx([START[Q1], START[Q2]])
    # the recorded objective is the machine's: (q1 - 1.5)^2 + (q2 + 0.5)^2 of the readbacks
    for _, row in data.iterrows():
        assert row[OBJ] == pytest.approx((row[Q1] - 1.5) ** 2 + (row[Q2] + 0.5) ** 2, abs=0.1)
    puts, _ = demo_ioc.call("drain")
    rejected = [(p["pv"], p["value"]) for p in puts if p["outcome"] != "accepted"]
    accepted = sorted((p["pv"], p["value"]) for p in puts if p["outcome"] == "accepted")
    assert rejected == [(Q2, START[Q2])]
    # every evaluated point was put once, the first Q1 twice (its pair was retried)
    points = [(pv, row[pv]) for _, row in data.iterrows() for pv in (Q1, Q2)]
    assert accepted == sorted([*points, (Q1, START[Q1])])

    reset_environment(home_page)  # in this (the GUI's) process
    puts, _ = demo_ioc.call("drain")
    assert sorted((p["pv"], p["value"], p["outcome"]) for p in puts) == [
        (Q1, START[Q1], "accepted"), (Q2, START[Q2], "accepted")]
    assert machine_values(demo_ioc) == START


def test_forced_read_only_shows_in_the_info_dialog_and_nothing_is_put(demo_ioc, monkeypatch, request):
    monkeypatch.setenv(READ_ONLY_VARIABLE, "1")  # before the window forks its run workers
    home_page = request.getfixturevalue("home_page")
    select_environment(home_page, "demo", [Q1, Q2], OBJ)

    info = open_info(home_page, Q2)
    assert list(info)[0] == "mode"
    assert info["mode"] == "read-only (forced by EPICS_PVA_INTERFACE_READ_ONLY): nothing is put"

    watch = run_until(home_page, 3)
    assert watch.unexpected == []
    data = home_page.run_monitor.routine.data
    assert len(data) >= 3 and data[OBJ].notna().all()  # the objective is read all the same
    reset_environment(home_page)
    puts, _ = demo_ioc.call("drain")
    assert puts == [] and machine_values(demo_ioc) == START
