"""Commissioning dry run: mirror a Badger environment's PVs in a soft IOC.

From an environment class (its ``variables`` with their bounds, the readback PVs, offsets
and tolerances in the ``functools.partial`` validation configs of its ``_configs``, and its
``observables``) build a soft IOC config that serves the same PV names, so an operator can
rehearse a routine with the real names before the real machine:

    pva-dryrun path/to/environments/demo            # print the TOML
    pva-dryrun path/to/environments/demo --serve    # and serve it

The environment is read by ``epics_pva.badger.environment`` (duck typing, no Badger). The
simulator is never imported: ``--serve`` runs the soft IOC as a child process
(``python -m softioc FILE ...``), so the client and the simulator stay apart.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._cli import bounded, count, program_name
from ..errors import BadgerEnvironmentError
from .environment import (
    OFFSET_KEY,
    READBACK_KEY,
    TOLERANCE_KEY,
    environment_configs,
    environment_name,
    load_environment,
    served_observables,
    validation_keywords,
)

__all__ = ["DryRunError", "config_from_environment", "load_environment", "main", "to_toml",
           "validation_keywords"]

logger = logging.getLogger(__name__)

class DryRunError(BadgerEnvironmentError):
    """The environment cannot be mirrored; the message says which part and why."""


def config_from_environment(
    env: Any,
    *,
    objective: str | Mapping[str, str] | None = None,
    lag: str = "first_order",
    tau: float = 0.5,
    rate: float = 1.0,
    noise: float | None = None,
    observable_noise: float = 0.0,
    initial_fraction: float = 0.25,
    seed: int = 0,
    update_rate: float = 20.0,
    time_scale: float = 1.0,
) -> dict[str, Any]:
    """Build a soft IOC config dict mirroring ``env`` (a Badger environment class or instance).

    - every variable becomes a setpoint whose ``limits`` are its bounds and whose ``initial``
      value sits ``initial_fraction`` of the way from the lower bound;
    - a validation config naming ``readback_pv`` adds that readback, lagging as given
      (``tau`` in s, ``rate`` in units/s) with the config's ``offset``; its ``noise`` is
      ``noise`` or, when None, a tenth of the config's ``tolerance``;
    - every observable that is not already served becomes a computed PV. Its expression is
      ``objective`` (one string for all, or a mapping observable -> expression) written in
      ``x0, x1, ...``, the readbacks (or setpoints, without a readback) of the variables in
      order. The default is the sum of squares of each ``x_i`` from its bounds' centre plus
      offset, so the minimum is where every setpoint sits at the centre of its bounds.
    """
    variables = getattr(env, "variables", None)
    if not isinstance(variables, Mapping) or not variables:
        raise DryRunError(f"{environment_name(env)}: the environment has no 'variables' to mirror")
    observables = served_observables(env)
    configs = environment_configs(env)
    unknown = sorted(set(configs) - set(variables))
    if unknown:
        logger.warning("%s: validation configs for non-variables ignored: %s", environment_name(env), unknown)
    if not 0.0 <= initial_fraction <= 1.0:
        raise DryRunError(f"initial_fraction must be within [0, 1], got {initial_fraction!r}")

    setpoints: list[dict[str, Any]] = []
    inputs: dict[str, str] = {}
    terms: list[str] = []
    for i, (name, bounds) in enumerate(variables.items()):
        low, high = _bounds(env, name, bounds)
        keywords = validation_keywords(configs.get(name))
        readback = keywords.get(READBACK_KEY)
        offset = _number(env, name, OFFSET_KEY, keywords.get(OFFSET_KEY, 0.0))
        tolerance = keywords.get(TOLERANCE_KEY)
        entry: dict[str, Any] = {"name": name}
        if readback is not None:
            if not isinstance(readback, str) or not readback:
                raise DryRunError(f"{environment_name(env)}: '{name}': {READBACK_KEY} must be a PV name, got {readback!r}")
            entry["readback"] = readback
        span = high - low
        entry["initial"] = _round(low + initial_fraction * span)
        entry["limits"] = [float(low), float(high)]
        if readback is not None:
            entry["lag"] = lag
            if lag == "first_order":
                entry["tau"] = float(tau)
            elif lag == "rate":
                entry["rate"] = float(rate)
            if noise is not None:
                entry["noise"] = float(noise)
            elif tolerance is not None:
                entry["noise"] = _round(_number(env, name, TOLERANCE_KEY, tolerance) / 10.0)
            entry["offset"] = offset
        setpoints.append(entry)
        inputs[f"x{i}"] = readback if readback is not None else name
        target = _round((low + high) / 2.0 + (offset if readback is not None else 0.0))
        terms.append(f"(x{i} - {_fmt(target)})**2" if target else f"x{i}**2")

    served = {n for sp in setpoints for n in (sp["name"], sp.get("readback")) if n}
    default_expression = " + ".join(terms)
    computed: list[dict[str, Any]] = []
    for name in observables:
        if name in served:  # a setpoint or readback already: no mirror needed
            continue
        expression = _objective_for(objective, name) or default_expression
        entry = {"name": name, "expression": expression, "inputs": dict(inputs)}
        if observable_noise:
            entry["noise"] = float(observable_noise)
        computed.append(entry)
    if isinstance(objective, Mapping):
        stray = sorted(set(objective) - {o["name"] for o in computed})
        if stray:
            raise DryRunError(f"objective given for {stray}, not computed observables of {environment_name(env)}")

    config: dict[str, Any] = {
        "ioc": {"seed": int(seed), "update_rate": float(update_rate), "time_scale": float(time_scale)},
        "setpoint": setpoints,
    }
    if computed:
        config["observable"] = computed
    return config


def _bounds(env: Any, name: str, bounds: Any) -> tuple[float, float]:
    if (
        not isinstance(bounds, Sequence)
        or len(bounds) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        or not all(math.isfinite(b) for b in bounds)
        or not bounds[0] < bounds[1]
    ):
        raise DryRunError(
            f"{environment_name(env)}: variable '{name}' needs bounds [low, high] with low < high, got {bounds!r}"
        )
    return float(bounds[0]), float(bounds[1])


def _number(env: Any, name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DryRunError(f"{environment_name(env)}: '{name}': validation keyword '{key}' must be a finite number, got {value!r}")
    return float(value)


def _round(value: float) -> float:
    # Keep generated TOML readable: 0.30000000000000004 -> 0.3.
    return float(f"{value:.12g}")


def _fmt(value: float) -> str:
    return f"({value!r})" if value < 0 else repr(value)


def _objective_for(objective: str | Mapping[str, str] | None, name: str) -> str | None:
    if objective is None or isinstance(objective, str):
        return objective
    return objective.get(name)


def to_toml(config: Mapping[str, Any], header: str | None = None) -> str:
    """Render a soft IOC config dict (tables, arrays of tables, inline ``inputs``) as TOML."""
    lines: list[str] = [f"# {line}" for line in (header or "").splitlines()]
    scalars = {k: v for k, v in config.items() if not isinstance(v, (Mapping, list))}
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in config.items():
        if isinstance(value, Mapping):
            lines += ["", f"[{_key(key)}]"] + [f"{_key(k)} = {_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(t, Mapping) for t in value):
            for table in value:
                lines += ["", f"[[{_key(key)}]]"] + [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
        elif isinstance(value, list):
            lines.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "-_" for c in key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as TOML")


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
    parser.add_argument("--initial-fraction", type=bounded(0, 1), default=0.25,
                        help="initial setpoints this far from the lower bound, 0..1 (default 0.25)")
    parser.add_argument("--seed", type=count(0, 2**63 - 1), default=0)
    parser.add_argument("--update-rate", type=bounded(above=0), default=20.0, help="readback updates per s")
    parser.add_argument("--time-scale", type=bounded(above=0), default=1.0, help="simulated s per wall s")
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
    except (BadgerEnvironmentError, ValueError) as exc:
        print(f"dryrun: {exc}", file=sys.stderr)
        return 2
    text = to_toml(config, header=f"Soft IOC mirroring Badger environment '{environment_name(env)}' "
                               "(generated by pva-dryrun)")
    if not args.serve:
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    return _serve(text, args.output, ioc_args)


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


if __name__ == "__main__":
    sys.exit(main())
