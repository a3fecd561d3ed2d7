"""The calibrated mirror over PVAccess: measure (read-only), step (explicit), fit from a journal,
and a dry-run mirror built from the calibration that behaves like what was measured."""

from __future__ import annotations

import json
import math
import re
import sys
import time
from functools import partial

import pytest
from p4p.client.thread import Context

from epics_pva import Interface
from epics_pva.badger import dryrun
from epics_pva.core import recording_traces, wait_for_readback
from epics_pva.journal import Journal, read_journal
from epics_pva.tools.measure import fit_from_journal, measure, step_test
from epics_pva.tools.preflight import main as preflight
from softioc.config import ConfigError, config_from_dict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOOP_HZ = 100.0

MACHINE = {
    "ioc": {"seed": 11, "update_rate": LOOP_HZ},
    "setpoint": [
        # posts at 20 Hz of its own while the IOC steps at 100 Hz
        {"name": "M:Q1:SET", "readback": "M:Q1:RBV", "initial": 0.0, "limits": [-5.0, 5.0],
         "lag": "first_order", "tau": 0.3, "noise": 0.02, "offset": 0.5, "update_rate": 20.0},
        {"name": "M:Q2:SET", "readback": "M:Q2:RBV", "initial": 1.0, "limits": [-5.0, 5.0],
         "lag": "rate", "rate": 4.0, "noise": 0.01, "offset": -0.2},
        {"name": "M:Q3:SET", "readback": "M:Q3:RBV", "initial": 2.0},  # no noise: never posts
        {"name": "M:Q4:SET", "readback": "M:Q4:RBV", "initial": 0.0, "noise": 0.01, "update_rate": 5.0},
    ],
    "observable": [
        {"name": "M:OBJ", "expression": "q1 + q2", "noise": 0.01, "update_rate": 5.0,
         "inputs": {"q1": "M:Q1:SET", "q2": "M:Q2:SET"}},
    ],
}


@pytest.fixture
def machine(softioc_factory, monkeypatch):
    """The machine a mirror stands for; pva-preflight finds it through EPICS_PVA_* settings."""
    ioc = softioc_factory(MACHINE)
    for name, value in ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    return ioc


def _env_file(tmp_path, name, configs, variables=None, observables=("M:OBJ",)):
    """A Badger-shaped environment module (no Badger needed) with these wait_for_readback configs."""
    variables = variables or {pv: [-5.0, 5.0] for pv in configs}
    body = "".join(f"        {pv!r}: partial(wait_for_readback, {kw}),\n" for pv, kw in configs.items())
    path = tmp_path / f"{name}.py"
    path.write_text(
        "from functools import partial\n\nfrom epics_pva import wait_for_readback\n\n\n"
        f"class Environment:\n    name = {name!r}\n    variables = {variables!r}\n"
        f"    observables = {list(observables)!r}\n    _configs = {{\n{body}    }}\n")
    return str(path)


# ---- per-PV update rate in the soft IOC ---------------------------------------------------------

def test_each_readback_and_observable_posts_at_its_own_update_rate(machine, tmp_path, capsys):
    out = tmp_path / "cal.json"
    code = preflight(["--measure", "3", "--pair", "M:Q1:SET=M:Q1:RBV", "--pair", "M:Q2:SET=M:Q2:RBV",
                      "--pv", "M:OBJ", "M:Q4:RBV", "--json", str(out)])
    assert code == 0, capsys.readouterr()
    readbacks = json.loads(out.read_text())["readbacks"]
    rates = {pv: readbacks[pv]["update_rate_hz"] for pv in ("M:Q1:RBV", "M:Q2:RBV", "M:Q4:RBV", "M:OBJ")}
    # M:Q2:RBV posts at every step of the loop, whose own jitter under load (a late step, then a
    # short one) has moved its median interval by 5 % (seen: 105 Hz); the own rates keep a schedule
    assert rates == {"M:Q1:RBV": pytest.approx(20.0, rel=0.05), "M:Q2:RBV": pytest.approx(LOOP_HZ, rel=0.15),
                     "M:Q4:RBV": pytest.approx(5.0, rel=0.05), "M:OBJ": pytest.approx(5.0, rel=0.05)}
    # a slower PV keeps its noise; 60 updates know sigma within ~10 % (1 sd), so 35 % is 3.5 sd
    assert readbacks["M:Q1:RBV"]["noise_sigma"] == pytest.approx(0.02, rel=0.35)
    assert readbacks["M:Q2:RBV"]["noise_sigma"] == pytest.approx(0.01, rel=0.15)  # 300 updates: ~4 % (1 sd)
    assert machine.audit.puts() == []


@pytest.mark.parametrize(("table", "problem"), [
    ({"name": "X", "readback": "X:RBV", "update_rate": 0}, "must be within [0.001, 1000] Hz, got 0"),
    ({"name": "X", "readback": "X:RBV", "update_rate": -2.0}, "must be within [0.001, 1000] Hz, got -2.0"),
    ({"name": "X", "readback": "X:RBV", "update_rate": "fast"}, "must be int or float"),
    ({"name": "X", "readback": "X:RBV", "update_rate": 50.0}, "faster than the [ioc] update_rate 10 Hz"),
    ({"name": "X", "update_rate": 5.0}, "it needs a 'readback'"),
])
def test_a_bad_update_rate_names_the_pv_and_key(table, problem):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"setpoint": [table]})
    assert "'X'" in str(info.value) and "update_rate" in str(info.value) and problem in str(info.value)


def test_an_observable_update_rate_is_checked_too():
    with pytest.raises(ConfigError, match=r"\[\[observable\]\] #1 \('O'\): key 'update_rate' is 20 Hz, faster"):
        config_from_dict({"setpoint": [{"name": "S"}],
                          "observable": [{"name": "O", "expression": "s", "inputs": {"s": "S"}, "update_rate": 20}]})


# ---- pva-preflight --measure --------------------------------------------------------------------

GOOD = {  # each can settle: tolerance > 3 sigma, count_down > 3 update periods, offset right
    "M:Q1:SET": "readback_pv='M:Q1:RBV', tolerance=0.1, count_down=5.0, offset=0.5",
    "M:Q2:SET": "readback_pv='M:Q2:RBV', tolerance=0.05, count_down=5.0, offset=-0.2",
    "M:Q4:SET": "readback_pv='M:Q4:RBV', tolerance=0.05, count_down=1.0, offset=0.0",
}
BAD = {
    # 0.05 < 3 x 0.02: rarely settles
    "M:Q1:SET": "readback_pv='M:Q1:RBV', tolerance=0.05, count_down=5.0, offset=0.5",
    # 0.5 s < 3 periods of its 5 Hz readback
    "M:Q4:SET": "readback_pv='M:Q4:RBV', tolerance=0.05, count_down=0.5, offset=0.0",
    # never posts an update
    "M:Q3:SET": "readback_pv='M:Q3:RBV', tolerance=0.1, count_down=5.0, offset=0.0",
}


def test_measure_env_flags_exactly_the_configs_that_cannot_work(machine, tmp_path, capsys):
    mixed = {"M:Q2:SET": GOOD["M:Q2:SET"], **BAD}
    out = tmp_path / "cal.json"
    code = preflight(["--measure", "2.5", "--env", _env_file(tmp_path, "mixed", mixed), "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 1, printed
    warnings = json.loads(out.read_text())["warnings"]
    assert len(warnings) == 3, warnings
    by_pv = {w.split(" ")[0]: w for w in warnings}
    assert set(by_pv) == {"M:Q1:SET", "M:Q4:SET", "M:Q3:SET"}
    assert "tolerance 0.05 is below 3 sigma" in by_pv["M:Q1:SET"] and "will rarely settle" in by_pv["M:Q1:SET"]
    assert "count_down 0.5 s is shorter than 3 update periods" in by_pv["M:Q4:SET"]
    assert "never updates" in by_pv["M:Q3:SET"]
    assert all(f"WARNING: {w}" in printed for w in warnings)
    assert machine.audit.puts() == []

    code = preflight(["--measure", "2.5", "--env", _env_file(tmp_path, "good", GOOD)])
    assert code == 0, capsys.readouterr().out
    assert machine.audit.puts() == []


def test_a_step_is_refused_without_write_test_and_misuse_is_exit_2(machine, tmp_path, capsys):
    assert preflight(["--measure", "1", "--pair", "M:Q1:SET=M:Q1:RBV", "--step", "1"]) == 2
    assert "refused without --write-test" in capsys.readouterr().err
    assert preflight(["--step", "1", "--pair", "M:Q1:SET=M:Q1:RBV"]) == 2
    assert preflight(["--measure", "1", "--setpoint", "M:Q1:SET"]) == 2
    assert "--pair SET=RBV" in capsys.readouterr().err
    assert preflight(["--pair", "M:Q1:SET=M:Q1:RBV"]) == 2  # --pair without --measure
    assert preflight(["--measure", "1", "--env", str(tmp_path / "missing.py")]) == 2
    assert machine.audit.puts() == []


def test_a_step_with_write_test_fits_the_lag_and_puts_back(machine, tmp_path):
    out = tmp_path / "cal.json"
    code = preflight(["--measure", "1.5", "--pair", "M:Q1:SET=M:Q1:RBV", "--step", "2", "--write-test",
                      "--json", str(out)])
    assert code == 0
    pair = json.loads(out.read_text())["pairs"]["M:Q1:SET"]
    assert pair["lag"] == "first_order" and pair["tau_s"] == pytest.approx(0.3, rel=0.15)
    assert pair["offset"] == pytest.approx(0.5, rel=0.2)
    assert [(p.pv, p.value) for p in machine.audit.puts()] == [("M:Q1:SET", 2.0), ("M:Q1:SET", 0.0)]


# ---- fit from a journal of a run ----------------------------------------------------------------

RUN_TARGETS = (2.0, -1.0, 1.5, 0.0, 2.5)
EVALUATION_S = 0.3  # the routine's time between sets (reading and judging the objective)


def _journaled_run(ioc, path):
    """A run through the Interface with a journal: its hook writes before, put, outcome, and
    each validation with the readback trace wait_for_readback saw."""
    configs = {pv: partial(wait_for_readback, readback_pv=rbv, tolerance=0.1, count_down=10.0, offset=offset)
               for pv, rbv, offset in (("M:Q1:SET", "M:Q1:RBV", 0.5), ("M:Q2:SET", "M:Q2:RBV", -0.2))}
    with Interface(conf=ioc.client_conf(), journal=str(path), timeout=5.0, parallel=False) as interface:
        for target in RUN_TARGETS:
            for pv in configs:
                interface.set_values({pv: target}, configs)
                time.sleep(EVALUATION_S)  # the run's own pace, not a synchronisation


@pytest.fixture
def machine_client(machine):
    ctx = Context("pva", conf=machine.client_conf(), useenv=False)
    yield ctx
    ctx.close()


def test_wait_for_readback_records_its_trace_only_when_asked(machine_client):
    pva_client = machine_client
    pva_client.put("M:Q2:SET", 1.4, timeout=5)
    assert wait_for_readback("M:Q2:SET", 1.4, "M:Q2:RBV", 0.05, 5.0, -0.2, pva_client, 5.0) == pytest.approx(
        1.2, abs=0.05)  # no recording: nothing kept, same result
    with recording_traces() as traces:
        pva_client.put("M:Q2:SET", 2.0, timeout=5)
        result = wait_for_readback("M:Q2:SET", 2.0, "M:Q2:RBV", 0.05, 5.0, -0.2, pva_client, 5.0)
    (trace,) = traces
    assert (trace["readback"], trace["set_pv"], trace["set_value"]) == ("M:Q2:RBV", "M:Q2:SET", 2.0)
    samples = trace["samples"]
    assert len(samples) >= 10  # a ramp of 0.6 at 4/s seen at 100 Hz
    assert samples[-1][1] == result
    assert all(s[2] >= s[0] - 0.01 for s in samples)  # handled after the server stamped it (same host)
    assert [s[0] for s in samples] == sorted(s[0] for s in samples)
    json.dumps(trace, allow_nan=False)


def test_fit_from_journal_recovers_each_lag_from_puts_and_validation_traces(machine, tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    _journaled_run(machine, path)
    validations = [e for e in read_journal(path) if e.event == "validation"]
    assert len(validations) == 2 * len(RUN_TARGETS) and all(e.trace["samples"] for e in validations)

    out = tmp_path / "fit.json"
    assert preflight(["--from-journal", str(path), "--json", str(out)]) == 0, capsys.readouterr()
    result = json.loads(out.read_text())
    q1, q2 = result["pairs"]["M:Q1:SET"], result["pairs"]["M:Q2:SET"]
    assert (q1["lag"], q2["lag"]) == ("first_order", "rate")
    assert q1["tau_s"] == pytest.approx(0.3, rel=0.15)
    assert q2["rate_per_s"] == pytest.approx(4.0, rel=0.15)
    assert q1["offset"] == pytest.approx(0.5, rel=0.2)
    # a ramp's offset trades off against its dead time, and each validation trace ends as soon as
    # the readback is within its tolerance (0.1): the offset is known to that tolerance (-0.149 seen)
    assert q2["offset"] == pytest.approx(-0.2, abs=0.1)
    assert q1["steps"] == q2["steps"] == len(RUN_TARGETS)
    assert result["readbacks"]["M:Q1:RBV"]["update_rate_hz"] == pytest.approx(20.0, rel=0.05)
    assert result["readbacks"]["M:Q2:RBV"]["update_rate_hz"] == pytest.approx(LOOP_HZ, rel=0.15)  # loop jitter
    assert result["warnings"] == []
    assert fit_from_journal(path).pairs.keys() == {"M:Q1:SET", "M:Q2:SET"}


def test_a_journal_without_traces_is_reported_and_a_bad_one_is_exit_2(tmp_path, capsys):
    path = tmp_path / "plain.jsonl"
    with Journal(path) as journal:
        call = journal.new_call()
        journal.before(call, {"A:SET": 0.0})
        journal.put(call, "A:SET", 1.0, 1)
        journal.outcome(call, "A:SET", 1, "accepted")
        journal.validation(call, "A:SET", result=1.0)
    assert preflight(["--from-journal", str(path)]) == 1
    printed = capsys.readouterr().out
    assert "A:SET: 1 put(s) not fitted (validation recorded no readback trace)" in printed
    (tmp_path / "bad.jsonl").write_text("not json\n{}\n")
    assert preflight(["--from-journal", str(tmp_path / "bad.jsonl")]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert preflight(["--from-journal", str(tmp_path / "none.jsonl")]) == 2
    assert preflight(["--from-journal", str(path), "--pair", "A:SET=A:RBV"]) == 2
    assert "takes no --pair" in capsys.readouterr().err


# ---- EPICS base: a calc record's lag ------------------------------------------------------------

def test_a_calc_readback_fits_first_order_with_the_records_arithmetic(epics_base_ioc, tmp_path, monkeypatch):
    """BASE:Q1:RBV = B + (A - B) * 0.5 every 0.1 s: the distance halves per scan, so tau =
    -0.1 s / ln(0.5) = 0.1443 s. Sampled at the scans, the exponential is exact at every sample;
    the put's phase within the scan shows as a dead time in [-0.1, 0] s, reported as 0."""
    for name, value in epics_base_ioc.client_conf().items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "base.json"
    code = preflight(["--measure", "1.5", "--pair", "BASE:Q1:SET=BASE:Q1:RBV", "--step", "1", "--write-test",
                      "--json", str(out)])
    result = json.loads(out.read_text())
    assert code == (1 if result["warnings"] else 0)
    pair = result["pairs"]["BASE:Q1:SET"]
    assert pair["lag"] == "first_order"
    # within 0.5 % on a quiet machine; a loaded one delays some of the IOC's scans, and each
    # sample carries the time its scan ran (seen: 3.4 % at a load average of 9 on 2 cores)
    assert pair["tau_s"] == pytest.approx(-0.1 / math.log(0.5), rel=0.08)
    assert pair["dead_time_s"] == 0.0
    # > 0.999 in runs alone; 0.980 once in a full run (a late scan or a merged update in the
    # trace): the record's arithmetic is what tau above proves, this only that the fit is sound
    assert pair["fit_quality"]["r_squared"] > 0.95
    assert abs(pair["offset"]) < 0.05  # 0 by the arithmetic; late scans shift it (seen: 0.03)
    ctx = Context("pva", conf=epics_base_ioc.client_conf(), useenv=False)
    try:
        assert ctx.get("BASE:Q1:SET", timeout=5) == pair["setpoint"]  # put back
    finally:
        ctx.close()


# ---- pva-dryrun --calibration -------------------------------------------------------------------

def test_the_three_steps_measure_step_mirror_give_a_mirror_that_measures_like_the_machine(
        machine, softioc_factory, tmp_path, capsys):
    env = _env_file(tmp_path, "quads", {k: GOOD[k] for k in ("M:Q1:SET", "M:Q2:SET")})
    cal = tmp_path / "cal.json"
    # 1 and 2: measure at rest, then step each setpoint (explicitly allowed to write)
    assert preflight(["--measure", "2", "--env", env, "--step", "1", "--write-test", "--json", str(cal)]) == 0
    capsys.readouterr()
    # 3: the mirror
    toml = tmp_path / "mirror.toml"
    assert dryrun.main([env, "--calibration", str(cal), "-o", str(toml)]) == 0
    printed = capsys.readouterr().out
    assert "M:Q1:SET: a step of 1 settles within 0.1 in" in printed and "uncalibrated (first_order, tau 0.5 s)" in printed
    config = tomllib.loads(toml.read_text())
    q1, q2 = config["setpoint"]
    assert (q1["lag"], q2["lag"]) == ("first_order", "rate")
    assert q1["tau"] == pytest.approx(0.3, rel=0.15) and q2["rate"] == pytest.approx(4.0, rel=0.15)
    assert q1["offset"] == pytest.approx(0.5, rel=0.2) and q2["offset"] == pytest.approx(-0.2, rel=0.2)
    # sigma from 2 s of updates: 40 at 20 Hz (~11 % per sd), 200 at 100 Hz (~5 %)
    assert q1["noise"] == pytest.approx(0.02, rel=0.4) and q2["noise"] == pytest.approx(0.01, rel=0.15)
    assert q1["update_rate"] == pytest.approx(20.0, rel=0.05)
    assert config["observable"][0]["update_rate"] == pytest.approx(5.0, rel=0.05)
    assert "calibrated from" in toml.read_text()

    mirror = softioc_factory(config_from_dict(config))
    measured = measure({"M:Q1:SET": "M:Q1:RBV", "M:Q2:SET": "M:Q2:RBV"}, ["M:OBJ"], 3.0,
                       conf=mirror.client_conf())
    # the mirror measures like the calibration it was built from: rates within 5 %, sigma within
    # 3.5 sd of its estimate (60 updates at 20 Hz: ~10 % per sd; 300 at 100 Hz: ~4 %)
    for pv, rate, entry, rel in (("M:Q1:RBV", 20.0, q1, 0.35), ("M:Q2:RBV", LOOP_HZ, q2, 0.15), ("M:OBJ", 5.0, None, 0)):
        assert measured.readbacks[pv]["update_rate_hz"] == pytest.approx(rate, rel=0.05 if rate < 50 else 0.15), pv
        if entry is not None:
            assert measured.readbacks[pv]["noise_sigma"] == pytest.approx(entry["noise"], rel=rel), pv


def test_apply_calibration_overrides_guesses_and_says_what_it_cannot_mirror():
    class Env:
        name = "env"
        variables = {"A:SET": [0.0, 10.0], "B:SET": [0.0, 10.0]}
        observables = []
        _configs = {}

    config = {"ioc": {"update_rate": 20.0}, "setpoint": [
        {"name": "A:SET", "readback": "A:RBV", "lag": "first_order", "tau": 0.5, "limits": [0.0, 10.0]},
        {"name": "B:SET", "readback": "B:RBV", "lag": "first_order", "tau": 0.5, "limits": [0.0, 10.0]}]}
    calibration = {
        "readbacks": {"A:RBV": {"update_rate_hz": 50.0, "noise_sigma": 0.003}},
        "pairs": {"A:SET": {"readback": "A:RBV", "lag": "rate", "rate_per_s": 2.0, "tau_s": None,
                            "dead_time_s": 0.2, "offset": 0.1, "step": 1.0},
                  "B:SET": {"readback": "B:OTHER", "lag": "none"},
                  "C:SET": {"readback": "C:RBV", "lag": "none"}}}
    mirrored, notes = dryrun.apply_calibration(config, calibration, Env)
    a, b = mirrored["setpoint"]
    assert (a["lag"], a["rate"], a["offset"], a["noise"], a["update_rate"]) == ("rate", 2.0, 0.1, 0.003, 50.0)
    assert "tau" not in a and b == config["setpoint"][1]  # B's calibration is of another readback
    assert mirrored["ioc"]["update_rate"] == 500.0  # ten steps per post of the fastest PV
    assert config["setpoint"][0]["lag"] == "first_order"  # the input is not changed
    assert a["dead_time"] == 0.2  # 100 steps of the 500 Hz loop
    assert not any("not mirrored" in n for n in notes)
    assert any("B:SET: calibrated with readback B:OTHER" in n for n in notes)
    assert any("not in the environment, ignored: C:SET" in n for n in notes)
    # a step of 1 within 0.1: measured and mirrored 0.2 + 0.9/2 s, guessed 0.5 ln 10 s
    (compare,) = [n for n in notes if n.startswith("A:SET: a step")]
    assert ("0.65 s measured (dead time 0.2 s), 0.65 s mirrored (dead time 0.2 s), 1.15 s uncalibrated"
            in compare)
    config_from_dict(mirrored)


@pytest.mark.parametrize(("content", "problem"), [
    ("not json", "not a calibration JSON file"),
    ('{"pairs": []}', "'readbacks' and 'pairs' objects"),
    ('{"readbacks": {"A:RBV": {"update_rate_hz": -1}}, "pairs": {"A:SET": {"readback": "A:RBV"}}}',
     "readbacks.A:RBV: 'update_rate_hz' must be a finite number > 0, got -1"),
])
def test_a_bad_calibration_file_is_exit_2_naming_the_key(tmp_path, capsys, content, problem):
    env = tmp_path / "env.py"
    env.write_text("from functools import partial\n\ndef check(**kw):\n    pass\n\n"
                   "class Environment:\n    variables = {'A:SET': [0.0, 1.0]}\n"
                   "    _configs = {'A:SET': partial(check, readback_pv='A:RBV')}\n")
    cal = tmp_path / "cal.json"
    cal.write_text(content)
    assert dryrun.main([str(env), "--calibration", str(cal)]) == 2
    assert problem in capsys.readouterr().err


DELAYED = {  # a machine with transport delay: its readback starts moving 0.3 s after a put
    "ioc": {"seed": 4, "update_rate": 20.0},
    "setpoint": [{"name": "M:D:SET", "readback": "M:D:RBV", "initial": 0.0, "limits": [-5.0, 5.0],
                  "lag": "first_order", "tau": 0.2, "noise": 0.01, "offset": 0.1, "dead_time": 0.3}],
}


def test_a_mirror_calibrated_from_a_machine_with_dead_time_has_it_and_compares_with_it(
        softioc_factory, tmp_path, capsys, monkeypatch):
    machine = softioc_factory(DELAYED)
    for name, value in machine.client_conf().items():
        monkeypatch.setenv(name, value)
    env = _env_file(tmp_path, "delayed", {"M:D:SET": "readback_pv='M:D:RBV', tolerance=0.05, count_down=2.0, "
                                                     "offset=0.1"}, observables=())
    cal = tmp_path / "cal.json"
    assert preflight(["--measure", "1", "--env", env, "--step", "1", "--write-test", "--json", str(cal)]) == 0
    measured = json.loads(cal.read_text())["pairs"]["M:D:SET"]["dead_time_s"]
    assert measured == pytest.approx(0.3, abs=0.05)  # within one step of the machine's 20 Hz loop
    capsys.readouterr()
    toml = tmp_path / "mirror.toml"
    assert dryrun.main([env, "--calibration", str(cal), "-o", str(toml)]) == 0
    printed = capsys.readouterr().out
    assert "not mirrored" not in printed
    config = tomllib.loads(toml.read_text())
    (entry,) = config["setpoint"]
    assert entry["dead_time"] == pytest.approx(measured, rel=1e-3)
    dt = 1.0 / config["ioc"]["update_rate"]  # time_scale 1
    mirrored = round(entry["dead_time"] / dt) * dt  # what the soft IOC simulates: whole steps
    found = re.search(r"M:D:SET: a step of 1 settles within 0.05 in ([\d.]+) s measured \(dead time ([\d.]+) s\), "
                      r"([\d.]+) s mirrored \(dead time ([\d.]+) s\)", printed)
    assert found, printed
    settle, dead, mirror_settle, mirror_dead = map(float, found.groups())
    assert dead == pytest.approx(measured, abs=1e-3) and mirror_dead == pytest.approx(mirrored, abs=1e-3)
    assert mirror_settle == pytest.approx(settle, abs=dt + 0.01)  # the same response, to a step
    mirror = softioc_factory(config_from_dict(config))
    again = step_test({"M:D:SET": "M:D:RBV"}, 1.0, write_test=True, hold=1.0, conf=mirror.client_conf())
    assert again["M:D:SET"]["dead_time_s"] == pytest.approx(measured, abs=0.05)  # the mirror responds as late
