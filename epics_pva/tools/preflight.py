"""Preflight: check a live system before a routine starts, without writing to it.

For a list of PVs or a Badger environment, check against the running system (soft IOC or
real machine) that every PV connects, that each setpoint holds a type Badger can write
(a numeric scalar) and that the environment's bounds fit inside the PV's own control
limits, and that readbacks update. Print one table row per PV and exit non-zero when
anything is missing:

    python -m epics_pva.tools.preflight --env path/to/environments/demo
    python -m epics_pva.tools.preflight --setpoint DEMO:Q1:SET --readback DEMO:Q1:RBV DEMO:OBJ

Nothing is put unless ``--write-test`` is given; then each setpoint gets its own current
value written back, to prove that the server accepts a put, through ``Interface.set_values``
and its guards (read-only: each setpoint says "not written: read-only").

``--measure SECONDS`` calibrates instead (read-only; see ``epics_pva.tools.measure``): update
rate, noise, mean, alarm and offset of each readback and observable, and a warning for each
``wait_for_readback`` config that cannot work; ``--step SIZE --write-test`` also fits each
pair's lag; ``--from-journal FILE`` fits the lags from an interface journal, offline.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from p4p.client.thread import Context

from ..core import Interface
from ..results import Status
from ..transport import ClientContext, Monitor, PvInfo, describe, to_python
from ._writes import open_interface, put_failure, write
from .arguments import program_name, pv_name, seconds
from .environment import (
    READBACK_KEY,
    environment_configs,
    environment_pvs,
    load_environment,
    served_observables,
    validation_keywords,
)
from .measure import MeasureTargets, add_measure_arguments, run_measure
from .settle import settle_warnings

logger = logging.getLogger(__name__)

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SETPOINT, READBACK, OBSERVABLE, PV = "setpoint", "readback", "observable", "pv"
_RANK = {OK: 0, WARN: 1, FAIL: 2}
_INT_CODES = set("bBhHiIlL")
_TYPE_NAMES = {"d": "double", "f": "float", "s": "string", "?": "bool"}
_INVALID_SEVERITY = 3


@dataclass
class PVCheck:
    """The outcome of the checks on one PV: its roles, what was read and any findings."""

    pv: str
    roles: list[str]
    bounds: tuple[float, float] | None = None
    status: str = OK
    type: str = "-"
    value: Any = None
    limits: tuple[float, float] | None = None
    updates: int | None = None
    findings: list[str] = field(default_factory=list)

    def add(self, status: str, finding: str) -> None:
        """Record a finding; the PV's status becomes the worst one seen."""
        self.findings.append(finding)
        if _RANK[status] > _RANK[self.status]:
            self.status = status


@dataclass
class PreflightReport:
    """Every PV's check, in the order given, plus the settings used."""

    checks: list[PVCheck]
    update_time: float
    wrote: bool

    @property
    def failures(self) -> list[PVCheck]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def warnings(self) -> list[PVCheck]:
        return [c for c in self.checks if c.status == WARN]

    def ok(self, strict: bool = False) -> bool:
        """True when nothing failed (and, if `strict`, nothing warned)."""
        return not self.failures and not (strict and self.warnings)

    def table(self) -> str:
        """A fixed-width text table: PV, roles, status, type, value, limits, findings."""
        head = ("PV", "ROLE", "STATUS", "TYPE", "VALUE", "LIMITS", "UPDATES", "FINDINGS")
        rows = [head]
        for c in self.checks:
            rows.append((
                c.pv,
                "+".join(c.roles),
                c.status,
                c.type,
                _short(c.value),
                "-" if c.limits is None else f"[{_num(c.limits[0])}, {_num(c.limits[1])}]",
                "-" if c.updates is None else str(c.updates),
                "; ".join(c.findings),
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
        summary = (
            f"{len(self.checks)} PVs: {sum(c.status == OK for c in self.checks)} ok, "
            f"{len(self.warnings)} warning(s), {len(self.failures)} failure(s)"
        )
        if not self.wrote:
            summary += "; nothing was written (use --write-test to test puts)"
        return "\n".join(line.rstrip() for line in lines) + "\n" + summary + "\n"


def _num(x: float) -> str:
    return f"{x:g}"


def _short(value: Any, width: int = 24) -> str:
    if value is None:
        return "-"
    text = _num(value) if isinstance(value, float) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def run_preflight(
    setpoints: Mapping[str, Sequence[float] | None] | Iterable[str] = (),
    readbacks: Iterable[str] = (),
    observables: Iterable[str] = (),
    pvs: Iterable[str] = (),
    *,
    conf: Mapping[str, str] | None = None,
    timeout: float = 2.0,
    update_time: float = 3.0,
    write_test: bool = False,
    prefix: str = "",
) -> PreflightReport:
    """Check the PVs against the live system and return the report (nothing is printed).

    ``setpoints`` maps each setpoint to its optimisation bounds (or None), or lists names.
    ``conf`` is a p4p client configuration; None uses the ``EPICS_PVA_*`` environment.
    ``timeout`` (s) bounds each network operation; readbacks and observables are watched
    for ``update_time`` s (0 skips that check). Only ``write_test`` puts anything. A
    ``prefix`` (the soft IOC's --prefix) is put before every name on the wire only.
    """
    if not isinstance(setpoints, Mapping):
        setpoints = {name: None for name in setpoints}
    checks: dict[str, PVCheck] = {}

    def claim(name: str, role: str) -> PVCheck:
        check = checks.setdefault(name, PVCheck(name, []))
        if role not in check.roles:
            check.roles.append(role)
        return check

    for name, bounds in setpoints.items():
        claim(name, SETPOINT).bounds = None if bounds is None else (float(bounds[0]), float(bounds[1]))
    for role, names in ((READBACK, readbacks), (OBSERVABLE, observables), (PV, pvs)):
        for name in names:
            claim(name, role)
    if not checks:
        raise ValueError("no PVs to check")

    ctx = ClientContext("pva", conf=dict(conf) if conf is not None else None, useenv=conf is None, nt=False,
                        prefix=prefix)
    try:
        names = list(checks)
        values = ctx.get(names, throw=False, timeout=timeout)
        for name, value in zip(names, values, strict=True):
            _inspect(checks[name], value, timeout)
        if write_test:
            with open_interface(conf, prefix, timeout) as interface:
                _write_test([c for c in checks.values() if SETPOINT in c.roles and c.status != FAIL], interface)
        watched = [c for c in checks.values() if {READBACK, OBSERVABLE} & set(c.roles) and c.value is not None]
        if update_time > 0 and watched:
            _watch_updates(watched, ctx, update_time)
    finally:
        ctx.close()
    return PreflightReport(list(checks.values()), update_time, write_test)


def _type_name(info: PvInfo) -> str:
    """The PV's type for the table: double, int, string, enum, array of double, ..."""
    if info.kind == "enum":
        return "enum"
    if not info.code:
        return "structure"
    scalar = info.code.lstrip("a")
    name = _TYPE_NAMES.get(scalar, "int" if scalar in _INT_CODES else scalar)
    return ("array of " if info.code.startswith("a") else "") + name


def _inspect(check: PVCheck, value: Any, timeout: float) -> None:
    if isinstance(value, TimeoutError):
        check.add(FAIL, f"does not connect (no answer in {timeout:g} s)")
        return
    if isinstance(value, Exception):
        check.add(FAIL, f"cannot be read: {type(value).__name__}: {value}")
        return
    info = describe(value)
    check.type = _type_name(info)
    try:
        current = to_python(value)
        check.value = current.tolist() if hasattr(current, "tolist") else current
    except ValueError:
        check.value = "<structure>"
    check.limits = info.limits
    severity = value["alarm.severity"] if "alarm" in value else 0
    if severity >= _INVALID_SEVERITY:
        message = value["alarm.message"] if "alarm.message" in value else ""
        check.add(WARN, "severity INVALID" + (f" ({message})" if message else ""))
    numeric_scalar = info.kind in ("float", "int")
    if SETPOINT in check.roles:
        if not numeric_scalar:
            check.add(FAIL, f"a {check.type} PV cannot take Badger's float values")
        elif info.kind == "int":
            check.add(WARN, "integer PV: Badger's float values will lose their fraction")
        if numeric_scalar and check.bounds is not None:
            _check_bounds(check)
    elif {READBACK, OBSERVABLE} & set(check.roles) and not numeric_scalar:
        check.add(WARN, f"a {check.type} value is not a number an optimiser can use")
    if numeric_scalar and isinstance(check.value, float) and not math.isfinite(check.value):
        check.add(WARN, f"value is {check.value}")


def _check_bounds(check: PVCheck) -> None:
    assert check.bounds is not None  # called only for a setpoint with bounds
    low, high = check.bounds
    if check.limits is not None:
        lim_low, lim_high = check.limits
        if low < lim_low or high > lim_high:
            check.add(
                FAIL,
                f"bounds [{_num(low)}, {_num(high)}] exceed the PV's control limits "
                f"[{_num(lim_low)}, {_num(lim_high)}]",
            )
    value = check.value
    if isinstance(value, (int, float)) and math.isfinite(value) and not low <= value <= high:
        check.add(
            WARN,
            f"current value {_num(value)} is outside the bounds [{_num(low)}, {_num(high)}]: "
            "Badger refuses an initial point there",
        )


def _write_test(setpoints: list[PVCheck], interface: Interface) -> None:
    """Put each setpoint's current value back, through interface.set_values (no validation)."""
    checks = {c.pv: c for c in setpoints if isinstance(c.value, (int, float))}
    for name, result in write(interface, {pv: c.value for pv, c in checks.items()}).items():
        if result.status == Status.SET:
            checks[name].findings.append("put of its current value accepted")
        elif result.status == Status.READ_ONLY:
            checks[name].add(WARN, "not written: read-only")
        else:
            checks[name].add(FAIL, f"put of its current value {_short(checks[name].value)} {put_failure(result)}")


def _watch_updates(watched: list[PVCheck], ctx: Context, update_time: float) -> None:
    counts = {c.pv: 0 for c in watched}
    lock = threading.Lock()
    done = threading.Event()

    def callback(name: str, value: Any) -> None:
        if isinstance(value, Exception):
            return
        with lock:
            counts[name] += 1
            # The first event is the current value; a second one is a real update.
            if all(n >= 2 for n in counts.values()):
                done.set()

    subscriptions = []
    for check in watched:
        subscriptions.append(Monitor(ctx, check.pv, partial(callback, check.pv)))
    try:
        done.wait(update_time)
    finally:
        for sub in subscriptions:
            sub.close()
    for check in watched:
        with lock:
            check.updates = max(counts[check.pv] - 1, 0)
        if check.updates == 0:
            status = FAIL if READBACK in check.roles else WARN
            check.add(status, f"no update in {update_time:g} s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name("epics_pva.tools.preflight"),
        description="Check that a routine's PVs are there before it starts. Nothing is written "
        "unless --write-test is given. Exit status 1 when a check fails.",
        epilog="Exit status: 0 all passed; 1 a check failed (with --measure or --from-journal: "
               "something was flagged, or a PV could not be read); 2 misuse, an environment that "
               "cannot be loaded, a refused --step or an unreadable journal. With --measure, --env "
               "gives the pairs (setpoint -> the readback_pv of its wait_for_readback config, with its "
               "tolerance, count_down and offset) and observables; PV arguments, --readback and "
               "--observable are measured too.",
    )
    parser.add_argument("pvs", nargs="*", metavar="PV", type=pv_name, help="further PVs that must connect")
    parser.add_argument("--env", metavar="SPEC", help="Badger environment: plugin folder, .py file "
                        "or module, optionally ending in :ClassName")
    add_measure_arguments(parser, common=False)
    parser.add_argument("--setpoint", action="append", default=[], metavar="PV", type=pv_name, help="repeatable")
    parser.add_argument("--readback", action="append", default=[], metavar="PV", type=pv_name, help="repeatable")
    parser.add_argument("--observable", action="append", default=[], metavar="PV", type=pv_name, help="repeatable")
    parser.add_argument("--timeout", type=seconds(), default=2.0,
                        help="seconds per network operation, at most 3600 (default 2)")
    parser.add_argument("--update-time", type=seconds(zero=True), default=3.0,
                        help="seconds to wait for readbacks and observables to update; 0 skips (default 3)")
    parser.add_argument("--write-test", action="store_true",
                        help="WRITES to the system: put each setpoint's current value back")
    parser.add_argument("--strict", action="store_true", help="warnings fail too")
    parser.add_argument("--typical-step", type=float, default=None, metavar="SIZE",
                        help="the routine's typical step of a variable: a validation tolerance not "
                             "below it warns (default: a tenth of each variable's bounds)")
    parser.add_argument("--prefix", default=None,
                        help="put before every PV name on the wire, as the soft IOC's --prefix "
                             "(default: EPICS_PVA_INTERFACE_PREFIX)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns 0 when everything passed, 1 on problems, 2 on misuse."""
    args = build_parser().parse_args(argv)
    if args.measure is not None or args.from_journal or args.step is not None:
        return _calibrate(args)
    if args.pair or args.pv or args.json:
        print("preflight: --pair, --pv and --json are for --measure or --from-journal", file=sys.stderr)
        return 2
    setpoints: dict[str, Any] = {name: None for name in args.setpoint}
    readbacks, observables = list(args.readback), list(args.observable)
    env_setpoints: dict[str, Any] = {}
    env_observables: list[str] = []
    if args.env:
        try:
            env = load_environment(args.env)
        except (ImportError, ValueError, OSError) as exc:
            print(f"preflight: cannot load environment {args.env}: {exc}", file=sys.stderr)
            return 2
        env_setpoints, env_readbacks, env_observables = environment_pvs(env)
        setpoints = {**env_setpoints, **setpoints}
        readbacks += [r for r in env_readbacks if r not in readbacks]
        observables += [o for o in env_observables if o not in observables]
    if not (setpoints or readbacks or observables or args.pvs):
        print("preflight: nothing to check: give PVs or --env", file=sys.stderr)
        return 2
    started = time.monotonic()
    report = run_preflight(
        setpoints, readbacks, observables, args.pvs,
        timeout=args.timeout, update_time=args.update_time, write_test=args.write_test,
        prefix=args.prefix if args.prefix is not None else os.environ.get("EPICS_PVA_INTERFACE_PREFIX", "").strip(),
    )
    if args.env:  # the objective read before the machine responded, told before a routine starts
        checks = {c.pv: c for c in report.checks}
        found = settle_warnings(env_setpoints, environment_configs(env), env_observables,
                                typical_step=args.typical_step)
        for name, warnings in found.items():
            for warning in warnings:
                if name in checks:
                    checks[name].add(WARN, warning)
    sys.stdout.write(report.table())
    logger.info("preflight took %.2f s", time.monotonic() - started)
    return 0 if report.ok(strict=args.strict) else 1


def measure_targets(spec: str) -> MeasureTargets:
    """What --measure --env SPEC watches: each setpoint whose validation names a readback_pv
    (paired, its config checked), and the served observables."""
    env = load_environment(spec)
    configs = environment_configs(env)
    pairs = {}
    for set_pv, config in configs.items():
        readback = validation_keywords(config).get(READBACK_KEY)
        if isinstance(readback, str):
            pairs[set_pv] = readback
    pvs = [o for o in served_observables(env) if o not in pairs.values()]
    return MeasureTargets(pairs, pvs, {pv: configs[pv] for pv in pairs})


def _calibrate(args: argparse.Namespace) -> int:
    """--measure / --step / --from-journal: the calibration command, on the same PV options."""
    if args.setpoint:
        print("preflight: --measure needs each setpoint's readback: give --pair SET=RBV, not --setpoint",
              file=sys.stderr)
        return 2
    args.pv = list(dict.fromkeys([*args.pv, *args.readback, *args.observable, *args.pvs]))
    return run_measure(args, env_loader=measure_targets)


if __name__ == "__main__":
    sys.exit(main())
