"""Settle warnings before a routine starts: a variable an observable is read too early for."""

from __future__ import annotations

from functools import partial

from epics_pva import wait_for_readback
from epics_pva.badger.dryrun import config_from_environment, load_environment
from epics_pva.badger.dryrun.cli import main as dryrun
from epics_pva.tools.preflight import main as preflight
from epics_pva.tools.settle import dependencies_from_mirror, rate_warnings, settle_warnings

ENV = '''from functools import partial

from epics_pva import wait_for_readback


class Environment:
    name = "halfvalidated"
    variables = {"H:Q1:SET": [-2.0, 2.0], "H:Q2:SET": [-2.0, 2.0]}
    observables = ["H:OBJ"]
    _configs = {
        "H:Q1:SET": partial(wait_for_readback, readback_pv="H:Q1:RBV", tolerance=TOLERANCE,
                            count_down=5, offset=0),
    }
'''


def env_file(tmp_path, tolerance=0.01):
    path = tmp_path / "halfvalidated.py"
    path.write_text(ENV.replace("TOLERANCE", repr(tolerance)))
    return str(path)


def wait(rbv, tolerance):
    return partial(wait_for_readback, readback_pv=rbv, tolerance=tolerance, count_down=5, offset=0)


def test_a_variable_without_validation_warns_when_an_observable_depends_on_it():
    configs = {"A:SET": wait("A:RBV", 0.01)}
    depends = {"OBJ": {"A:SET", "B:SET"}, "OTHER": {"A:SET"}}
    found = settle_warnings(["A:SET", "B:SET", "C:SET"], configs, ["OBJ", "OTHER"], depends=depends)
    assert list(found) == ["B:SET"] and "OBJ depend(s) on it" in found["B:SET"][0]


def test_without_known_dependencies_every_unvalidated_variable_may_matter():
    found = settle_warnings(["A:SET", "B:SET"], {"A:SET": wait("A:RBV", 0.01)}, ["OBJ"])
    assert list(found) == ["B:SET"] and "may depend on it" in found["B:SET"][0]
    assert settle_warnings(["B:SET"], {}, []) == {}  # nothing read: nothing read too early


def test_a_tolerance_as_wide_as_a_step_warns():
    configs = {"A:SET": wait("A:RBV", 0.5)}
    assert "typical step 0.2" in settle_warnings(["A:SET"], configs, ["OBJ"], typical_step=0.2)["A:SET"][0]
    assert settle_warnings(["A:SET"], configs, ["OBJ"], typical_step=1.0) == {}
    assert "a tenth of its bounds" in settle_warnings({"A:SET": [-2, 2]}, configs, ["OBJ"])["A:SET"][0]
    assert settle_warnings({"A:SET": [-20, 20]}, configs, ["OBJ"]) == {}


def test_an_observable_slower_than_its_readbacks_warns():
    warnings = rate_warnings({"OBJ": 2.0, "FAST": 19.5}, {"A:RBV": 20.0})
    assert len(warnings) == 1 and "OBJ updates at 2 Hz" in warnings[0] and "FRESH_READS" in warnings[0]
    assert rate_warnings({"OBJ": 2.0}, {}) == []


def test_the_mirror_knows_which_variables_an_observable_reads(tmp_path):
    env = load_environment(env_file(tmp_path))
    config = config_from_environment(env, objective="x1 ** 2")
    depends = dependencies_from_mirror(config, env.variables, env._configs)
    assert depends == {"H:OBJ": {"H:Q2:SET"}}


def test_the_dry_run_warns_of_an_environment_that_lacks_a_validation(tmp_path, capsys):
    assert dryrun([env_file(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: H:Q2:SET: no validation, and H:OBJ depend(s) on it" in err
    assert "H:Q1:SET" not in err


def test_preflight_warns_of_an_environment_that_lacks_a_validation(tmp_path, softioc_factory, monkeypatch, capsys):
    path = env_file(tmp_path, tolerance=0.5)
    ioc = softioc_factory(config_from_environment(load_environment(path)))
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    assert preflight(["--env", path, "--update-time", "0"]) == 0  # warnings, not failures...
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert "no validation" in rows["H:Q2:SET"] and "WARN" in rows["H:Q2:SET"]
    assert "a tenth of its bounds" in rows["H:Q1:SET"]
    assert preflight(["--env", path, "--update-time", "0", "--typical-step", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "tolerance" not in out
    assert preflight(["--env", path, "--update-time", "0", "--strict"]) == 1  # ...unless strict
    assert ioc.audit.puts() == []


def test_measure_warns_of_an_observable_slower_than_its_readbacks(softioc_factory, monkeypatch, capsys):
    ioc = softioc_factory({
        "ioc": {"update_rate": 20.0},
        "setpoint": [{"name": "R:SET", "readback": "R:RBV", "noise": 0.001}],
        "observable": [{"name": "R:OBJ", "expression": "q", "inputs": {"q": "R:RBV"}, "noise": 0.001,
                        "scan": 0.5}],
    })
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    assert preflight(["--measure", "2", "--pair", "R:SET=R:RBV", "--pv", "R:OBJ"]) == 0  # a note, not a finding
    out = capsys.readouterr().out
    assert "WARNING (settle): R:OBJ updates at 2" in out and "more slowly than validations finish" in out
