"""The ``pva-dryrun`` command line: print, write or serve the mirror of a Badger environment.

``--serve`` runs the soft IOC as a child process (``python -m softioc FILE ...``): the client
package never imports the simulator.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from ...errors import BadgerEnvironmentError
from ...tools.arguments import bounded, count, program_name
from ...tools.environment import environment_configs, environment_name, load_environment
from ...tools.settle import dependencies_from_mirror, settle_warnings
from .calibrate import apply_calibration, load_calibration
from .mirror import DryRunError, apply_overlay, config_from_environment
from .toml_writer import to_toml

__all__ = ["build_parser", "main"]


def _parse_objective(values: Sequence[str]) -> str | dict[str, str] | None:
    if not values:
        return None
    named: dict[str, str] = {}
    plain: list[str] = []
    for text in values:
        name, sep, expression = text.partition("=")
        # 'NAME=EXPR' names an observable; a bare expression (no '=') applies to all.
        if sep and expression and "==" not in text and not any(c in name for c in " ()*+-/"):
            named[name.strip()] = expression.strip()
        else:
            plain.append(text)
    if plain and named or len(plain) > 1:
        raise DryRunError("give either one --objective EXPR for all observables or NAME=EXPR for each")
    return plain[0] if plain else named


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name("epics_pva.badger.dryrun"),
        description="Generate a soft IOC config mirroring a Badger environment's PVs, "
        "and optionally serve it (commissioning dry run).",
    )
    parser.add_argument(
        "environment",
        help="environment plugin folder, .py file or module name, optionally ending in :ClassName",
    )
    parser.add_argument(
        "--objective", action="append", default=[], metavar="[NAME=]EXPR",
        help="expression for the computed observables in x0, x1, ... (the variables' readbacks "
        "in order); NAME=EXPR for one observable; repeatable. Default: sum of squares of the "
        "distances from the bounds' centres",
    )
    parser.add_argument("--lag", choices=("first_order", "rate", "none"), default="first_order")
    parser.add_argument("--tau", type=bounded(above=0), default=0.5, help="first-order time constant, s (default 0.5)")
    parser.add_argument("--rate", type=bounded(above=0), default=1.0, help="ramp rate, units/s (default 1.0)")
    parser.add_argument(
        "--noise", type=bounded(0), default=None,
        help="readback noise (std dev); default: a tenth of each validation tolerance",
    )
    parser.add_argument("--observable-noise", type=bounded(0), default=0.0)
    parser.add_argument("--initial-fraction", type=bounded(0, 1), default=0.5,
                        help="initial setpoints this far from the lower bound, 0..1 (default 0.5: mid-range)")
    parser.add_argument("--seed", type=count(0, 2**63 - 1), default=0)
    parser.add_argument("--update-rate", type=bounded(above=0), default=20.0, help="readback updates per s")
    parser.add_argument("--time-scale", type=bounded(above=0), default=1.0, help="simulated s per wall s")
    parser.add_argument(
        "--calibration", metavar="FILE",
        help="calibration JSON (pva-preflight --measure/--step/--from-journal --json FILE): measured lag, "
        "offset, noise and update rate replace the guesses; the header compares the responses",
    )
    parser.add_argument(
        "--overlay", metavar="FILE.toml",
        help="TOML shaped like the soft IOC config whose [[setpoint]]/[[observable]] tables name generated "
        "entries: their alarm limits, units, expressions, initial values... are merged into the mirror",
    )
    parser.add_argument("-o", "--output", help="write the TOML here instead of printing it")
    parser.add_argument(
        "--serve", action="store_true",
        help="start the soft IOC on the generated config; arguments after '--' go to the soft IOC",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ioc_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, ioc_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    try:
        env = load_environment(args.environment)
        config = config_from_environment(
            env,
            objective=_parse_objective(args.objective),
            lag=args.lag, tau=args.tau, rate=args.rate, noise=args.noise,
            observable_noise=args.observable_noise, initial_fraction=args.initial_fraction,
            seed=args.seed, update_rate=args.update_rate, time_scale=args.time_scale,
        )
        if args.overlay:
            config = apply_overlay(config, _read_overlay(args.overlay), args.overlay)
        notes: list[str] = []
        if args.calibration:
            config, notes = apply_calibration(config, load_calibration(args.calibration), env)
    except (BadgerEnvironmentError, ValueError) as exc:
        print(f"dryrun: {exc}", file=sys.stderr)
        return 2
    _warn_settle(env, config)
    header = f"Soft IOC mirroring Badger environment '{environment_name(env)}' (generated by pva-dryrun)"
    if args.calibration:
        header += f"\ncalibrated from {args.calibration}:\n" + "\n".join(f"  {n}" for n in notes)
        if args.output or args.serve:
            sys.stdout.write("".join(f"{n}\n" for n in notes))
    text = to_toml(config, header=header)
    if not args.serve:
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    return _serve(text, args.output, ioc_args)


def _read_overlay(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise DryRunError(f"{path}: cannot read the overlay: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DryRunError(f"{path}: invalid TOML: {exc}") from None


def _warn_settle(env: Any, config: Mapping[str, Any]) -> None:
    """Print, before anything runs, each variable whose objective may be read before it settles."""
    variables = dict(getattr(env, "variables", None) or {})
    configs = environment_configs(env)
    depends = dependencies_from_mirror(config, variables, configs)
    for name, warnings in settle_warnings(variables, configs, list(depends), depends=depends).items():
        for warning in warnings:
            print(f"dryrun: warning: {name}: {warning}", file=sys.stderr)


def _serve(text: str, output: str | None, ioc_args: list[str]) -> int:
    """Serve the config with the soft IOC in a child process; its exit code."""
    if output:
        Path(output).write_text(text)
        return _run_softioc([output, *ioc_args])
    with tempfile.TemporaryDirectory(prefix="pva-dryrun-") as tmp:
        path = Path(tmp) / "dryrun.toml"
        path.write_text(text)
        return _run_softioc([str(path), *ioc_args])


def _run_softioc(args: list[str]) -> int:
    """Run ``python -m softioc ARGS`` and wait; SIGINT and SIGTERM are passed on to it.

    A child process, not an import: the client package never imports the simulator.
    """
    child = subprocess.Popen([sys.executable, "-m", "softioc", *args])

    def forward(signum: int, _frame: Any) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # a handler replaced by the caller: pass it on, keep waiting
                forward(signal.SIGINT, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
