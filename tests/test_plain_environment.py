"""Badger-free environments: a plain module or class with `variables`, `observables` and a
public `configs` mapping works with pva-dryrun (and --overlay), the mirror and pva-preflight --env,
with Badger absent."""

from __future__ import annotations

import sys
import textwrap

import pytest

from epics_pva.badger.dryrun import apply_overlay, config_from_environment, load_environment
from epics_pva.badger.dryrun import main as dryrun
from epics_pva.errors import BadgerEnvironmentError
from epics_pva.tools.preflight import main as preflight

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

LINAC = textwrap.dedent("""\
    from functools import partial

    from epics_pva import wait_for_readback

    name = "linac"
    variables = {"LI:Q1:SET": [-10.0, 10.0], "LI:Q2:SET": [-4.0, 6.0]}
    observables = ["LI:BLM:1:LOSS"]
    configs = {
        "LI:Q1:SET": partial(wait_for_readback, readback_pv="LI:Q1:RBV", tolerance=0.05),
        "LI:Q2:SET": partial(wait_for_readback, readback_pv="LI:Q2:RBV", tolerance=0.05),
    }
""")

OVERLAY = textwrap.dedent("""\
    [ioc]
    time_scale = 10.0

    [[setpoint]]
    name = "LI:Q1:SET"
    units = "A"
    initial = 1.0

    [[observable]]
    name = "LI:BLM:1:LOSS"
    expression = "x0**2 + x1**2"
    units = "mW"
    alarm_limits = { high = 50.0, hihi = 80.0 }
""")


@pytest.fixture
def linac(tmp_path, monkeypatch):
    path = tmp_path / "linac_env.py"
    path.write_text(LINAC)
    monkeypatch.setitem(sys.modules, "badger", None)  # Badger absent: importing it fails
    return path


def test_a_plain_module_is_an_environment(linac):
    env = load_environment(linac)
    config = config_from_environment(env)
    setpoints = {sp["name"]: sp for sp in config["setpoint"]}
    assert setpoints["LI:Q1:SET"]["readback"] == "LI:Q1:RBV"
    assert setpoints["LI:Q1:SET"]["initial"] == 0.0 and setpoints["LI:Q2:SET"]["initial"] == 1.0  # mid-range
    assert [o["name"] for o in config["observable"]] == ["LI:BLM:1:LOSS"]


def test_a_plain_class_with_public_configs(tmp_path):
    path = tmp_path / "envs.py"
    path.write_text(LINAC.replace("name = ", "class Linac:\n    name = ").replace("\nvariables", "\n    variables")
                    .replace("\nobservables", "\n    observables").replace("\nconfigs = {", "\n    configs = {")
                    .replace('\n    "LI:Q', '\n        "LI:Q').replace("\n}", "\n    }"))
    env = load_environment(f"{path}:Linac")
    assert [sp.get("readback") for sp in config_from_environment(env)["setpoint"]] == ["LI:Q1:RBV", "LI:Q2:RBV"]


def test_a_module_that_is_no_environment_says_so(tmp_path):
    path = tmp_path / "nothing.py"
    path.write_text("x = 1\n")
    with pytest.raises(BadgerEnvironmentError, match="has no 'Environment' and is no plain environment either"):
        load_environment(path)


def test_dryrun_with_an_overlay(linac, tmp_path, capsys):
    overlay = tmp_path / "overlay.toml"
    overlay.write_text(OVERLAY)
    out = tmp_path / "mirror.toml"
    assert dryrun([str(linac), "--overlay", str(overlay), "-o", str(out)]) == 0
    config = tomllib.loads(out.read_text())
    q1 = next(sp for sp in config["setpoint"] if sp["name"] == "LI:Q1:SET")
    assert (q1["units"], q1["initial"], q1["limits"]) == ("A", 1.0, [-10.0, 10.0])
    loss = config["observable"][0]
    assert loss["expression"] == "x0**2 + x1**2" and loss["alarm_limits"] == {"high": 50.0, "hihi": 80.0}
    assert config["ioc"]["time_scale"] == 10.0
    from softioc import load_config

    load_config(out)  # the soft IOC takes it as it is


@pytest.mark.parametrize(("overlay", "message"), [
    ({"setpoint": [{"name": "LI:Q9:SET", "units": "A"}]}, "'LI:Q9:SET' is not a generated setpoint"),
    ({"setpoint": [{"name": "LI:Q1:SET", "colour": "red"}]}, "key 'colour' cannot be overlaid"),
    ({"fault": []}, "unknown table 'fault'"),
])
def test_a_bad_overlay_names_what_is_wrong(linac, overlay, message):
    config = config_from_environment(load_environment(linac))
    with pytest.raises(BadgerEnvironmentError, match=message):
        apply_overlay(config, overlay)


def test_preflight_checks_a_plain_environment(linac, softioc_factory, monkeypatch, capsys):
    ioc = softioc_factory(config_from_environment(load_environment(linac)), overrides={"ioc": {"time_scale": 10}})
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    assert preflight(["--env", str(linac), "--update-time", "2"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    for pv in ("LI:Q1:SET", "LI:Q2:RBV", "LI:BLM:1:LOSS"):
        assert pv in out
    assert ioc.audit.puts() == []
