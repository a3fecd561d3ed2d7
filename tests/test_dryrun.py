"""epics_pva.badger.dryrun: a Badger environment mirrored as a soft IOC config, served and checked over PVAccess."""

from __future__ import annotations

import ast
import math
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import ClassVar

import pytest
from p4p.client.thread import Context

from epics_pva.badger.dryrun import (
    DryRunError,
    config_from_environment,
    load_environment,
    main,
    to_toml,
    validation_keywords,
)
from softioc.config import config_from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
DEMO_ENV = REPO / "examples" / "badger" / "environments" / "demo"


def wait_for_readback(**kwargs):  # stands in for epics_pva's: dryrun only reads the keywords
    raise AssertionError("never called")


class DuckEnvironment:
    """Shaped like a Badger environment class; dryrun needs no Badger and no epics_pva."""

    name = "duck"
    variables = {"M:A:SET": [-2.0, 2.0], "M:B:SET": [0.0, 10.0], "M:C:SET": [1.0, 3.0]}
    observables = ["M:OBJ", "M:A:RBV", "`M:OBJ` * 2"]
    _configs: ClassVar[dict] = {
        "M:A:SET": partial(wait_for_readback, readback_pv="M:A:RBV", tolerance=0.05, count_down=15, offset=0.0),
        "M:B:SET": partial(wait_for_readback, readback_pv="M:B:RBV", tolerance=0.2, count_down=5, offset=0.5),
    }


def mirror(**kwargs):
    return config_from_environment(DuckEnvironment, **kwargs)


def test_variables_become_setpoints_with_bounds_as_limits_and_readbacks_from_configs():
    config = mirror()
    setpoints = {sp["name"]: sp for sp in config["setpoint"]}
    assert list(setpoints) == ["M:A:SET", "M:B:SET", "M:C:SET"]
    a, b, c = setpoints["M:A:SET"], setpoints["M:B:SET"], setpoints["M:C:SET"]
    assert a["limits"] == [-2.0, 2.0] and b["limits"] == [0.0, 10.0] and c["limits"] == [1.0, 3.0]
    assert a["readback"] == "M:A:RBV" and b["readback"] == "M:B:RBV" and "readback" not in c
    assert b["offset"] == 0.5 and a["offset"] == 0.0
    assert a["noise"] == pytest.approx(0.005) and b["noise"] == pytest.approx(0.02)  # tolerance / 10
    assert a["lag"] == "first_order" and a["tau"] == 0.5
    assert a["initial"] == 0.0 and b["initial"] == 5.0 and c["initial"] == 2.0  # mid-range
    config_from_dict(config)  # the soft IOC accepts it as it is


def test_observables_become_computed_pvs_unless_served_or_formulas():
    config = mirror()
    assert [o["name"] for o in config["observable"]] == ["M:OBJ"]
    obj = config["observable"][0]
    assert obj["inputs"] == {"x0": "M:A:RBV", "x1": "M:B:RBV", "x2": "M:C:SET"}
    # default: distance of each readback from its bounds' centre (+ offset), squared, summed
    assert obj["expression"] == "x0**2 + (x1 - 5.5)**2 + (x2 - 2.0)**2"


def test_objective_expression_can_be_given_for_all_or_per_observable():
    assert mirror(objective="abs(x0) + x2")["observable"][0]["expression"] == "abs(x0) + x2"
    assert mirror(objective={"M:OBJ": "x1 * 2"})["observable"][0]["expression"] == "x1 * 2"
    with pytest.raises(DryRunError, match="M:NOPE"):
        mirror(objective={"M:NOPE": "x0"})


def test_options_reach_the_config():
    config = mirror(lag="rate", rate=3.0, noise=0.0, seed=5, update_rate=40.0, time_scale=10.0,
                    initial_fraction=0.5, observable_noise=0.01)
    a = config["setpoint"][0]
    assert a["lag"] == "rate" and a["rate"] == 3.0 and "tau" not in a and a["noise"] == 0.0
    assert a["initial"] == 0.0
    assert config["ioc"] == {"seed": 5, "update_rate": 40.0, "time_scale": 10.0}
    assert config["observable"][0]["noise"] == 0.01


@pytest.mark.parametrize("bounds", [[1.0, 1.0], [2.0, 1.0], [0.0], "ab", [0.0, math.inf], [True, 2]])
def test_bad_bounds_are_refused_naming_the_variable(bounds):
    env = type("Env", (), {"name": "bad", "variables": {"X:SET": bounds}, "observables": []})
    with pytest.raises(DryRunError, match=r"bad: variable 'X:SET' needs bounds"):
        config_from_environment(env)


def test_an_environment_without_variables_is_refused():
    with pytest.raises(DryRunError, match="no 'variables'"):
        config_from_environment(type("Env", (), {"name": "empty", "variables": {}}))


def test_a_non_numeric_offset_is_refused():
    env = type("Env", (), {"name": "e", "variables": {"X": [0, 1]}, "observables": [],
                           "_configs": {"X": partial(wait_for_readback, readback_pv="X:RBV", offset="1")}})
    with pytest.raises(DryRunError, match="'offset' must be a finite number"):
        config_from_environment(env)


def test_validation_keywords_merge_nested_partials():
    inner = partial(wait_for_readback, readback_pv="R", tolerance=0.1)
    assert validation_keywords(partial(inner, tolerance=0.3)) == {"readback_pv": "R", "tolerance": 0.3}
    assert validation_keywords(None) == {} and validation_keywords(print) == {}


def test_toml_round_trips():
    config = mirror(objective='x0 + 1')
    config["setpoint"][0]["description"] = 'quote " and backslash \\ and ünïcode'
    text = to_toml(config, header="two\nlines")
    assert text.startswith("# two\n# lines\n")
    assert tomllib.loads(text) == config


def test_cli_prints_toml_and_writes_files(tmp_path, capsys):
    env_file = tmp_path / "duck_env.py"
    env_file.write_text(
        "from functools import partial\n"
        "def check(**kw): pass\n"
        "class Environment:\n"
        "    name = 'file'\n"
        "    variables = {'F:SET': [0.0, 4.0]}\n"
        "    observables = ['F:OBJ']\n"
        "    _configs = {'F:SET': partial(check, readback_pv='F:RBV', tolerance=0.1, offset=0.25)}\n"
    )
    assert main([str(env_file), "--objective", "F:OBJ=(x0 - 1)**2", "--time-scale", "5"]) == 0
    parsed = tomllib.loads(capsys.readouterr().out)
    assert parsed["observable"][0] == {"name": "F:OBJ", "expression": "(x0 - 1)**2", "inputs": {"x0": "F:RBV"}}
    assert parsed["setpoint"][0]["offset"] == 0.25 and parsed["ioc"]["time_scale"] == 5.0
    out = tmp_path / "mirror.toml"
    assert main([str(env_file), "-o", str(out)]) == 0
    assert tomllib.loads(out.read_text())["setpoint"][0]["name"] == "F:SET"
    assert main([str(tmp_path / "missing.py")]) == 2
    assert "missing.py" in capsys.readouterr().err
    assert main([f"{env_file}:Nope"]) == 2
    assert "has no 'Nope'" in capsys.readouterr().err


def test_dryrun_imports_neither_the_simulator_nor_badger():
    code = ("import sys, epics_pva.badger.dryrun; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('softioc', 'badger')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_environment_reader_imports_no_client_simulator_or_badger():
    source = (REPO / "epics_pva" / "tools" / "environment.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & {"p4p", "softioc", "badger", "pydantic"}, imported


def test_the_mirror_behaves_like_the_environment_expects(softioc_factory):
    """Served: a put outside the bounds is clamped to them (as an ao's drive limits do),
    readbacks settle at setpoint + offset, the objective is computed from the readbacks."""
    ioc = softioc_factory(mirror(noise=0.0, time_scale=20.0, update_rate=50.0))
    ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
    try:
        ctx.put("M:A:SET", 1.0, timeout=2)
        ctx.put("M:B:SET", 3.0, timeout=2)
        ctx.put("M:C:SET", 5.0, timeout=2)  # bounds [1, 3]: holds 3
        assert float(ctx.get("M:C:SET", timeout=2)) == 3.0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            a, b = ctx.get(["M:A:RBV", "M:B:RBV"], timeout=2)
            if abs(a - 1.0) < 1e-3 and abs(b - 3.5) < 1e-3:
                break
            time.sleep(0.05)
        assert a == pytest.approx(1.0, abs=1e-3) and b == pytest.approx(3.5, abs=1e-3)  # offset 0.5
        deadline = time.monotonic() + 5
        expected = 1.0 + (3.5 - 5.5) ** 2 + (3.0 - 2.0) ** 2
        while abs(ctx.get("M:OBJ", timeout=2) - expected) > 1e-2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ctx.get("M:OBJ", timeout=2) == pytest.approx(expected, abs=1e-2)
        assert [(p.outcome, p.applied) for p in ioc.audit.puts()] == [
            ("accepted", 1.0), ("accepted", 3.0), ("accepted", 3.0)]
    finally:
        ctx.close()


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_one_command_generates_and_serves(tmp_path, stop):
    """--serve runs the soft IOC as a child process; a signal to pva-dryrun reaches it and its
    exit code comes back."""
    env_file = tmp_path / "served_env.py"
    env_file.write_text(
        "class Environment:\n    name = 'served'\n    variables = {'S:X:SET': [-1.0, 1.0]}\n"
        "    observables = ['S:OBJ']\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "epics_pva.badger.dryrun", str(env_file), "--initial-fraction", "0.25", "--serve", "--",
         "--quiet", "--duration", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        conf = {}
        for line in proc.stdout:
            if line.startswith("# ready"):
                break
            name, sep, value = line.strip().partition("=")
            if sep:
                conf[name] = value
        assert "EPICS_PVA_SERVER_PORT" in conf, proc.stderr.read() if proc.poll() is not None else conf
        ctx = Context("pva", conf=conf, useenv=False)
        try:
            assert ctx.get("S:X:SET", timeout=5) == -0.5
            assert ctx.get("S:OBJ", timeout=5) == pytest.approx(0.25)
        finally:
            ctx.close()
        (ioc_pid,) = _children(proc.pid)
        proc.send_signal(stop)
        assert proc.wait(timeout=15) == 0
        with pytest.raises(ProcessLookupError):  # the soft IOC stopped and was reaped
            os.kill(ioc_pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=15)
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture
def badger_installed():
    pytest.importorskip("badger")


def test_the_example_badger_environment_is_mirrored(badger_installed):
    env = load_environment(DEMO_ENV)
    config = config_from_environment(env)
    q1, q2 = config["setpoint"]
    assert (q1["name"], q1["readback"], q1["limits"], q1["offset"]) == ("DEMO:Q1:SET", "DEMO:Q1:RBV", [-2.0, 2.0], 0.0)
    assert (q2["name"], q2["readback"], q2["limits"]) == ("DEMO:Q2:SET", "DEMO:Q2:RBV", [-2.0, 2.0])
    assert config["observable"][0]["name"] == "DEMO:OBJ"
    config_from_dict(config)


def test_pydantic_private_configs_are_found():
    pydantic = pytest.importorskip("pydantic")

    class Env(pydantic.BaseModel):
        name: ClassVar[str] = "private"
        variables: ClassVar[dict] = {"P:SET": [0.0, 1.0]}
        observables: ClassVar[list] = []
        _configs = {"P:SET": partial(wait_for_readback, readback_pv="P:RBV", tolerance=0.01)}

    assert config_from_environment(Env)["setpoint"][0]["readback"] == "P:RBV"
