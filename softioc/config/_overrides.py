"""A variant of a config for one test or one run: the loaded config with some keys changed.

`with_overrides(config, {"ioc": {"time_scale": 10}})` deep-merges tables and keys into the
config as it was read (a TOML path or a dict), then validates the result as any config is, so
a bad key or value is named as usual. The `[[setpoint]]`, `[[observable]]` and `[[fault]]`
arrays take either a list (it replaces the array) or a table keyed by a name already in the
array (that entry's keys are merged). An IOCConfig has no text left to merge into: its `[ioc]`
settings may still be replaced, by name.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._load import config_from_dict, load_config, read_toml, relative_audit
from ._reader import _Reader
from ._tables import _check_update_rates, _settings
from ._types import IOCConfig

__all__ = ["replace_settings", "with_overrides"]

_NAMED_ARRAYS = ("setpoint", "observable")


def with_overrides(config: IOCConfig | Mapping[str, Any] | str | Path,
                   overrides: Mapping[str, Any] | None) -> IOCConfig:
    """`config` (a TOML path, a dict or an IOCConfig) with `overrides` merged in, validated.

    ConfigError naming the key when an override names a table entry that is not there, or
    gives a table where the config has a value; the loaded result is checked as any config.
    """
    if not overrides:
        return load_config(config)
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides must be a table (dict), got {type(overrides).__name__}")
    if isinstance(config, IOCConfig):
        return _replace_settings(config, overrides)
    if isinstance(config, Mapping):
        data, source, path = copy.deepcopy(dict(config)), "<dict>", None
    else:
        path = Path(config)
        data, source = read_toml(path), str(path)
    merged = _merge(data, overrides, "overrides")
    loaded = config_from_dict(merged, source=f"{source} (with overrides)")
    return relative_audit(loaded, path) if path is not None else loaded


def _merge(base: dict[str, Any], overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    for key, value in overrides.items():
        here = f"{where}: key {key!r}"
        current = base.get(key)
        if key in _NAMED_ARRAYS and isinstance(value, Mapping) and isinstance(current, list):
            base[key] = _merge_named(current, value, here)
        elif isinstance(value, Mapping):
            if current is None:
                base[key] = copy.deepcopy(dict(value))
            elif isinstance(current, Mapping):
                base[key] = _merge(dict(current), value, f"{where}.{key}" if where != "overrides" else f"{key}")
            else:
                raise ConfigError(f"{here} is a value in the config ({current!r:.80}), not a table to merge into")
        else:
            base[key] = copy.deepcopy(value)
    return base


def _merge_named(entries: list[Any], overrides: Mapping[str, Any], where: str) -> list[Any]:
    by_name = {e.get("name"): i for i, e in enumerate(entries) if isinstance(e, Mapping)}
    merged = list(entries)
    for name, changes in overrides.items():
        if name not in by_name:
            known = ", ".join(repr(n) for n in list(by_name)[:10])
            raise ConfigError(f"{where}: no entry named {name!r} to merge into (entries: {known})")
        if not isinstance(changes, Mapping):
            raise ConfigError(f"{where}: the changes to {name!r} must be a table, got {changes!r:.80}")
        merged[by_name[name]] = _merge(dict(merged[by_name[name]]), changes, f"{where}[{name!r}]")
    return merged


def _replace_settings(config: IOCConfig, overrides: Mapping[str, Any]) -> IOCConfig:
    """An IOCConfig's `[ioc]` settings replaced by name (its other tables are fixed once loaded)."""
    extra = sorted(set(overrides) - {"ioc"})
    if extra:
        raise ConfigError(f"overrides: key {extra[0]!r} cannot be merged into an already loaded IOCConfig "
                          "(only its [ioc] settings can); pass the dict or the TOML path instead")
    settings = overrides["ioc"]
    if not isinstance(settings, Mapping):
        raise ConfigError(f"overrides: key 'ioc' must be a table, got {settings!r:.80}")
    return replace_settings(config, settings)


def replace_settings(config: IOCConfig, settings: Mapping[str, Any]) -> IOCConfig:
    """`config` with these `[ioc]` keys changed, checked as the file's keys are."""
    current = {k: list(v) if isinstance(v, tuple) else v
               for k, v in dataclasses.asdict(config.ioc).items() if v is not None}
    merged = {**current, **settings}
    source = f"{config.source} (replaced)"
    new = _settings(_Reader(merged, f"{source}: [ioc]"))
    _check_update_rates(source, config.setpoints, config.observables, new)
    return dataclasses.replace(config, ioc=new, source=source)
