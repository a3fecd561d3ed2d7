"""The soft IOC against the original: the same operations on both give the same outcome.

EPICS base's softIoc (QSRV2) serves tests/data/differential.db under prefix REAL:; the soft
IOC serves MACHINE (below) under SIM:, the same names after the prefix, the same limits,
units, precision, descriptions and alarm limits. Everything is compared through raw p4p
gets and monitors, as any client sees it: the fields each PV has (recursively, with their
types), their metadata, what a put beyond the limits leaves, the alarm of a value in each
alarm band, enums, strings and arrays. Any drift names the PV and the field that differs.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from p4p import Type, Value
from p4p.client.thread import Context

from softioc import SoftIOC
from softioc.epics_base import EpicsBaseIOC

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the EPICS base IOC runner reads /proc (Linux)")

DB = Path(__file__).parent / "data" / "differential.db"
REAL, SIM = "REAL:", "SIM:"
TIMEOUT = 5.0
BANDS = {"lolo": -4.0, "low": -3.0, "high": 3.0, "hihi": 4.0}


def machine(p: str) -> dict[str, Any]:
    """The soft IOC config mirroring differential.db, its PV names under prefix `p`."""
    return {
        "ioc": {"seed": 3, "update_rate": 50.0},
        "setpoint": [
            {"name": f"{p}D:SET", "readback": f"{p}D:RBV", "limits": [-5, 5], "units": "A", "precision": 3,
             "description": "Dipole current", "alarm_limits": BANDS},
            {"name": f"{p}H:SET", "readback": f"{p}H:RBV", "limits": [-10, 10], "description": "Heater power",
             "alarm_limits": {"high": 2.0}, "alarm_deadband": 0.5},
            {"name": f"{p}N:SET", "readback": f"{p}N:RBV", "type": "int", "limits": [0, 100],
             "description": "Count"},
            {"name": f"{p}E:SET", "readback": f"{p}E:RBV", "type": "enum", "choices": ["Off", "Standby", "On"],
             "description": "Mode"},
            {"name": f"{p}S:SET", "readback": f"{p}S:RBV", "type": "string", "initial": "idle",
             "description": "Label"},
            {"name": f"{p}W:SET", "readback": f"{p}W:RBV", "type": "double_array", "length": 4,
             "units": "mm", "precision": 2, "description": "Wave"},
            {"name": f"{p}U:SET", "limits": [-1, 1], "description": "Never written", "udf": True},
        ],
        "observable": [
            {"name": f"{p}OBS", "expression": "2*x", "inputs": {"x": f"{p}D:RBV"}, "units": "a.u.",
             "precision": 1, "description": "Twice the dipole", "alarm_limits": {"hihi": 8.0}},
        ],
    }


SUFFIXES = [name[len(SIM):] for name in SoftIOC(machine(SIM)).pv_names()]
# a machine identity each soft IOC PV may carry as one top-level string field: not a record's
IDENTITY_FIELD = "softiocId"


@pytest.fixture(scope="module")
def real():
    ioc = EpicsBaseIOC(DB, macros={"P": REAL}, ready_pv=f"{REAL}OBS").start()
    ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
    yield ctx
    ctx.close()
    ioc.stop()


@pytest.fixture(scope="module")
def sim():
    ioc = SoftIOC(machine(SIM)).start()
    ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
    yield ctx
    ctx.close()
    ioc.stop()


def spec(raw: Any) -> tuple[str, list[tuple[str, str]]]:
    """A Value's type id and its fields in order, flattened as (path, type code) recursively
    ('display.form.index', 'i'), without the identity field."""
    _, type_id, fields = raw.type().aspy()
    flat: list[tuple[str, str]] = []

    def walk(prefix: str, items: list) -> None:
        for name, code in items:
            if isinstance(code, tuple):  # ('S', struct id, fields)
                flat.append((prefix + name, f"{code[0]}:{code[1]}"))
                walk(f"{prefix}{name}.", code[2])
            else:
                flat.append((prefix + name, code))

    walk("", [f for f in fields if f[0] != IDENTITY_FIELD])
    return type_id, flat


def spec_drift(real: list[tuple[str, str]], sim: list[tuple[str, str]]) -> str:
    """What differs between two flattened specs, by field name, for an assertion message."""
    a, b = dict(real), dict(sim)
    lines = [f"only on EPICS base: {k} ({a[k]})" for k in a if k not in b]
    lines += [f"only on the soft IOC: {k} ({b[k]})" for k in b if k not in a]
    lines += [f"{k}: type {a[k]} on EPICS base, {b[k]} on the soft IOC" for k in a if k in b and a[k] != b[k]]
    if not lines:
        lines = [f"order: EPICS base {[k for k, _ in real]}, soft IOC {[k for k, _ in sim]}"]
    return "; ".join(lines)


def metadata(raw: Any) -> dict[str, Any]:
    """Every field but the value, the alarm and the time stamp, flattened ('display.units': 'A')."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, data: dict) -> None:
        for key, item in data.items():
            name = f"{prefix}{key}"
            if isinstance(item, dict):
                walk(f"{name}.", item)
            elif name not in ("value", "value.index") and not name.startswith(("alarm.", "timeStamp.")):
                flat[name] = item

    walk("", {k: v for k, v in raw.todict().items() if k != IDENTITY_FIELD})
    return flat


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, arrays and lists element by element."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return list(a) == list(b)
    return a == b


def alarm(raw: Any) -> tuple[int, int, str]:
    return raw["alarm.severity"], raw["alarm.status"], raw["alarm.message"]


def value(raw: Any) -> Any:
    if raw.getID().startswith("epics:nt/NTEnum"):
        return raw["value.index"], list(raw["value.choices"])
    item = raw["value"]
    return list(item) if isinstance(item, np.ndarray) else item


def put_both(real: Context, sim: Context, monitor, name: str, what: Any, watch: dict[str, Any]) -> None:
    """Put `what` to `name` on both IOCs, then wait until each PV in `watch` reads its value there."""
    recorders = {(prefix, w): monitor(ctx, prefix + w) for ctx, prefix in ((real, REAL), (sim, SIM)) for w in watch}
    real.put(REAL + name, what, timeout=TIMEOUT)
    sim.put(SIM + name, what, timeout=TIMEOUT)
    for (_, w), rec in recorders.items():
        rec.wait_value(lambda v, w=w: same(value(v.raw), watch[w]), timeout=TIMEOUT)


def compare(real: Context, sim: Context, suffix: str, what: str) -> tuple[Any, Any]:
    """(value, alarm) of `suffix`, asserted equal on both IOCs; `what` says what was done."""
    a, b = real.get(REAL + suffix, timeout=TIMEOUT).raw, sim.get(SIM + suffix, timeout=TIMEOUT).raw
    assert value(a) == value(b), f"{suffix} after {what}: EPICS base reads {value(a)!r}, the soft IOC {value(b)!r}"
    assert alarm(a) == alarm(b), f"{suffix} after {what}: EPICS base alarm {alarm(a)}, the soft IOC {alarm(b)}"
    return value(a), alarm(a)


def test_the_soft_ioc_serves_the_records_of_the_db():
    names = [line.split('"')[1].replace("$(P)", "") for line in DB.read_text().splitlines()
             if line.startswith("record(")]
    assert sorted(names) == sorted(SUFFIXES)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_each_pv_has_the_fields_of_its_record(real, sim, suffix):
    a, b = spec(real.get(REAL + suffix, timeout=TIMEOUT).raw), spec(sim.get(SIM + suffix, timeout=TIMEOUT).raw)
    assert a[0] == b[0], f"{suffix}: EPICS base serves a {a[0]}, the soft IOC a {b[0]}"
    assert a[1] == b[1], f"{suffix}: fields differ: {spec_drift(a[1], b[1])}"


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_each_pv_has_the_metadata_of_its_record(real, sim, suffix):
    a, b = metadata(real.get(REAL + suffix, timeout=TIMEOUT).raw), metadata(sim.get(SIM + suffix, timeout=TIMEOUT).raw)
    assert sorted(a) == sorted(b), (f"{suffix}: only on EPICS base {sorted(set(a) - set(b))}, "
                                    f"only on the soft IOC {sorted(set(b) - set(a))}")
    drift = {k: (a[k], b[k]) for k in a if not same(a[k], b[k])}
    assert not drift, f"{suffix}: metadata differs (EPICS base, soft IOC): {drift}"


@pytest.mark.parametrize("suffix, puts", [
    ("D:SET", [7.0, -9.0, 4.25, 5.0000001, -5.0, 0.0]),
    ("N:SET", [200, -3, 2.7, 99, 3.5, 0]),
])
def test_a_put_beyond_the_limits_is_clamped_the_same(real, sim, suffix, puts):
    for put in puts:
        real.put(REAL + suffix, put, timeout=TIMEOUT)  # neither raises: a record clamps silently
        sim.put(SIM + suffix, put, timeout=TIMEOUT)
        compare(real, sim, suffix, f"a put of {put!r}")
    assert float(real.get(REAL + "D:SET", timeout=TIMEOUT)) == 0.0


def test_a_value_in_each_alarm_band_alarms_the_same(real, sim, monitor):
    seen = []
    for target in (2.9, 3.0, 3.5, 4.0, 4.5, 5.0, 0.0, -3.0, -3.5, -4.0, -4.5, 1.0, 0.0):
        put_both(real, sim, monitor, "D:SET", target, watch={"D:RBV": target, "OBS": 2 * target})
        seen.append((target, compare(real, sim, "D:RBV", f"D:SET = {target}")[1]))
        compare(real, sim, "OBS", f"D:SET = {target}")
    # and the bands are those of an ai/calc: at or past high MINOR, at or past hihi MAJOR
    assert dict(seen)[3.0] == (1, 1, "HIGH") and dict(seen)[4.5] == (2, 1, "HIHI")
    assert dict(seen)[-4.0] == (2, 1, "LOLO") and dict(seen)[0.0] == (0, 0, "")


def test_an_alarm_is_left_only_past_the_deadband_the_same(real, sim, monitor):
    for target in (2.1, 1.8, 1.6, 1.4, 2.0, 1.5, 1.49, 0.0):
        put_both(real, sim, monitor, "H:SET", target, watch={"H:RBV": target})
        compare(real, sim, "H:RBV", f"H:SET = {target}")


CHOICES = ["Off", "Standby", "On"]


@pytest.mark.parametrize("suffix, puts", [
    ("E:SET", [("Standby", (1, CHOICES)), (2, (2, CHOICES)), ("Off", (0, CHOICES)), (1, (1, CHOICES))]),
    ("S:SET", [("run-7", "run-7"), ("", ""), ("idle", "idle")]),
    ("W:SET", [([1.5, -2.0, 3.0], [1.5, -2.0, 3.0]), ([0.25, 0.5, 0.75, 1.0], [0.25, 0.5, 0.75, 1.0])]),
])
def test_enum_string_and_array_puts_read_back_the_same(real, sim, monitor, suffix, puts):
    readback = suffix.replace(":SET", ":RBV")
    for put, expected in puts:
        put_both(real, sim, monitor, suffix, put, watch={readback: expected})
        compare(real, sim, suffix, f"a put of {put!r}")
        compare(real, sim, readback, f"a put of {put!r} to {suffix}")


def test_a_setpoint_never_written_is_invalid_until_its_first_put(real, sim):
    stamps = [(ctx.get(prefix + "U:SET", timeout=TIMEOUT).raw["timeStamp.secondsPastEpoch"])
              for ctx, prefix in ((real, REAL), (sim, SIM))]
    assert stamps[0] == stamps[1], f"U:SET never written: time stamp {stamps[0]} on EPICS base, {stamps[1]} here"
    assert compare(real, sim, "U:SET", "no put") == (0.0, (3, 2, "UDF"))
    real.put(REAL + "U:SET", 0.5, timeout=TIMEOUT)
    sim.put(SIM + "U:SET", 0.5, timeout=TIMEOUT)
    assert compare(real, sim, "U:SET", "its first put") == (0.5, (0, 0, ""))


def test_only_the_top_level_identity_field_is_left_out_of_the_comparison():
    t = Type([("value", "d"), (IDENTITY_FIELD, "s"), ("display", ("S", "structure", [(IDENTITY_FIELD, "s")]))],
             id="epics:nt/NTScalar:1.0")
    assert spec(Value(t, {})) == ("epics:nt/NTScalar:1.0", [
        ("value", "d"), ("display", "S:structure"), (f"display.{IDENTITY_FIELD}", "s")])
    assert metadata(Value(t, {IDENTITY_FIELD: "soft IOC 1"})) == {f"display.{IDENTITY_FIELD}": ""}
