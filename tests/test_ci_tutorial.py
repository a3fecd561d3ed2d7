"""A facility's CI suite written only from docs/ci-tutorial.md (what a reader of that page
would write for a machine of their own); it must pass under `pytest -n 4`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from functools import partial

import numpy as np
import pytest

from epics_pva import Interface, SetValuesError, ValidationError, wait_for_readback
from softioc import ConfigError, ForcedValue, ReadbackBias, StuckReadback
from softioc.config import with_overrides
from softioc.testing import wait_for_severity, wait_for_value

MACHINE = textwrap.dedent("""\
    [ioc]
    update_rate = 50.0
    time_scale = 10.0

    [[setpoint]]
    name = "BT:H1:SET"
    readback = "BT:H1:RBV"
    limits = [-5.0, 5.0]
    lag = "first_order"
    tau = 1.0
    units = "A"

    [[setpoint]]
    name = "BT:H2:SET"
    readback = "BT:H2:RBV"
    limits = [-5.0, 5.0]
    lag = "first_order"
    tau = 1.0
    units = "A"

    [[observable]]
    name = "BT:TOROID:Q"
    expression = "10 - (h1 - 0.5)**2 - (h2 - 1.5)**2"
    inputs = { h1 = "BT:H1:RBV", h2 = "BT:H2:RBV" }
    units = "pC"
    alarm_limits = { low = 2.0, lolo = 1.0 }

    [[observable]]
    name = "BT:BPM:Y"
    inputs = { h1 = "BT:H1:RBV", h2 = "BT:H2:RBV" }
    units = "mm"
""")

RESPONSE = np.array([[1.2, 0.4]])  # mm per A


def bpm_y(h1, h2):
    return float((RESPONSE @ np.array([h1, h2]))[0])


def near(target, tolerance=0.01):
    return lambda value: abs(value - target) < tolerance


@pytest.fixture
def machine(tmp_path):
    path = tmp_path / "machine.toml"
    path.write_text(MACHINE)
    return path


@pytest.fixture
def softioc_config(machine):
    return with_overrides(machine, {"observable": {"BT:BPM:Y": {"expression": "h1"}}})


def settled(pv, count_down=2.0):
    return partial(wait_for_readback, readback_pv=pv, tolerance=0.01, count_down=count_down, offset=0.0)


def test_charge_peaks_where_the_steerers_are_right(soft_ioc, pva_interface):
    pva_interface.set_values({"BT:H1:SET": 0.5, "BT:H2:SET": 1.5},
                             configs={"BT:H1:SET": settled("BT:H1:RBV"), "BT:H2:SET": settled("BT:H2:RBV")})
    assert pva_interface.get_value("BT:TOROID:Q") == pytest.approx(10.0, abs=0.01)
    assert [r.value for r in soft_ioc.audit.puts("BT:H2:SET")] == [1.5]


def test_a_stuck_toroid(soft_ioc, pva_interface):
    soft_ioc.faults.arm("BT:TOROID:Q", StuckReadback())
    pva_interface.set_value("BT:H1:SET", 0.5)
    wait_for_value(soft_ioc, "BT:H1:RBV", near(0.5))
    assert pva_interface.get_value("BT:TOROID:Q") == pytest.approx(10 - 0.25 - 2.25)


def test_a_biased_toroid(soft_ioc):
    soft_ioc.faults.arm("BT:TOROID:Q", ReadbackBias(bias=-1.0))
    wait_for_value(soft_ioc, "BT:TOROID:Q", near(6.5))


def test_a_toroid_forced_into_alarm(soft_ioc, pva_interface):
    soft_ioc.faults.arm("BT:TOROID:Q", ForcedValue(0.5, severity="MAJOR", message="no beam"))
    reading = wait_for_severity(soft_ioc, "BT:TOROID:Q", "MAJOR")
    assert reading == 0.5 and reading.raw.alarm.message == "no beam"
    assert pva_interface.get_readings(["BT:TOROID:Q"])["BT:TOROID:Q"].severity == 2


def test_the_toroid_alarm_limits(soft_ioc, pva_interface):
    pva_interface.set_value("BT:H1:SET", 3.5)  # 10 - 9 - 2.25 < 1: LOLO
    wait_for_severity(soft_ioc, "BT:TOROID:Q", "MAJOR")


def test_a_stuck_steerer_fails_validation_quickly(soft_ioc, pva_interface):
    soft_ioc.faults.arm("BT:H1:SET", StuckReadback())
    with pytest.raises(SetValuesError) as caught:
        pva_interface.set_values({"BT:H1:SET": 1.0}, configs={"BT:H1:SET": settled("BT:H1:RBV", count_down=0.5)})
    assert isinstance(caught.value.results["BT:H1:SET"].error, ValidationError)


def test_the_bpm_from_a_response_matrix(softioc_factory, machine):
    ioc = softioc_factory(machine, observables={"BT:BPM:Y": bpm_y})
    with Interface(conf=ioc.client_conf(), use_env=False) as interface:
        interface.set_values({"BT:H1:SET": 1.0, "BT:H2:SET": -2.0})
    wait_for_value(ioc, "BT:BPM:Y", near(0.4))
    assert {row["readback_pv"]: row["units"] for row in ioc.snapshot()}["BT:BPM:Y"] == "mm"


def test_a_broken_bpm_is_invalid(softioc_factory, machine):
    def broken(h1, h2):
        raise RuntimeError("no signal")

    ioc = softioc_factory(machine, observables={"BT:BPM:Y": broken})
    assert "no signal" in wait_for_severity(ioc, "BT:BPM:Y", "INVALID").raw.alarm.message
    assert ioc.observable_stats()["BT:BPM:Y"].errors >= 1


def test_a_variant_that_starts_off_peak(softioc_factory, machine):
    ioc = softioc_factory(machine, overrides={"ioc": {"time_scale": 20.0}, "setpoint": {"BT:H2:SET": {"initial": 1.5}},
                                              "observable": {"BT:BPM:Y": {"expression": "h2"}}})
    wait_for_value(ioc, "BT:TOROID:Q", near(9.75))


def test_a_typo_in_a_variant_is_named(softioc_factory, machine):
    with pytest.raises(ConfigError, match="upate_rate"):
        softioc_factory(machine, overrides={"ioc": {"upate_rate": 20.0}})


def test_a_dry_run_of_a_badger_free_environment(tmp_path):
    env = tmp_path / "transfer_env.py"
    env.write_text(textwrap.dedent("""\
        from functools import partial

        from epics_pva import wait_for_readback

        name = "transfer"
        variables = {"BT:H1:SET": [-5.0, 5.0], "BT:H2:SET": [-5.0, 5.0]}
        observables = ["BT:TOROID:Q"]
        configs = {pv: partial(wait_for_readback, readback_pv=pv.replace(":SET", ":RBV"), tolerance=0.05)
                   for pv in variables}
    """))
    overlay = tmp_path / "overlay.toml"
    overlay.write_text('[[observable]]\nname = "BT:TOROID:Q"\nexpression = "10 - x0**2 - x1**2"\nunits = "pC"\n')
    mirror = tmp_path / "mirror.toml"
    done = subprocess.run([sys.executable, "-m", "epics_pva.badger.dryrun", str(env), "--overlay", str(overlay),
                           "-o", str(mirror)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([sys.executable, "-m", "softioc", str(mirror), "--list-pvs"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert {"BT:H1:SET", "BT:H1:RBV", "BT:TOROID:Q"} <= set(listed.stdout.split())
    assert "initial = 0.0" in mirror.read_text()
