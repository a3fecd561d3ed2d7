"""Conversion of p4p values to plain Python, and what a PV accepts, learnt from one read of it.

No network here: callers read the PV, then `describe` it; the checks of an input against
it (`normalize`, `coerce`) are in _inputs.py.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from p4p import Value

from ..results import show

__all__ = ["FLOAT_TYPES", "INT_TYPES", "SERVER_ID_FIELD", "PvInfo", "describe", "server_id_of", "show", "to_python"]

# p4p type codes of integer value fields and the numpy types giving their ranges
INT_TYPES: dict[str, type[np.integer[Any]]] = {
    "b": np.int8, "B": np.uint8, "h": np.int16, "H": np.uint16,
    "i": np.int32, "I": np.uint32, "l": np.int64, "L": np.uint64,
}
FLOAT_TYPES = {"f": np.float32, "d": np.float64}
SERVER_ID_FIELD = "softiocId"  # the top-level field in which a soft IOC publishes its id




@dataclass(frozen=True)
class PvInfo:
    """What a PV accepts, learnt from one read of it.

    `kind` is one of "float", "int", "bool", "string", "enum", "array" (numeric),
    "string_array" or "other"; `code` is the p4p type code of its value field ("d", "ai", ...);
    `limits` are its control limits (low, high) when it publishes usable ones; `server_id`
    the `softiocId` its server published in the structure (None: no such string field).
    """

    kind: str
    code: str = ""
    choices: tuple[str, ...] = ()
    limits: tuple[float, float] | None = None
    server_id: str | None = None


def _raw(value: Any) -> Value | None:
    """The p4p Value behind an unwrapped (ntfloat, ntenum, ...) or raw value, if any."""
    if isinstance(value, Value):
        return value
    return getattr(value, "raw", None)


def _is_enum(raw: Value | None) -> bool:
    return raw is not None and "NTEnum" in raw.getID()


def to_python(value: Any) -> Any:
    """Convert a value read with p4p to plain Python: float, int, bool, str, enum label, numpy array.

    Enum PVs give their label (or the bare index when it has no label); numeric arrays give a
    plain `numpy.ndarray` copy; string arrays a list of str.
    """
    raw = _raw(value)
    if raw is not None and _is_enum(raw):
        index, choices = int(raw["value.index"]), list(raw["value.choices"])
        return choices[index] if 0 <= index < len(choices) else index
    if raw is not None:  # read the field itself: str() of a p4p wrapper adds its timestamp
        try:
            value = raw["value"]
        except KeyError:
            raise ValueError(f"no 'value' field in a {raw.getID()} structure") from None
    kind = type(value)
    if kind is float or kind is str:  # the usual cases first: every read goes through here
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, np.ndarray):
        return np.array(value)  # drops the p4p subclass and its reference to the raw Value
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    raise ValueError(f"cannot convert a {type(value).__name__} to a Python value")


def describe(value: Any) -> PvInfo:
    """Learn from one read value what the PV accepts (kind, type code, choices, limits) and who serves it."""
    info = _describe(value)
    server_id = server_id_of(value)
    return dataclasses.replace(info, server_id=server_id) if server_id is not None else info


def server_id_of(value: Any) -> str | None:
    """The id a soft IOC publishes in `value`'s SERVER_ID_FIELD, or None when it has none."""
    raw = _raw(value)
    if raw is not None and SERVER_ID_FIELD in raw and raw.type().aspy(SERVER_ID_FIELD) == "s":
        return str(raw[SERVER_ID_FIELD])
    return None


def _describe(value: Any) -> PvInfo:
    raw = _raw(value)
    if raw is None:
        return PvInfo(kind=_kind_of_python(value))
    if _is_enum(raw):
        return PvInfo(kind="enum", code="enum", choices=tuple(raw["value.choices"]))
    if "value" not in raw:
        return PvInfo(kind="other")
    code = raw.type().aspy("value")
    if not isinstance(code, str):
        return PvInfo(kind="other")
    scalar = code[1:] if code.startswith("a") else code
    if code.startswith("a"):
        kind = "string_array" if scalar == "s" else (
            "array" if scalar in INT_TYPES or scalar in FLOAT_TYPES or scalar == "?" else "other")
    elif code in FLOAT_TYPES:
        kind = "float"
    elif code in INT_TYPES:
        kind = "int"
    else:
        kind = {"?": "bool", "s": "string"}.get(code, "other")
    limits = None
    if kind in ("float", "int", "array") and "control" in raw:
        low, high = float(raw["control.limitLow"]), float(raw["control.limitHigh"])
        if low < high:  # 0/0 (the default) means "no limits published"
            limits = (low, high)
    return PvInfo(kind=kind, code=code, limits=limits)


def _kind_of_python(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, np.ndarray):
        return "array"
    return "other"
