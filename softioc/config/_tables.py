"""Reading each table of a soft IOC config ([ioc], [[setpoint]], [[observable]], [[fault]])
into its frozen object, and the checks across tables (names used once, posting rates).

`_load.config_from_dict` calls these on each table of the document.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any, cast

from ..errors import ConfigError
from ..faults import MAX_SECONDS, check_target, fault_from_dict, fault_kind
from ..model import (
    LAGS,
    LIMIT_ACTIONS,
    LIMIT_KEYS,
    PV_TYPES,
    AlarmLimits,
    ExpressionError,
    ObservableConfig,
    SetpointConfig,
    compile_expression,
    pv_type,
)
from ._bounds import BOUNDS, MAX_PV_STEPS
from ._reader import (
    MAX_LENGTH,
    _check_text,
    _fits_float,
    _integer,
    _name,
    _precision,
    _Reader,
    _text,
    _update_rate,
    check_entries,
)
from ._types import MAX_PROCESSES, FaultConfig, IOCSettings


def _settings(r: _Reader) -> IOCSettings:
    seed = r.get("seed", (int,), 0)
    update_rate = r.within("update_rate", 10.0, BOUNDS["ioc.update_rate"])
    time_scale = r.within("time_scale", 1.0, BOUNDS["ioc.time_scale"])
    prefix = _text(r, "control_prefix", "SOFTIOC:")
    if any(c.isspace() for c in prefix):
        raise r.fail("control_prefix", f"must be a PV name prefix without spaces, got {prefix!r}")
    audit = r.get("audit", (str,), None)
    if audit is not None:
        _check_text(r, "audit", audit)
        if not audit.strip():
            raise r.fail("audit", "must be a file path, not an empty string")
    rules = {}
    for key in ("control_from", "write_from"):
        entries = r.get(key, (list,), None)
        rules[key] = None if entries is None else check_entries(entries, f"{r.where}: key '{key}'")
    allow_network = r.get("allow_network", (bool,), False)
    name_prefix = _text(r, "prefix", "")
    if any(c.isspace() for c in name_prefix):
        raise r.fail("prefix", f"must be a PV name prefix without spaces, got {name_prefix!r}")
    processes = r.get("processes", (int,), 1)
    if not 1 <= processes <= MAX_PROCESSES:
        raise r.fail("processes", f"must be within [1, {MAX_PROCESSES}], got {processes!r}")
    r.finish()
    return IOCSettings(seed, update_rate, time_scale, prefix, audit=audit,
                       control_from=rules["control_from"], write_from=rules["write_from"],
                       allow_network=allow_network, prefix=name_prefix, processes=processes)


def _setpoint(r: _Reader) -> SetpointConfig:
    name = cast(str, _name(r, "name"))  # required: a str, or ConfigError
    readback = _name(r, "readback", required=False)
    type_name = r.get("type", (str,), "double")
    try:
        kind = pv_type(type_name)
    except ValueError as exc:
        raise r.fail("type", str(exc)) from None
    lag = r.get("lag", (str,), "none")
    if lag not in LAGS:
        raise r.fail("lag", f"must be one of {', '.join(LAGS)}, got {lag!r}")
    if lag != "none" and not kind.numeric:
        raise r.fail("lag", f"must be 'none' for a {kind.name} PV")
    tau = r.within("tau", 1.0, BOUNDS["setpoint.tau"])
    rate = r.within("rate", 1.0, BOUNDS["setpoint.rate"])
    noise = r.number("noise", 0.0, minimum=0.0)
    offset = r.number("offset", 0.0)
    dead_time = r.within("dead_time", 0.0, BOUNDS["setpoint.dead_time"])
    if not kind.numeric and (noise or offset):
        raise r.fail("noise" if noise else "offset", f"is only for numeric PVs, not {kind.name}")
    limits = r.get("limits", (list,), None)
    if limits is not None:
        if (
            len(limits) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in limits)
            or not all(_fits_float(x) for x in limits if isinstance(x, int))
            or not all(math.isfinite(x) for x in limits)
            or not limits[0] < limits[1]
        ):
            raise r.fail("limits", f"must be [low, high] finite numbers with low < high, got {limits!r}")
        if not kind.numeric:
            raise r.fail("limits", f"is only for numeric PVs, not {kind.name}")
        limits = (float(limits[0]), float(limits[1]))
    choices = r.get("choices", (list,), [])
    if kind.takes_choices:
        if not choices or not all(isinstance(c, str) for c in choices):
            raise r.fail("choices", f"must be a non-empty list of strings for an {kind.name} PV")
        for i, choice in enumerate(choices):
            _check_text(r, f"choices[{i}]", choice)
        if len(set(choices)) < len(choices):
            raise r.fail("choices", f"repeats a label (a put by label would be ambiguous), got {choices!r:.200}")
    elif choices:
        raise r.fail("choices", f"is only for {_types_with('takes_choices')} PVs, not {kind.name}")
    length = r.get("length", (int,), None)
    if kind.takes_length:
        length = 1 if length is None else length
        if length < 1:
            raise r.fail("length", f"must be >= 1, got {_integer(length)}")
        if length > MAX_LENGTH:
            raise r.fail("length", f"is {_integer(length)} elements; the cap is {MAX_LENGTH:,}")
    elif length is not None:
        raise r.fail("length", f"is only for {_types_with('takes_length')} PVs, not {kind.name}")
    precision = _precision(r)
    units = _text(r, "units", "")
    description = _text(r, "description", "")
    update_rate = _update_rate(r, BOUNDS["setpoint.update_rate"])
    if update_rate is not None and readback is None:
        raise r.fail("update_rate", "sets how often a readback posts: it needs a 'readback'")
    if dead_time and readback is None:
        raise r.fail("dead_time", f"delays a readback, so it needs a 'readback', got {dead_time!r}")
    value = r.get("initial", kind.initial_kinds, kind.default(length))
    numbers = value if isinstance(value, list) else [value]
    if any(isinstance(x, int) and not _fits_float(x) for x in numbers):
        raise r.fail("initial", "is beyond float range")
    try:
        initial = kind.check_initial(value, tuple(choices), length, limits)
    except (ValueError, OverflowError) as exc:
        raise r.fail("initial", str(exc)) from None
    limit_action = r.get("limit_action", (str,), "clamp")
    if limit_action not in LIMIT_ACTIONS:
        raise r.fail("limit_action", f"must be one of {', '.join(LIMIT_ACTIONS)}, got {limit_action!r}")
    alarm_limits = _alarm_limits(r, kind.scalar)
    udf = r.get("udf", (bool,), False)
    r.finish()
    return SetpointConfig(
        name, readback, kind.name, initial, limits, lag, tau, rate, noise, offset, units,
        precision, tuple(choices), length, description, limit_action, alarm_limits, udf,
        update_rate, dead_time,
    )


def _alarm_limits(r: _Reader, scalar: bool) -> AlarmLimits | None:
    """The `alarm_limits` table (any of lolo, low, high, hihi) and `alarm_deadband`, checked."""
    table = r.get("alarm_limits", (Mapping,), None)
    deadband = r.number("alarm_deadband", 0.0, minimum=0.0)
    if table is None:
        if deadband:
            raise r.fail("alarm_deadband", "needs 'alarm_limits' to apply to")
        return None
    if not scalar:
        raise r.fail("alarm_limits", "is only for double and int PVs (one number)")
    values: dict[str, float] = {}
    for key, value in table.items():
        if key not in LIMIT_KEYS:
            raise r.fail(f"alarm_limits.{key}", f"is not an alarm limit (known: {', '.join(LIMIT_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise r.fail(f"alarm_limits.{key}", f"must be a finite number, got {value!r}")
        values[key] = float(value)
    limits = AlarmLimits(**values, deadband=deadband)
    disorder = limits.ordered()
    if disorder is not None:
        raise r.fail("alarm_limits", f"must be ordered lolo <= low <= high <= hihi: {disorder}")
    return limits


def _types_with(flag: str) -> str:
    return " or ".join(t.name for t in PV_TYPES.values() if getattr(t, flag))


def _observable(r: _Reader) -> ObservableConfig:
    name = cast(str, _name(r, "name"))  # required: a str, or ConfigError
    expression = r.get("expression", (str,), "")  # "": a Python function computes it (SoftIOC(observables=))
    inputs = dict(r.get("inputs", (Mapping,), {}))
    for var, pv in inputs.items():
        if not isinstance(var, str) or not var.isidentifier() or not isinstance(pv, str):
            raise r.fail(f"inputs.{var}", f"must map an identifier to a PV name, got {var!r} = {pv!r}")
    noise = r.number("noise", 0.0, minimum=0.0)
    units = _text(r, "units", "")
    precision = _precision(r)
    description = _text(r, "description", "")
    alarm_limits = _alarm_limits(r, True)
    update_rate = _update_rate(r, BOUNDS["observable.update_rate"])
    scan = r.within("scan", 0.0, BOUNDS["observable.scan"]) if "scan" in r.data else None
    if "scan" not in r.data:
        r.used.add("scan")
    r.finish()
    try:
        if expression:
            compile_expression(expression, list(inputs))
    except ExpressionError as exc:
        raise r.fail("expression", str(exc)) from None
    return ObservableConfig(name, expression, inputs, noise, units, precision, alarm_limits, description,
                            update_rate, scan)


def _check_update_rates(source: str, setpoints: tuple[Any, ...],
                        observables: tuple[Any, ...], settings: IOCSettings) -> None:
    """A PV cannot post faster than the update loop steps, nor the loop step more PVs than it can run."""
    pvs = sum(2 if sp.readback else 1 for sp in setpoints) + len(observables)
    check_load(source, pvs, settings)
    tables = [("[[setpoint]]", i, sp) for i, sp in enumerate(setpoints)]
    tables += [("[[observable]]", i, ob) for i, ob in enumerate(observables)]
    for table, i, cfg in tables:
        if cfg.update_rate is not None and cfg.update_rate > settings.update_rate:
            raise ConfigError(
                f"{source}: {table} #{i + 1} ('{cfg.name}'): key 'update_rate' is {cfg.update_rate:g} Hz, "
                f"faster than the [ioc] update_rate {settings.update_rate:g} Hz its updates are stepped at")


def check_load(source: str, pvs: int, settings: IOCSettings) -> None:
    """ConfigError unless each process's update loop steps at most MAX_PV_STEPS PV updates a second
    (`pvs` PVs shared evenly by `settings.processes`)."""
    processes = settings.processes
    each = -(-pvs // processes)
    load = each * settings.update_rate
    if load > MAX_PV_STEPS:
        raise ConfigError(
            f"{source}: [ioc] update_rate {settings.update_rate:g} Hz steps {each:,} PVs in each of {processes} "
            f"process(es): {load:,.0f} PV updates a second, beyond the {MAX_PV_STEPS:,} one update loop can "
            "run; lower update_rate or raise processes")


def _fault(r: _Reader, served: set[str], setpoints: set[str], observables: Collection[str] = ()) -> FaultConfig:
    pv = r.get("pv", (str,), required=True)
    kind = r.get("kind", (str,), required=True)
    at = r.get("at", (int, float), None)
    if at is not None:
        try:
            sane = math.isfinite(at) and 0 <= at <= MAX_SECONDS
        except OverflowError:
            sane = False
        if not sane:
            raise r.fail("at", f"must be within [0, {MAX_SECONDS:.0f}] simulated seconds, got {at!r}")
    params = {k: v for k, v in r.data.items() if k not in ("pv", "kind", "at")}
    try:
        fault_kind(kind)
    except ValueError as exc:
        raise r.fail("kind", str(exc)) from None
    try:
        check_target(kind, pv, setpoints, served, observables)
    except ValueError as exc:
        raise r.fail("pv", str(exc)) from None
    try:
        fault = fault_from_dict(kind, params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{r.where}: {exc}") from None
    return FaultConfig(pv, fault, None if at is None else float(at))


def _check_names(source: str, setpoints: tuple[SetpointConfig, ...], observables: tuple[ObservableConfig, ...],
                 settings: IOCSettings) -> None:
    seen: dict[str, str] = {}

    def claim(name: str, role: str) -> None:
        if name in seen:
            raise ConfigError(f"{source}: PV name '{name}' is used twice (as {seen[name]} and as {role})")
        if name.startswith(settings.control_prefix):
            raise ConfigError(
                f"{source}: PV name '{name}' is inside the control prefix '{settings.control_prefix}'"
            )
        seen[name] = role

    for i, sp in enumerate(setpoints):
        claim(sp.name, f"the setpoint of [[setpoint]] #{i + 1}")
    for i, sp in enumerate(setpoints):
        if sp.readback:
            if sp.readback in seen and seen[sp.readback].startswith("the setpoint"):
                raise ConfigError(
                    f"{source}: [[setpoint]] #{i + 1} ('{sp.name}'): key 'readback' names "
                    f"'{sp.readback}', which is also a setpoint ({seen[sp.readback]})"
                )
            claim(sp.readback, f"the readback of [[setpoint]] #{i + 1}")
    for i, ob in enumerate(observables):
        claim(ob.name, f"[[observable]] #{i + 1}")
