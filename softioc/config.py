"""Soft IOC configuration: TOML or dicts in, validated frozen objects out.

Every error names the source (file or '<dict>') and the key that is wrong, because the
person reading it is editing that file.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from .access import check_entries
from .alarms import LIMIT_KEYS, AlarmLimits
from .errors import ConfigError
from .expression import ExpressionError, compile_expression
from .faults import MAX_SECONDS, Fault, check_target, fault_from_dict, fault_kind
from .lags import LAGS
from .pvtypes import PV_TYPES, pv_type
from .ranges import expand_ranges

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["PV_TYPES", "LAGS", "ConfigError", "IOCConfig", "load_config", "config_from_dict"]


@dataclass(frozen=True)
class IOCSettings:
    """Process-wide settings: seed, readback update rate (Hz), simulated s per wall s.

    `control_from` / `write_from` are access rules (see softioc.access; None: the owner
    only / everyone), `allow_network` permits serving beyond loopback, `prefix` is put
    before every served PV name.
    """

    seed: int = 0
    update_rate: float = 10.0
    time_scale: float = 1.0
    control_prefix: str = "SOFTIOC:"
    audit: str | None = None  # JSON Lines file every put and fault event is appended to
    control_from: tuple[str, ...] | None = None
    write_from: tuple[str, ...] | None = None
    allow_network: bool = False
    prefix: str = ""
    processes: int = 1  # server processes sharing the PVs (softioc.machine)


MAX_PROCESSES = 64


@dataclass(frozen=True)
class SetpointConfig:
    """One simulated device: a setpoint PV and (optionally) the readback PV that follows it."""

    name: str
    readback: str | None = None
    type: str = "double"
    initial: Any = None
    limits: tuple[float, float] | None = None
    lag: str = "none"
    tau: float = 1.0
    rate: float = 1.0
    noise: float = 0.0
    offset: float = 0.0
    units: str = ""
    precision: int | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None
    description: str = ""
    limit_action: str = "clamp"  # a put beyond `limits`: "clamp" to the limit (as an ao), or "reject"
    alarm_limits: AlarmLimits | None = None  # applies to the readback
    udf: bool = False  # INVALID (UDF) until the first put, as an ao never written since boot
    update_rate: float | None = None  # Hz the readback posts at; None: every update step


LIMIT_ACTIONS = ("clamp", "reject")
"""What a setpoint does with a put beyond its limits."""


@dataclass(frozen=True)
class ObservableConfig:
    """A read-only PV computed from readbacks by a whitelisted arithmetic expression."""

    name: str
    expression: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    noise: float = 0.0
    units: str = ""
    precision: int | None = None
    alarm_limits: AlarmLimits | None = None
    description: str = ""
    update_rate: float | None = None  # Hz it posts at; None: every update step


@dataclass(frozen=True)
class FaultConfig:
    """A fault armed at start-up (`at` None) or at simulated time `at` (s)."""

    pv: str
    fault: Fault
    at: float | None = None


@dataclass(frozen=True)
class IOCConfig:
    """A whole soft IOC: settings, devices, observables and scheduled faults."""

    ioc: IOCSettings = field(default_factory=IOCSettings)
    setpoints: tuple[SetpointConfig, ...] = ()
    observables: tuple[ObservableConfig, ...] = ()
    faults: tuple[FaultConfig, ...] = ()
    source: str = "<dict>"

    def pv_names(self) -> list[str]:
        """Every simulated PV name (setpoints, readbacks, observables), in config order."""
        names: list[str] = []
        for sp in self.setpoints:
            names.append(sp.name)
            if sp.readback:
                names.append(sp.readback)
        names.extend(ob.name for ob in self.observables)
        return names


def load_config(source: str | Path | Mapping[str, Any] | IOCConfig) -> IOCConfig:
    """Build an IOCConfig from a TOML file path, a dict of the same shape, or pass one through."""
    if isinstance(source, IOCConfig):
        return source
    if isinstance(source, Mapping):
        return config_from_dict(source)
    path = Path(source)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    except RecursionError:  # tomllib recurses once per nesting level of arrays and tables
        raise ConfigError(f"{path}: arrays or tables nested too deeply") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    config = config_from_dict(data, source=str(path))
    audit = config.ioc.audit
    if audit is not None and not Path(audit).is_absolute():  # relative to the file, not the cwd
        ioc = dataclasses.replace(config.ioc, audit=str(path.parent / audit))
        config = dataclasses.replace(config, ioc=ioc)
    return config


class _Reader:
    """Reads one table, checking key names and types; errors carry the location."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
        self.data, self.where = data, where
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: key '{key}' {problem}")

    def get(self, key: str, kinds: tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.where}: required key '{key}' is missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(key, f"must be {names}, got {value!r} ({type(value).__name__})")
        return value

    def number(self, key: str, default: float, positive: bool = False, minimum: float | None = None) -> float:
        value = self.get(key, (int, float), default)
        if isinstance(value, int) and not _fits_float(value):
            raise self.fail(key, f"is beyond float range, got an integer of {len(str(abs(value)))} digits")
        if not math.isfinite(value):
            raise self.fail(key, f"must be finite, got {value!r}")
        if positive and value <= 0:
            raise self.fail(key, f"must be > 0, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value!r}")
        return float(value)

    def finish(self, extra: tuple[str, ...] = ()) -> None:
        unknown = [k for k in self.data if k not in self.used and k not in extra]
        if unknown:
            known = sorted(self.used | set(extra))
            raise ConfigError(f"{self.where}: unknown key '{unknown[0]}' (known keys: {', '.join(known)})")


def _fits_float(value: int) -> bool:
    """Whether an int (TOML integers are unbounded) converts to a float without OverflowError."""
    try:
        float(value)
    except OverflowError:
        return False
    return True


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> IOCConfig:
    """Validate a dict shaped like the TOML file; see docs/softioc.md for every key."""
    top = _Reader(data, source)
    ioc_table = top.get("ioc", (Mapping,), {})
    setpoint_tables = top.get("setpoint", (list,), [])
    observable_tables = top.get("observable", (list,), [])
    fault_tables = top.get("fault", (list,), [])
    setpoint_ranges = expand_ranges(top.get("setpoint_range", (list,), []), source, "setpoint_range",
                                    ("name", "readback"))
    observable_ranges = expand_ranges(top.get("observable_range", (list,), []), source, "observable_range",
                                      ("name", "inputs"))
    top.finish()

    settings = _settings(_Reader(ioc_table, f"{source}: [ioc]"))
    setpoints = tuple(
        _setpoint(_Reader(t, f"{source}: [[setpoint]] #{i + 1}{_label(t)}"))
        for i, t in enumerate(setpoint_tables)
    ) + tuple(_setpoint(_Reader(t, f"{where}{_label(t)}")) for where, t in setpoint_ranges)
    observables = tuple(
        _observable(_Reader(t, f"{source}: [[observable]] #{i + 1}{_label(t)}"))
        for i, t in enumerate(observable_tables)
    ) + tuple(_observable(_Reader(t, f"{where}{_label(t)}")) for where, t in observable_ranges)
    _check_names(source, setpoints, observables, settings)
    _check_update_rates(source, setpoints, observables, settings)
    served = {n for sp in setpoints for n in (sp.name, sp.readback) if n} | {o.name for o in observables}
    readbacks = {sp.readback for sp in setpoints if sp.readback}
    for i, ob in enumerate(observables):
        for var, pv in ob.inputs.items():
            if pv not in readbacks and pv not in {sp.name for sp in setpoints}:
                raise ConfigError(
                    f"{source}: [[observable]] #{i + 1} ('{ob.name}'): key 'inputs.{var}' names "
                    f"'{pv}', which is not a setpoint or readback of this IOC"
                )
    faults = tuple(
        _fault(_Reader(t, f"{source}: [[fault]] #{i + 1}"), served, {sp.name for sp in setpoints})
        for i, t in enumerate(fault_tables)
    )
    return IOCConfig(settings, setpoints, observables, faults, source)


def _label(table: Any) -> str:
    if isinstance(table, Mapping) and isinstance(table.get("name"), str):
        return f" ('{table['name']}')"
    return ""


def _settings(r: _Reader) -> IOCSettings:
    seed = r.get("seed", (int,), 0)
    update_rate = r.number("update_rate", 10.0, positive=True)
    time_scale = r.number("time_scale", 1.0, positive=True)
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


# the longest PV name served (characters); 1000 measured to be found by a p4p client's search
MAX_NAME = 1000
# the longest units, description, enum choice or control prefix (characters)
MAX_TEXT = 1000
# the most elements of an array PV: 10 million doubles are 80 MB per copy the server keeps
MAX_LENGTH = 10_000_000
# the most decimal places a display precision may ask for (a double carries 17 digits)
MAX_PRECISION = 17


def _uncarried(text: str) -> str | None:
    """Why PVAccess cannot carry `text` unchanged (a control character such as NUL, which ends the
    string on the wire, or a lone surrogate, which has no UTF-8), or None if it can."""
    for c in text:
        if unicodedata.category(c) in ("Cc", "Cs"):
            return f"contains the character {c!r}, which PVAccess cannot carry"
    return None


def _text(r: _Reader, key: str, default: str) -> str:
    """A string PVAccess carries unchanged, of at most MAX_TEXT characters."""
    value: str = r.get(key, (str,), default)
    _check_text(r, key, value)
    return value


def _check_text(r: _Reader, key: str, value: str) -> None:
    if len(value) > MAX_TEXT:
        raise r.fail(key, f"is {len(value)} characters long; the limit is {MAX_TEXT}")
    why = _uncarried(value)
    if why:
        raise r.fail(key, f"{why}, got {value!r}")


def _precision(r: _Reader) -> int | None:
    value: int | None = r.get("precision", (int,), None)
    if value is not None and not 0 <= value <= MAX_PRECISION:
        raise r.fail("precision", f"must be within [0, {MAX_PRECISION}] decimal places, got {_integer(value)}")
    return value


def _integer(value: int) -> str:
    """An integer as a message shows it: its digits, or how many digits when there are many."""
    return str(value) if abs(value) < 10**30 else f"an integer of {len(str(abs(value)))} digits"


def _name(r: _Reader, key: str, required: bool = True) -> str | None:
    value = r.get(key, (str,), None, required=required)
    if value is not None and (not value.strip() or any(c.isspace() for c in value)):
        raise r.fail(key, f"must be a PV name without spaces, got {value!r}")
    if value is not None and len(value) > MAX_NAME:
        raise r.fail(key, f"is a PV name of {len(value)} characters; the limit is {MAX_NAME}")
    why = None if value is None else _uncarried(value)
    if why:
        raise r.fail(key, f"{why}, got {value!r}")
    return cast("str | None", value)


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
    tau = r.number("tau", 1.0, positive=True)
    rate = r.number("rate", 1.0, positive=True)
    noise = r.number("noise", 0.0, minimum=0.0)
    offset = r.number("offset", 0.0)
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
    update_rate = _update_rate(r)
    if update_rate is not None and readback is None:
        raise r.fail("update_rate", "sets how often a readback posts: it needs a 'readback'")
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
        update_rate,
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
    expression = r.get("expression", (str,), required=True)
    inputs = dict(r.get("inputs", (Mapping,), {}))
    for var, pv in inputs.items():
        if not isinstance(var, str) or not var.isidentifier() or not isinstance(pv, str):
            raise r.fail(f"inputs.{var}", f"must map an identifier to a PV name, got {var!r} = {pv!r}")
    noise = r.number("noise", 0.0, minimum=0.0)
    units = _text(r, "units", "")
    precision = _precision(r)
    description = _text(r, "description", "")
    alarm_limits = _alarm_limits(r, True)
    update_rate = _update_rate(r)
    r.finish()
    try:
        compile_expression(expression, list(inputs))
    except ExpressionError as exc:
        raise r.fail("expression", str(exc)) from None
    return ObservableConfig(name, expression, inputs, noise, units, precision, alarm_limits, description,
                            update_rate)


def _update_rate(r: _Reader) -> float | None:
    """A PV's own posting rate (Hz, > 0), or None to post at every update step."""
    if "update_rate" not in r.data:
        r.used.add("update_rate")
        return None
    return r.number("update_rate", 0.0, positive=True)


def _check_update_rates(source: str, setpoints: tuple[Any, ...],
                        observables: tuple[Any, ...], settings: IOCSettings) -> None:
    """A PV cannot post faster than the update loop steps."""
    tables = [("[[setpoint]]", i, sp) for i, sp in enumerate(setpoints)]
    tables += [("[[observable]]", i, ob) for i, ob in enumerate(observables)]
    for table, i, cfg in tables:
        if cfg.update_rate is not None and cfg.update_rate > settings.update_rate:
            raise ConfigError(
                f"{source}: {table} #{i + 1} ('{cfg.name}'): key 'update_rate' is {cfg.update_rate:g} Hz, "
                f"faster than the [ioc] update_rate {settings.update_rate:g} Hz its updates are stepped at")


def _fault(r: _Reader, served: set[str], setpoints: set[str]) -> FaultConfig:
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
        check_target(kind, pv, setpoints, served)
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
