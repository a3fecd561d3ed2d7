"""Reading a whole config: a TOML file, a dict of the same shape, or an IOCConfig passed through.

Every error names the source (file or '<dict>') and the key that is wrong, because the
person reading it is editing that file. Each table is read by `_tables`, with the checks of
`_reader`; `[[..._range]]` tables are expanded first by `_ranges`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._ranges import check_size, expand_plans, plan_ranges
from ._reader import _Reader
from ._tables import (
    _check_names,
    _check_update_rates,
    _fault,
    _observable,
    _setpoint,
    _settings,
)
from ._types import IOCConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["config_from_dict", "load_config", "read_toml", "relative_audit"]

# the keys of a range formatted with its index (for an observable, each value of `inputs`)
_SETPOINT_PATTERNS = ("name", "readback")
_OBSERVABLE_PATTERNS = ("name", "inputs")


def load_config(source: str | Path | Mapping[str, Any] | IOCConfig) -> IOCConfig:
    """Build an IOCConfig from a TOML file path, a dict of the same shape, or pass one through."""
    if isinstance(source, IOCConfig):
        return source
    if isinstance(source, Mapping):
        return config_from_dict(source)
    path = Path(source)
    return relative_audit(config_from_dict(read_toml(path), source=str(path)), path)


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at `path`, as a dict; ConfigError naming the file when it cannot be read."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
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


def relative_audit(config: IOCConfig, path: Path) -> IOCConfig:
    """`config` read from `path`, its relative audit file made relative to the file, not the cwd."""
    audit = config.ioc.audit
    if audit is not None and not Path(audit).is_absolute():
        ioc = dataclasses.replace(config.ioc, audit=str(path.parent / audit))
        config = dataclasses.replace(config, ioc=ioc)
    return config


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> IOCConfig:
    """Validate a dict shaped like the TOML file; see docs/softioc.md for every key."""
    top = _Reader(data, source)
    ioc_table = top.get("ioc", (Mapping,), {})
    setpoint_tables = top.get("setpoint", (list,), [])
    observable_tables = top.get("observable", (list,), [])
    fault_tables = top.get("fault", (list,), [])
    setpoint_plans = plan_ranges(top.get("setpoint_range", (list,), []), source, "setpoint_range", _SETPOINT_PATTERNS)
    observable_plans = plan_ranges(top.get("observable_range", (list,), []), source, "observable_range",
                                   _OBSERVABLE_PATTERNS)
    top.finish()
    # the ranges' size in all, before any of their names is generated
    entries = sum(2 if isinstance(t, Mapping) and "readback" in t else 1 for t in setpoint_tables)
    check_size(source, entries + len(observable_tables), setpoint_plans + observable_plans)
    setpoint_ranges = expand_plans(setpoint_plans, _SETPOINT_PATTERNS)
    observable_ranges = expand_plans(observable_plans, _OBSERVABLE_PATTERNS)

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
    setpoint_names = {sp.name for sp in setpoints}  # built once: one set per input made loading quadratic
    inputs_allowed = setpoint_names | {sp.readback for sp in setpoints if sp.readback}
    served = inputs_allowed | {o.name for o in observables}
    for i, ob in enumerate(observables):
        for var, pv in ob.inputs.items():
            if pv not in inputs_allowed:
                raise ConfigError(
                    f"{source}: [[observable]] #{i + 1} ('{ob.name}'): key 'inputs.{var}' names "
                    f"'{pv}', which is not a setpoint or readback of this IOC"
                )
    faults = tuple(
        _fault(_Reader(t, f"{source}: [[fault]] #{i + 1}"), served, setpoint_names,
               {o.name for o in observables})
        for i, t in enumerate(fault_tables)
    )
    return IOCConfig(settings, setpoints, observables, faults, source)


def _label(table: Any) -> str:
    if isinstance(table, Mapping) and isinstance(table.get("name"), str):
        return f" ('{table['name']}')"
    return ""
