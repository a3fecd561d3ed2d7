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

``--calibration FILE`` (the JSON of ``pva-preflight --measure``/``--step``/``--from-journal``)
replaces the guesses by what was measured: each readback's lag model and parameter, offset,
noise and update rate, each observable's noise and update rate. The soft IOC has no dead
time: a measured one is reported, not mirrored. The header then compares, per pair, the
measured response with the mirror's and the uncalibrated guess's, computed from the lag
models of ``epics_pva.calibration`` (no network, no simulator).
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

import numpy as np

from .._cli import bounded, count, program_name
from ..calibration import LAG_MODELS
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

__all__ = ["DryRunError", "apply_calibration", "config_from_environment", "load_calibration",
           "load_environment", "main", "to_toml", "validation_keywords"]

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


MAX_MIRROR_RATE = 1000.0
"""Highest update loop rate (Hz) a calibrated mirror is given."""

STEPS_PER_POST = 10
"""Update steps per measured post a calibrated mirror aims for: a PV posts at the step nearest
each due time, so ten steps per post keep its median interval within a few % of the measured."""


def load_calibration(path: str | Path) -> dict[str, Any]:
    """Read a calibration JSON file ({"readbacks": {...}, "pairs": {...}}); DryRunError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DryRunError(f"{path}: cannot read the calibration: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DryRunError(f"{path}: not a calibration JSON file: {exc}") from None
    if not isinstance(data, Mapping) or not all(isinstance(data.get(k, {}), Mapping) for k in ("readbacks", "pairs")):
        raise DryRunError(f"{path}: a calibration is an object with 'readbacks' and 'pairs' objects")
    return dict(data)


def _measured(where: str, table: Mapping[str, Any], key: str, positive: bool = False) -> float | None:
    """A number from a calibration entry, None when absent or null; DryRunError when not a number."""
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            positive and value <= 0):
        raise DryRunError(f"calibration {where}: '{key}' must be a finite number{' > 0' if positive else ''}, "
                          f"got {value!r}")
    return float(value)


def apply_calibration(config: dict[str, Any], calibration: Mapping[str, Any], env: Any = None
                      ) -> tuple[dict[str, Any], list[str]]:
    """The mirror `config` with what `calibration` measured in place of the guesses, and notes.

    Per setpoint with a readback: lag (first_order tau_s / rate rate_per_s / none) and offset
    from its pair, noise (sigma) and update rate (Hz) from its readback; per observable its noise
    and update rate. The update loop runs at STEPS_PER_POST times the fastest measured rate
    (at least the config's, at most MAX_MIRROR_RATE). The notes name what could not be mirrored
    (a dead time, a pair whose readback differs) and end with the response comparison.
    """
    pairs = calibration.get("pairs", {}) or {}
    readbacks = calibration.get("readbacks", {}) or {}
    config = json.loads(json.dumps(config))  # a deep copy of plain data
    notes: list[str] = []
    guesses: dict[str, dict[str, Any]] = {}
    rates: dict[str, float] = {}
    served = set()
    for entry in config.get("setpoint", []):
        name, readback = entry["name"], entry.get("readback")
        served.add(name)
        pair = pairs.get(name)
        if readback is None or not isinstance(pair, Mapping):
            continue
        if pair.get("readback") not in (None, readback):
            notes.append(f"{name}: calibrated with readback {pair.get('readback')}, mirrored as {readback}: not used")
            continue
        guesses[name] = dict(entry)
        lag = pair.get("lag")
        if lag is not None:
            if lag not in LAG_MODELS:
                raise DryRunError(f"calibration pairs.{name}: unknown lag {lag!r} (known: {', '.join(LAG_MODELS)})")
            for key in ("tau", "rate"):
                entry.pop(key, None)
            entry["lag"] = lag
            if lag == "first_order":
                entry["tau"] = _round(_measured(f"pairs.{name}", pair, "tau_s", positive=True) or 1.0)
            elif lag == "rate":
                entry["rate"] = _round(_measured(f"pairs.{name}", pair, "rate_per_s", positive=True) or 1.0)
            dead = _measured(f"pairs.{name}", pair, "dead_time_s") or 0.0
            if dead > 0:
                notes.append(f"{name}: measured dead time {dead:.3g} s is not mirrored (the soft IOC's readback "
                             f"starts moving at its next update step)")
        offset = _measured(f"pairs.{name}", pair, "offset")
        if offset is not None:
            entry["offset"] = _round(offset)
        rates.update(_readback_calibration(entry, readback, readbacks))
    for entry in config.get("observable", []):
        served.add(entry["name"])
        rates.update(_readback_calibration(entry, entry["name"], readbacks))
    stray = sorted(set(pairs) - served)
    if stray:
        notes.append(f"calibrated setpoint(s) not in the environment, ignored: {', '.join(stray)}")
    ioc = config.setdefault("ioc", {})
    if rates:
        loop = min(MAX_MIRROR_RATE, max(float(ioc.get("update_rate", 10.0)), STEPS_PER_POST * max(rates.values())))
        ioc["update_rate"] = _round(loop)
        for table in ("setpoint", "observable"):
            for entry in config.get(table, []):
                if "update_rate" in entry and entry["update_rate"] > loop:
                    entry["update_rate"] = _round(loop)
    configs = environment_configs(env) if env is not None else {}
    notes += compare_responses(config, guesses, pairs, configs)
    return config, notes


def _readback_calibration(entry: dict[str, Any], pv: str, readbacks: Mapping[str, Any]) -> dict[str, float]:
    """Set `entry`'s noise and update_rate from readbacks[pv]; {pv: rate} when a rate was measured."""
    measured = readbacks.get(pv)
    if not isinstance(measured, Mapping):
        return {}
    sigma = _measured(f"readbacks.{pv}", measured, "noise_sigma")
    if sigma is not None:
        entry["noise"] = float(f"{sigma:.4g}")
    rate = _measured(f"readbacks.{pv}", measured, "update_rate_hz", positive=True)
    if rate is None:
        return {}
    entry["update_rate"] = float(f"{rate:.4g}")
    return {pv: rate}


def _model_params(entry: Mapping[str, Any]) -> tuple[str, float | None]:
    """(lag, parameter) of a soft IOC setpoint entry, in the calibration's terms."""
    lag = entry.get("lag", "none")
    return lag, {"first_order": entry.get("tau"), "rate": entry.get("rate")}.get(lag)


def _settle_time(lag: str, parameter: float | None, dead: float, step: float, tolerance: float) -> float:
    """Seconds after a setpoint step of `step` until the readback is within `tolerance` of the target.

    Found by bisection on the model's response (every lag model approaches its target
    monotonically), after the dead time `dead` s.
    """
    model = LAG_MODELS[lag]
    p = np.asarray(parameter if parameter is not None else 1.0, dtype=float)

    def within(t: float) -> bool:
        value = float(np.ravel(model.respond(np.asarray(t), np.asarray(0.0), float(step), p))[0])
        return abs(value - step) <= tolerance

    if within(0.0):
        return dead
    low, high = 0.0, 1.0
    while not within(high):
        low, high = high, high * 2.0
        if high > 1e9:
            return math.inf
    for _ in range(60):
        middle = (low + high) / 2.0
        low, high = (low, middle) if within(middle) else (middle, high)
    return dead + high


def compare_responses(config: Mapping[str, Any], guesses: Mapping[str, Mapping[str, Any]],
                      pairs: Mapping[str, Any], configs: Mapping[str, Any]) -> list[str]:
    """Per calibrated pair: the settling time of a step as measured (with its dead time), as the
    mirror simulates it and as the uncalibrated guess did; lines for the TOML header."""
    lines = []
    for entry in config.get("setpoint", []):
        name = entry["name"]
        if name not in guesses:
            continue
        pair = pairs[name]
        lag = pair.get("lag")
        if lag not in LAG_MODELS:
            continue
        limits = entry.get("limits") or [0.0, 1.0]
        step = abs(float(pair.get("step") or 0.0)) or (limits[1] - limits[0]) / 10.0
        tolerance = validation_keywords(configs.get(name)).get(TOLERANCE_KEY)
        if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or tolerance <= 0:
            tolerance = step / 10.0
        measured = _settle_time(lag, pair.get("tau_s") if lag == "first_order" else pair.get("rate_per_s"),
                                float(pair.get("dead_time_s") or 0.0), step, tolerance)
        mirror = _settle_time(*_model_params(entry), 0.0, step, tolerance)
        guess = _settle_time(*_model_params(guesses[name]), 0.0, step, tolerance)
        lines.append(f"{name}: a step of {step:g} settles within {tolerance:g} in {measured:.3g} s measured, "
                     f"{mirror:.3g} s mirrored, {guess:.3g} s uncalibrated ({_model_text(guesses[name])})")
    return lines


def _model_text(entry: Mapping[str, Any]) -> str:
    lag, parameter = _model_params(entry)
    unit = {"first_order": "tau {:g} s", "rate": "rate {:g}/s"}.get(lag)
    return lag if unit is None else f"{lag}, {unit.format(parameter)}"


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
    parser.add_argument(
        "--calibration", metavar="FILE",
        help="calibration JSON (pva-preflight --measure/--step/--from-journal --json FILE): measured lag, "
        "offset, noise and update rate replace the guesses; the header compares the responses",
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
        notes: list[str] = []
        if args.calibration:
            config, notes = apply_calibration(config, load_calibration(args.calibration), env)
    except (BadgerEnvironmentError, ValueError) as exc:
        print(f"dryrun: {exc}", file=sys.stderr)
        return 2
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
