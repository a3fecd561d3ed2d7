"""A real Badger routine through epics_pva.badger.Interface against a soft IOC mirroring the example.

Badger's settings are process-wide (read when its plugin factory is first imported), so one
plugin root serves the whole session: the installed interface plugin, the example
environment exactly as shipped, and a copy of it that gives up on a readback after 1 s.
Each test gets its own soft IOC; bare `Interface()` objects (as Badger builds them) find it
through the standard EPICS_PVA_* environment variables.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

badger = pytest.importorskip("badger")

from _badger_session import badger_plugin_root  # noqa: E402

import epics_pva  # noqa: E402
from epics_pva import InvalidInputError, SetValuesError  # noqa: E402
from epics_pva.badger import READ_ONLY_VARIABLE, Interface  # noqa: E402
from epics_pva.badger.dryrun import config_from_environment, load_environment  # noqa: E402
from epics_pva.badger.runner import configure_badger, result_table, run_routine  # noqa: E402
from softioc import StuckReadback  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEMO_ENV = REPO / "examples" / "badger" / "environments" / "demo"
TOLERANCE = 0.01  # the example's wait_for_readback tolerance, of both variables


@pytest.fixture(scope="session")
def plugin_root(tmp_path_factory):
    """A Badger plugin root with the interface, the example environment and a quick-to-fail copy
    (one per process: test_badger_gui.py shares it, see _badger_session)."""
    return badger_plugin_root(tmp_path_factory)


def mirror_config(**kwargs):
    """The soft IOC config mirroring the example environment, sped up 10x for tests; its setpoints
    start a quarter of the way up their ranges (-1.0 of [-2, 2]), off the objective's optimum."""
    options = {"time_scale": 10.0, "update_rate": 50.0, "seed": 1, "initial_fraction": 0.25, **kwargs}
    return config_from_environment(load_environment(DEMO_ENV), **options)


@pytest.fixture
def ioc(softioc_factory, monkeypatch, plugin_root):
    """A mirror of the example environment; bare interfaces reach it via EPICS_PVA_*."""
    ioc = softioc_factory(mirror_config())
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    for variable in ("EPICS_PVA_INTERFACE_READ_ONLY", "EPICS_PVA_INTERFACE_TIMEOUT",
                     "EPICS_PVA_INTERFACE_PARALLEL", "EPICS_PVA_INTERFACE_PUT_ATTEMPTS",
                     "EPICS_PVA_INTERFACE_RETRY_DELAY", "EPICS_PVA_INTERFACE_NAN_ON_READ_ERROR",
                     "EPICS_PVA_INTERFACE_REHEARSAL", "EPICS_PVA_INTERFACE_REHEARSAL_ID"):
        monkeypatch.delenv(variable, raising=False)
    return ioc


# ---- the class, as Badger sees it ------------------------------------------------------------


def test_it_is_a_badger_interface_with_epics_pva_defaults(monkeypatch):
    monkeypatch.delenv(READ_ONLY_VARIABLE, raising=False)
    assert issubclass(Interface, badger.interface.Interface) and Interface.name == "epics_pva"
    properties = Interface.model_json_schema()["properties"]
    plain = epics_pva.Interface()
    for field in ("read_only", "parallel", "timeout", "put_attempts", "retry_delay", "nan_on_read_error"):
        assert properties[field]["default"] == getattr(plain, field), field
        assert "EPICS_PVA_INTERFACE_" in properties[field]["description"]
    bare = Interface()
    assert bare._pva is None  # nothing created, nothing connected, until first use


def test_badger_loads_the_installed_plugin(ioc, monkeypatch):
    from badger.factory import BADGER_FACTORY, get_env, get_intf, list_env, list_intf

    assert "epics_pva" in list_intf() and {"demo", "demo_fast"} <= set(list_env())
    cls, configs = get_intf("epics_pva")
    assert cls is Interface
    assert configs["params"]["read_only"] is False and configs["params"]["put_attempts"] == 2
    # Badger keeps an environment's bounds for the process: load it again from this machine
    monkeypatch.setitem(BADGER_FACTORY["environment"], "demo", None)
    env_cls, env_configs = get_env("demo")
    # the bounds are the mirror's control limits, read from the machine by the example's get_bounds
    assert env_configs["variables"] == [{"DEMO:Q1:SET": [-2.0, 2.0]}, {"DEMO:Q2:SET": [-2.0, 2.0]}]
    assert env_configs["observations"] == ["DEMO:OBJ"]


def test_environment_variables_fill_what_arguments_do_not_give(monkeypatch):
    monkeypatch.delenv(READ_ONLY_VARIABLE, raising=False)
    monkeypatch.setenv("EPICS_PVA_INTERFACE_TIMEOUT", "2.5")
    monkeypatch.setenv("EPICS_PVA_INTERFACE_PARALLEL", "0")
    bare = Interface()
    assert (bare.timeout, bare.parallel, bare.read_only) == (2.5, False, False)
    assert Interface(timeout=1.0, parallel=True).timeout == 1.0
    monkeypatch.setenv("EPICS_PVA_INTERFACE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="EPICS_PVA_INTERFACE_TIMEOUT='soon' is not a number"):
        Interface()


def test_forced_read_only_wins_over_an_argument(monkeypatch):
    monkeypatch.setenv(READ_ONLY_VARIABLE, "1")
    assert Interface(read_only=False).read_only is True
    assert Interface().read_only is True


# ---- behaviour: exactly epics_pva.Interface's ------------------------------------------------


def test_reads_sets_and_validates_like_epics_pva(ioc):
    with Interface(timeout=2.0) as intf:
        values = intf.get_values(["DEMO:Q1:SET", "DEMO:Q2:SET", "DEMO:OBJ"])
        assert list(values) == ["DEMO:Q1:SET", "DEMO:Q2:SET", "DEMO:OBJ"]
        assert values["DEMO:Q1:SET"] == -1.0 and isinstance(values["DEMO:OBJ"], float)
        configs = {"DEMO:Q1:SET": load_environment(DEMO_ENV)._configs["DEMO:Q1:SET"]}
        results = intf.set_values({"DEMO:Q1:SET": 1.0, "DEMO:Q2:SET": 0.5}, configs=configs)
        assert [r.status for r in results.values()] == ["set", "set"]
        assert abs(results["DEMO:Q1:SET"].validation_result - 1.0) <= TOLERANCE
        assert results["DEMO:Q2:SET"].validation_result is None
        assert intf.last_results == results
        assert intf.get_value("DEMO:Q2:SET") == 0.5
        single = intf.set_value("DEMO:Q1:SET", 0.0, validation_function=configs["DEMO:Q1:SET"])
        assert abs(single.validation_result) <= TOLERANCE
        with pytest.raises(InvalidInputError, match="DEMO:Q2:SET"):
            intf.set_values({"DEMO:Q2:SET": 3.0})  # beyond the limits the PV publishes
    puts = [(p.pv, p.value) for p in ioc.audit.puts()]
    assert sorted(puts[:2]) == [("DEMO:Q1:SET", 1.0), ("DEMO:Q2:SET", 0.5)] and puts[2:] == [("DEMO:Q1:SET", 0.0)]


def test_a_failed_put_raises_epics_pvas_error_and_is_kept(ioc):
    from softioc import PutReject

    ioc.faults.arm("DEMO:Q2:SET", PutReject(message="interlock open"))
    with Interface(timeout=2.0) as intf:
        with pytest.raises(SetValuesError, match="DEMO:Q2:SET.*interlock open") as caught:
            intf.set_values({"DEMO:Q1:SET": 0.5, "DEMO:Q2:SET": 0.5})
        assert intf.last_results == caught.value.results
        assert intf.last_results["DEMO:Q1:SET"].status == "set"


def test_read_only_forced_after_construction_sends_no_put(ioc, monkeypatch):
    with Interface(timeout=2.0) as intf:
        intf.set_values({"DEMO:Q2:SET": 0.25})
        monkeypatch.setenv(READ_ONLY_VARIABLE, "yes")
        assert intf.read_only is False and intf.effective_read_only is True
        result = intf.set_values({"DEMO:Q2:SET": 1.5})
        assert result["DEMO:Q2:SET"].status == "read_only"
        intf.read_only = False  # an assignment cannot undo the environment either
        assert intf.set_value("DEMO:Q2:SET", 1.0).status == "read_only"
    assert [(p.pv, p.value) for p in ioc.audit.puts()] == [("DEMO:Q2:SET", 0.25)]


def test_reset_interface_gives_a_fresh_context(ioc):
    with Interface(timeout=2.0) as intf:
        intf.get_values(["DEMO:Q1:SET"])
        first = intf._pva._context
        intf.reset_interface()
        assert intf._pva._context is None
        assert intf.get_value("DEMO:Q1:SET") == -1.0
        assert intf._pva._context is not None and intf._pva._context is not first


def test_conf_argument_is_used_instead_of_the_environment(softioc_factory, monkeypatch, plugin_root):
    ioc = softioc_factory(mirror_config())
    for name in ioc.client_conf():
        monkeypatch.delenv(name, raising=False)
    with Interface(conf=ioc.client_conf(), timeout=2.0) as intf:
        assert intf.get_value("DEMO:Q1:SET") == -1.0
        assert "conf" not in intf.model_dump()


def test_an_invalid_observable_raises_through_badgers_environment(monkeypatch):
    """Badger's get_observables must raise on INVALID, so its dialog asks to retry or abort."""
    from p4p.nt import NTScalar
    from p4p.server import Server
    from p4p.server.thread import SharedPV

    monkeypatch.delenv("EPICS_PVA_INTERFACE_NAN_ON_READ_ERROR", raising=False)
    objective = SharedPV(nt=NTScalar("d", display=True, control=True, valueAlarm=True), initial=0.0)
    objective.post(0.25, severity=3, message="power supply off")
    with Server(providers=[{"DEMO:OBJ": objective}], isolate=True) as server:
        with Interface(conf=server.conf(), timeout=2.0) as intf:
            env = load_environment(DEMO_ENV)(interface=intf)
            with pytest.raises(epics_pva.ReadError, match=r"DEMO:OBJ: alarm INVALID \(power supply off\)"):
                env.get_observables(["DEMO:OBJ"])
            objective.post(0.5, severity=0, message="")
            assert env.get_observables(["DEMO:OBJ"]) == {"DEMO:OBJ": 0.5}


# ---- a real Badger routine --------------------------------------------------------------------


def test_a_badger_routine_runs_headless_through_the_interface(ioc):
    routine = run_routine("demo", evaluations=4, generator="random")
    data = routine.data
    assert len(data) == 4
    assert {"DEMO:Q1:SET", "DEMO:Q2:SET", "DEMO:OBJ"} <= set(data.columns)
    assert not data["xopt_error"].any()
    # the soft IOC saw every point Badger evaluated, in order, and accepted each
    puts = ioc.audit.puts()
    assert [p.outcome for p in puts] == ["accepted"] * 8
    for row, (q1, q2) in enumerate(data[["DEMO:Q1:SET", "DEMO:Q2:SET"]].itertuples(index=False)):
        pair = {p.pv: p.value for p in puts[2 * row: 2 * row + 2]}
        assert pair == {"DEMO:Q1:SET": pytest.approx(q1), "DEMO:Q2:SET": pytest.approx(q2)}
    # validation ran: every step waited for both readbacks to settle within the tolerance
    history = routine.environment.interface.history
    assert len(history) == 4
    for step, row in zip(history, data.itertuples(index=False), strict=True):
        for pv in ("DEMO:Q1:SET", "DEMO:Q2:SET"):
            assert abs(step[pv].validation_result - step[pv].value) <= TOLERANCE
        q1, q2, objective = row[0], row[1], row[2]
        assert math.isfinite(objective)
        # both readbacks settled, and the objective is the first update after the set
        # (first_after): always the mirror's objective x0**2 + x1**2 of this step, never the last
        assert objective == pytest.approx(q1**2 + q2**2, abs=0.25), (row, step)
    assert "DEMO:OBJ" in result_table(routine)
    # the run closed the interface: no context and no worker thread is left behind
    assert routine.environment.interface._pva._context is None
    deadline = time.monotonic() + 5
    while any(t.name.startswith("epics_pva") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("epics_pva")]


def test_the_same_routine_forced_read_only_sends_no_put(ioc, monkeypatch):
    monkeypatch.setenv(READ_ONLY_VARIABLE, "1")
    routine = run_routine("demo", evaluations=3, generator="random")
    assert ioc.audit.puts() == []
    assert routine.environment.interface.read_only is True
    assert len(routine.data) == 3 and routine.data["DEMO:OBJ"].notna().all()
    # nothing moved: the objective stays at its starting value (setpoints at -1, -1)
    assert routine.data["DEMO:OBJ"].tolist() == pytest.approx([2.0] * 3, abs=0.05)
    assert {r.status for step in routine.environment.interface.history for r in step.values()} == {"read_only"}


def test_a_neldermead_routine_runs_too(ioc):
    routine = run_routine("demo", evaluations=6, generator="neldermead")
    assert len(routine.data) == 6 and len(ioc.audit.puts()) == 12
    # Nelder-Mead's small steps: each recorded objective is the settled one at its own setpoints
    for q1, q2, objective in routine.data[["DEMO:Q1:SET", "DEMO:Q2:SET", "DEMO:OBJ"]].itertuples(index=False):
        assert objective == pytest.approx(q1**2 + q2**2, abs=0.25), (q1, q2, objective)


def test_a_stuck_readback_stops_the_routine_with_the_validation_message(ioc):
    ioc.faults.arm("DEMO:Q1:SET", StuckReadback())
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        run_routine("demo_fast", evaluations=3, generator="random")
    message = str(caught.value)
    assert "DEMO:Q1:SET" in message and "DEMO:Q1:RBV" in message and "validation failed" in message
    assert time.monotonic() - started < 20


def test_the_run_command_runs_a_routine_in_its_own_process(ioc, plugin_root, tmp_path):
    csv = tmp_path / "data.csv"
    command = [sys.executable, "-m", "epics_pva.badger", "run", "demo", "--plugin-root", str(plugin_root),
               "--workdir", str(tmp_path / "work"), "--evaluations", "3", "--output", str(csv), "--archive"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "DEMO:OBJ" in done.stdout and "archived as" in done.stdout
    lines = csv.read_text().splitlines()
    assert len(lines) == 4 and "DEMO:OBJ" in lines[0]
    assert len(ioc.audit.puts()) == 6
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, READ_ONLY_VARIABLE: "1"})
    assert done.returncode == 0, done.stderr
    assert "READ-ONLY" in done.stderr and "logged, not set" in done.stdout
    assert len(ioc.audit.puts()) == 6  # none more


def test_runner_refuses_what_the_environment_does_not_have(ioc):
    with pytest.raises(ValueError, match="not variables of environment 'demo'"):
        run_routine("demo", variables=["DEMO:Q9:SET"])
    with pytest.raises(ValueError, match="'DEMO:NOPE' is not an observable"):
        run_routine("demo", objective="DEMO:NOPE")
    with pytest.raises(ValueError, match="evaluations must be >= 1"):
        run_routine("demo", evaluations=0)
    assert ioc.audit.puts() == []


def test_one_variable_can_be_optimised_alone_and_maximised(ioc):
    routine = run_routine("demo", evaluations=3, variables=["DEMO:Q2:SET"], maximize=True)
    assert type(routine.vocs.objectives["DEMO:OBJ"]).__name__ == "MaximizeObjective"
    assert {p.pv for p in ioc.audit.puts()} == {"DEMO:Q2:SET"}


def test_badger_settings_are_process_wide(plugin_root, tmp_path):
    assert configure_badger(plugin_root=plugin_root) is None  # already pointing there: fine
    with pytest.raises(RuntimeError, match="needs a new process"):
        configure_badger(plugin_root=tmp_path)


def test_the_dry_run_walkthrough_script_runs():
    """examples/badger/dry_run.sh: the README's operator walkthrough, end to end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_PVA")}
    done = subprocess.run(["bash", str(REPO / "examples" / "badger" / "dry_run.sh")],
                          capture_output=True, text=True, timeout=180, env={**env, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 PVs: 5 ok" in done.stdout and "logged, not set" in done.stdout
    assert "REHEARSAL: puts go only to the soft IOC" in done.stderr
    assert "is served by a server that is not the rehearsal's soft IOC (softiocId " in done.stdout
    assert done.stdout.count("DEMO:OBJ") >= 2


# ---- the same routine in rehearsal mode: only the rehearsal's soft IOC is written ---------------

MIRROR_NAMES = ["DEMO:Q1:SET", "DEMO:Q2:SET", "DEMO:Q1:RBV", "DEMO:Q2:RBV", "DEMO:OBJ"]
OBJ_RECORD = """
record(calc, "$(P)OBJ") {
    field(INPA, "$(P)Q1:RBV CP")
    field(INPB, "$(P)Q2:RBV CP")
    field(CALC, "A*A+B*B")
}
"""


def rehearse(monkeypatch, conf, identity):
    """Point bare interfaces at `conf` in rehearsal mode, proving the soft IOC `identity`."""
    for name in [k for k in os.environ if k.startswith("EPICS_PVA_") and "INTERFACE" not in k]:
        monkeypatch.delenv(name)
    for name, value in conf.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("EPICS_PVA_INTERFACE_REHEARSAL", "1")
    monkeypatch.setenv("EPICS_PVA_INTERFACE_REHEARSAL_ID", identity)


@pytest.fixture(scope="module")
def base_ioc(tmp_path_factory):
    """EPICS base's softIoc serving real records with the environment's very PV names."""
    from softioc.epics_base import EpicsBaseIOC, shipped_db_path

    db = tmp_path_factory.mktemp("base") / "demo.db"
    db.write_text(shipped_db_path().read_text() + OBJ_RECORD)
    ioc = EpicsBaseIOC(db=db, macros={"P": "DEMO:"}, ready_pv="DEMO:OBJ").start()
    yield ioc
    ioc.stop()


def test_a_rehearsal_routine_sends_nothing_to_epics_base_serving_the_same_names(base_ioc, monkeypatch, plugin_root):
    reader = epics_pva.Interface(conf=base_ioc.client_conf())
    before = reader.get_values(MIRROR_NAMES[:2])
    rehearse(monkeypatch, base_ioc.client_conf(), "0" * 32)
    with pytest.raises(Exception) as caught:
        run_routine("demo", evaluations=3, generator="random")
    assert ("DEMO:Q1:SET is served by a server that is not the rehearsal's soft IOC (no softiocId field)"
            in str(caught.value))
    assert reader.get_values(MIRROR_NAMES[:2]) == before  # read back: nothing was written
    reader.close()


def test_a_rehearsal_routine_sends_nothing_to_a_stray_server(monkeypatch, plugin_root):
    from p4p.nt import NTScalar
    from p4p.server import Server
    from p4p.server.thread import SharedPV

    puts = []

    class Handler:
        def put(self, pv, op):
            puts.append(op.name())
            op.done()

    # control limits as a real IOC's ao publishes them: the example's get_bounds reads them
    # before each set, so the set reaches the rehearsal's check (a PV without them is refused
    # earlier, by the bounds: tests/test_badger_bounds.py)
    nt = NTScalar("d", control=True)
    pvs = {name: SharedPV(nt=nt, initial=nt.wrap({"value": 0.5, "control": {"limitLow": -2.0, "limitHigh": 2.0}}),
                          handler=Handler()) for name in MIRROR_NAMES}
    with Server(providers=[pvs], isolate=True) as server:
        rehearse(monkeypatch, server.conf(), "0" * 32)
        with pytest.raises(Exception, match="is served by a server that is not the rehearsal's soft IOC"):
            run_routine("demo", evaluations=3, generator="random")
    assert puts == []


def test_a_rehearsal_routine_runs_against_its_soft_ioc(ioc, monkeypatch):
    rehearse(monkeypatch, ioc.client_conf(), ioc.identity)
    routine = run_routine("demo", evaluations=3, generator="random")
    assert routine.environment.interface.rehearsal is True
    assert len(routine.data) == 3 and not routine.data["xopt_error"].any()
    assert [p.outcome for p in ioc.audit.puts()] == ["accepted"] * 6


def test_the_run_command_rehearses_only_with_an_id(ioc, plugin_root, tmp_path):
    command = [sys.executable, "-m", "epics_pva.badger", "run", "demo", "--plugin-root", str(plugin_root),
               "--workdir", str(tmp_path / "work"), "--evaluations", "2", "--rehearsal"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_PVA_INTERFACE")}
    missing = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert missing.returncode == 2 and "--rehearsal needs EPICS_PVA_INTERFACE_REHEARSAL_ID" in missing.stderr
    wrong = subprocess.run(command, capture_output=True, text=True, timeout=120,
                           env={**env, "EPICS_PVA_INTERFACE_REHEARSAL_ID": "f" * 32})
    assert wrong.returncode == 1 and f"softiocId {ioc.identity} != expected {'f' * 32}" in wrong.stderr
    assert ioc.audit.puts() == []
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**env, "EPICS_PVA_INTERFACE_REHEARSAL_ID": ioc.identity})
    assert done.returncode == 0, done.stderr
    assert "REHEARSAL" in done.stderr and len(ioc.audit.puts()) == 4


# ---- Badger's GUI path: a forked worker process rebuilds the routine ------------------------------

# Runs in a process of its own, as Badger's GUI does: no soft IOC (p4p server) in it, only the
# interface. It connects, saves the routine, forks Badger's worker with the default start
# method; the worker loads the routine (a bare Interface), calls reset_interface and runs it.
GUI_PROCESS = """
import json, multiprocessing, sys, time
from epics_pva.badger.runner import configure_badger, run_routine
configure_badger(plugin_root=sys.argv[1], workdir=sys.argv[2])
from badger.archive import save_tmp_run
from badger.core_subprocess import run_routine_subprocess

routine = run_routine("demo", evaluations=1, close=False)
assert routine.environment.interface._pva._context is not None  # connected while forking
queue, stop, pause, wait = multiprocessing.Queue(), multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Event()
results, sender = multiprocessing.Pipe()
pause.set()  # "not paused"
worker = multiprocessing.Process(target=run_routine_subprocess, args=(
    queue, (sender, results), stop, pause, wait, None, None, multiprocessing.Queue()))
worker.start()
queue.put({
    "routine_filename": save_tmp_run(routine), "run_data": False, "init_points": True,
    "evaluate": True, "variable_ranges": routine.vocs.variables,
    "initial_points": routine.initial_points, "start_time": time.time(),
    "termination_condition": {"tc_idx": 0, "max_eval": 3},
})
wait.set()
data = None
deadline = time.monotonic() + 60
while time.monotonic() < deadline and (worker.is_alive() or results.poll()):
    if results.poll(0.2):
        data, _generator = results.recv()
worker.join(timeout=10)
if worker.is_alive():
    worker.kill()
print(json.dumps({"exitcode": worker.exitcode, "objective": None if data is None else data["DEMO:OBJ"].tolist(),
                  "reads": routine.environment.interface.get_value("DEMO:Q1:SET")}))
"""


def test_badgers_forked_worker_runs_the_routine(ioc, plugin_root, tmp_path):
    done = subprocess.run([sys.executable, "-c", GUI_PROCESS, str(plugin_root), str(tmp_path)],
                          capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["exitcode"] == 0, done.stderr
    assert outcome["objective"] is not None and len(outcome["objective"]) == 3
    assert all(math.isfinite(v) for v in outcome["objective"])
    # libCom warns "Detected use of epicsThread from child process after fork()" in any child
    # forked after p4p was imported; the hang that matters is avoided by closing before forking.
    puts = ioc.audit.puts()
    assert len(puts) == 2 + 6  # the parent's first evaluation, then three in the worker
    assert outcome["reads"] == pytest.approx(puts[-2].value if puts[-2].pv == "DEMO:Q1:SET" else puts[-1].value)


# ---- the Info dialog -------------------------------------------------------------------------


def test_the_info_dialog_shows_a_setpoint_its_readback_and_the_interface(ioc):
    """What Badger's variable table shows: env.get_info([name])["vars"][name], rows of str: str."""
    from datetime import datetime

    from p4p.client.thread import Context

    with Interface(timeout=2.0) as intf:
        env = load_environment(DEMO_ENV)(interface=intf)
        info = env.get_info(["DEMO:Q1:SET"])
        rows = info["vars"]["DEMO:Q1:SET"]
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in rows.items())
        assert rows["value"] == "-1.0" and rows["connected"] == "yes"
        assert rows["control limits"] == "-2 to 2"
        assert rows["alarm severity"] == "NO_ALARM (0)"
        # found by a name search of EPICS_PVA_ADDR_LIST from the environment: the IOC's TCP port
        assert rows["server"].startswith(f"127.0.0.1:{ioc.client_conf()['EPICS_PVA_SERVER_PORT']} (guid ")
        ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
        try:
            stamp = ctx.get("DEMO:Q1:SET", timeout=2.0).timestamp
        finally:
            ctx.close()
        assert datetime.fromisoformat(rows["timestamp"]).timestamp() == pytest.approx(stamp, abs=1e-3)
        # the example environment passes its wait_for_readback config: readback and tolerance
        assert rows["readback PV"] == "DEMO:Q1:RBV" and rows["tolerance"] == str(TOLERANCE)
        assert rows["settle time limit"] == "15 s"
        assert info["interface"]["read_only"] == "False" and info["interface"]["version"] == epics_pva.__version__
        assert ioc.audit.puts() == []  # looking sends nothing
        env.set_variables({"DEMO:Q1:SET": 1.0})  # validated: the readback settles first
        rows = env.get_info(["DEMO:Q1:SET"])["vars"]["DEMO:Q1:SET"]
        assert rows["value"] == "1.0" and rows["within tolerance"].startswith("yes")


def test_info_remembers_the_configs_of_earlier_sets_and_reports_an_unreachable_pv(ioc):
    config = load_environment(DEMO_ENV)._configs["DEMO:Q1:SET"]
    with Interface(timeout=0.5) as intf:
        assert "readback PV" not in intf.get_info(["DEMO:Q1:SET"])["vars"]["DEMO:Q1:SET"]
        intf.set_values({"DEMO:Q1:SET": 0.5}, configs={"DEMO:Q1:SET": config})
        found = intf.get_info(["DEMO:Q1:SET", "DEMO:NOWHERE"])["vars"]
    assert found["DEMO:Q1:SET"]["readback PV"] == "DEMO:Q1:RBV"
    assert found["DEMO:NOWHERE"]["connected"].startswith("no: no reply within 0.5 s")
    assert found["DEMO:NOWHERE"]["server"] == (
        f"not found: no server at {ioc.client_conf()['EPICS_PVA_ADDR_LIST']} claimed it within 0.5 s")
