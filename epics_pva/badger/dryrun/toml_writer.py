"""The TOML writer of soft IOC configs: tables, arrays of tables and inline tables (no dependency)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["to_toml"]


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
