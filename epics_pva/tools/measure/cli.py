"""The measurement command line: its options, their parser, running them and the report.

`main_measure` is ``python -m epics_pva.tools.measure``; `add_measure_arguments` and `run_measure`
let another command (pva-preflight) carry the same options.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...errors import InvalidInputError, JournalError, PutError, ReadError
from ..arguments import bounded, pv_name, seconds
from ..settle import rate_warnings
from .at_rest import Calibration, MeasureTargets, measure
from .from_journal import fit_from_journal
from .recording import _make_context
from .steps import step_test

__all__ = ["EnvLoader", "add_measure_arguments", "build_measure_parser", "main_measure", "run_measure"]

EnvLoader = Callable[[str], MeasureTargets]
"""Turns an --env SPEC into what to measure (pairs, PVs, wait configs)."""


def _pair(text: str) -> tuple[str, str]:
    set_pv, sep, rbv = text.partition("=")
    if not sep or not set_pv or not rbv:
        raise argparse.ArgumentTypeError(f"--pair wants SET=RBV, got {text!r:.80}")
    return pv_name(set_pv), pv_name(rbv)


def add_measure_arguments(parser: argparse.ArgumentParser, common: bool = True) -> None:
    """Add the measurement options to `parser`; `common` adds --env, --write-test and --timeout too
    (leave it False for a parser that has its own)."""
    group = parser.add_argument_group(
        "calibration (read-only unless --step)",
        "--measure SECONDS monitors each readback/observable and reports update rate (Hz), noise "
        "sigma, mean, alarm and offset at rest, and flags wait_for_readback configs that cannot "
        "work; --step SIZE with --write-test also moves each setpoint by SIZE and back and fits "
        "its lag; --from-journal FILE fits the lags from an interface journal instead, offline.")
    group.add_argument("--measure", type=seconds(), default=None, metavar="SECONDS",
                       help="seconds to monitor each readback (read-only; also the hold time of --step)")
    if common:
        group.add_argument("--env", metavar="SPEC", help="a Badger environment to take PVs and configs from")
    group.add_argument("--pair", action="append", default=[], type=_pair, metavar="SET=RBV",
                       help="a setpoint and its readback (repeatable)")
    group.add_argument("--pv", action="append", default=[], metavar="NAME", type=pv_name,
                       help="another PV to measure (repeatable)")
    group.add_argument("--json", metavar="FILE", help="write the calibration as JSON to FILE")
    group.add_argument("--step", type=bounded(above=0), metavar="SIZE",
                       help="WRITES: move each setpoint by SIZE and back and fit the response (needs --write-test)")
    group.add_argument("--from-journal", metavar="FILE",
                       help="fit each setpoint's lag from the puts and validation traces of an interface "
                            "journal (no network)")
    if common:
        group.add_argument("--write-test", action="store_true", help="allow --step to write")
        group.add_argument("--timeout", type=seconds(), default=5.0, help="seconds per network operation (default 5)")


def build_measure_parser(prog: str = "python -m epics_pva.tools.measure") -> argparse.ArgumentParser:
    """The measurement command's parser (--measure defaults to 5 s here)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Measure update rate, noise, mean, alarm and offset of readbacks (read-only); "
        "with --step and --write-test, step each setpoint and fit its readback's lag.",
        epilog="Exit status: 0 nothing flagged, 1 warnings or a PV that cannot be read, 2 misuse "
               "or a refused step.",
    )
    add_measure_arguments(parser)
    return parser


def _summary(result: Calibration) -> str:
    lines = [f"{'PV':32} {'updates':>7} {'rate Hz':>9} {'sigma':>10} {'mean':>12} {'offset':>10} alarm"]
    for name, entry in result.readbacks.items():
        def num(key: str, fmt: str, entry: dict[str, Any] = entry) -> str:
            value = entry.get(key)
            return format(value, fmt) if isinstance(value, float) else "-"
        lines.append(f"{name:32} {entry.get('updates', '-'):>7} {num('update_rate_hz', '9.3f')} "
                     f"{num('noise_sigma', '10.3g')} {num('mean', '12.6g')} {num('offset', '10.3g')} "
                     f"{entry.get('alarm', {}).get('max_severity', '-')}")
    for set_pv, entry in result.pairs.items():
        if entry.get("lag"):
            q = entry["fit_quality"]
            lines.append(f"{set_pv}: lag {entry['lag']} tau_s {entry['tau_s']} rate_per_s {entry['rate_per_s']} "
                         f"dead_time_s {entry['dead_time_s']:.3g} offset {entry['offset']:.3g} "
                         f"R^2 {q['r_squared']:.4f}")
    lines += [f"WARNING: {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def main_measure(argv: Sequence[str] | None = None, env_loader: EnvLoader | None = None,
                 conf: Mapping[str, str] | None = None) -> int:
    """Command line: 0 when nothing was flagged, 1 with warnings, 2 on misuse or a refused step.

    `env_loader` turns --env SPEC into MeasureTargets (the caller knows how environments are
    loaded); `conf` is a p4p client configuration used instead of the environment's EPICS_PVA_*.
    """
    return run_measure(build_measure_parser().parse_args(argv), env_loader, conf)


def run_measure(args: argparse.Namespace, env_loader: EnvLoader | None = None,
                conf: Mapping[str, str] | None = None) -> int:
    """Run what parsed measurement options ask for (see add_measure_arguments); the exit code."""
    if args.from_journal:
        return _run_from_journal(args)
    targets = MeasureTargets(dict(args.pair), list(args.pv))
    if args.env:
        if env_loader is None:
            print("measure: --env needs an environment loader; give --pair/--pv instead", file=sys.stderr)
            return 2
        try:
            loaded = env_loader(args.env)
        except (ImportError, ValueError, OSError) as exc:
            print(f"measure: cannot load environment {args.env}: {exc}", file=sys.stderr)
            return 2
        targets.pairs = {**loaded.pairs, **targets.pairs}
        targets.pvs += [p for p in loaded.pvs if p not in targets.pvs]
        targets.configs = dict(loaded.configs)
    if not (targets.pairs or targets.pvs):
        print("measure: nothing to measure: give --pair SET=RBV, --pv NAME or --env", file=sys.stderr)
        return 2
    if args.step is not None and not args.write_test:
        print(f"measure: --step {args.step:g} writes to the machine and is refused without --write-test",
              file=sys.stderr)
        return 2
    seconds = 5.0 if args.measure is None else args.measure
    ctx, own = _make_context(None, conf)
    try:
        result = measure(targets.pairs, targets.pvs, seconds, configs=targets.configs,
                         context=ctx, timeout=args.timeout)
        if args.step is not None:
            noise = {rbv: result.readbacks[rbv]["noise_sigma"] for rbv in targets.pairs.values()}
            stepped = step_test(targets.pairs, args.step, write_test=True, hold=seconds,
                                noise=noise, context=ctx, conf=conf, timeout=args.timeout)
            for set_pv, entry in stepped.items():
                result.pairs[set_pv].update(entry)
    except InvalidInputError as exc:
        print(f"measure: {exc}", file=sys.stderr)
        return 2
    except (ReadError, PutError) as exc:
        print(f"measure: {exc}", file=sys.stderr)
        return 1
    finally:
        if own:
            ctx.close()
    validated = set(targets.pairs.values())  # a validation finishes at an update of its readback
    rates = {name: entry.get("update_rate_hz") for name, entry in result.readbacks.items()}
    code = _report(result, args.json)
    # settle warnings: printed, but a slow observable is common and fresh reads handle it, so
    # they leave the exit status to the measurement's own findings
    for warning in rate_warnings({pv: rates.get(pv) for pv in targets.pvs if pv not in validated},
                                 {rbv: rates.get(rbv) for rbv in validated}):
        sys.stdout.write(f"WARNING (settle): {warning}\n")
    return code


def _run_from_journal(args: argparse.Namespace) -> int:
    """--from-journal FILE: fit offline; misuse if combined with live measuring or a step."""
    live = [flag for flag, given in (("--measure", args.measure is not None), ("--step", args.step is not None),
                                     ("--pair", bool(args.pair)), ("--pv", bool(args.pv)),
                                     ("--env", bool(getattr(args, "env", None)))) if given]
    if live:
        print(f"measure: --from-journal fits a recorded run offline; it takes no {', '.join(live)}",
              file=sys.stderr)
        return 2
    try:
        result = fit_from_journal(args.from_journal)
    except JournalError as exc:
        print(f"measure: {exc}", file=sys.stderr)
        return 2
    if not result.pairs:
        result.warnings.append(f"{args.from_journal}: no put with a readback trace could be fitted")
    return _report(result, args.json)


def _report(result: Calibration, json_path: str | None) -> int:
    """Print the summary, write the JSON if asked; 1 if anything was flagged, else 0."""
    sys.stdout.write(_summary(result))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(result.as_json(), fh, indent=2, allow_nan=False, default=_json_default)
            fh.write("\n")
    return 1 if result.warnings else 0


def _json_default(value: Any) -> Any:
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as JSON")
