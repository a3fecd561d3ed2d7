"""Conversion of p4p values to plain Python, and checks of inputs against what a PV accepts.

No network here: callers read the PV, then `describe` it and `coerce` the input.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import unicodedata
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from p4p import Value

from ..results import show

__all__ = ["SERVER_ID_FIELD", "PvInfo", "check_name", "coerce", "describe", "normalize", "server_id_of", "show",
           "to_python"]

# p4p type codes of integer value fields and the numpy types giving their ranges
_INT_TYPES: dict[str, type[np.integer[Any]]] = {
    "b": np.int8, "B": np.uint8, "h": np.int16, "H": np.uint16,
    "i": np.int32, "I": np.uint32, "l": np.int64, "L": np.uint64,
}
_FLOAT_TYPES = {"f": np.float32, "d": np.float64}
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
            "array" if scalar in _INT_TYPES or scalar in _FLOAT_TYPES or scalar == "?" else "other")
    elif code in _FLOAT_TYPES:
        kind = "float"
    elif code in _INT_TYPES:
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


def check_name(name: Any) -> str | None:
    """Why `name` cannot be a PV name, or None when it can."""
    if not isinstance(name, str):
        return f"a PV name must be a string, not {type(name).__name__}"
    if name.isascii() and name.isprintable() and " " not in name and name:
        return None  # the usual name, checked at C speed: no control character, space or surrogate
    if not name.strip():
        return "empty PV name"
    if any(c.isspace() for c in name):
        return "a PV name cannot contain whitespace"
    for c in name:
        # a lone surrogate has no UTF-8 (p4p raises UnicodeEncodeError); NUL ends a name on the wire
        if unicodedata.category(c) in ("Cc", "Cs"):
            return f"a PV name cannot contain the character {c!r} (PVAccess cannot carry it)"
    return None


def normalize(value: Any) -> Any:
    """Turn numpy scalars and 0-d arrays into Python scalars (p4p refuses 0-d arrays).

    Raises ValueError for values no PV can take (None, complex numbers, mappings...).
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None:
        raise ValueError("None is not a value")
    if isinstance(value, (complex, np.complexfloating)):
        raise ValueError(f"{show(value)} is a complex number")
    if isinstance(value, (bool, numbers.Real, str, list, tuple, np.ndarray)):
        return value
    raise ValueError(f"{show(value)} ({type(value).__name__}) is not a number, string or array")


_FLOAT_MAX_INT = int(np.finfo(float).max)


def _number(value: Any, info: PvInfo) -> float | int:
    """A finite real number from `value`, or ValueError naming what is wrong."""
    if isinstance(value, str):
        raise ValueError(f"{show(value)} is a string, but the PV holds a number")
    if isinstance(value, (list, tuple, np.ndarray)):
        raise ValueError(f"{show(value)} is an array, but the PV holds a single number")
    if isinstance(value, bool) and info.kind == "float":
        raise ValueError(f"{value!r} is a bool, but the PV holds a floating-point number")
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        # Python ints are unbounded: math.isfinite/float() would raise OverflowError
        if info.kind == "float" and abs(int(value)) > _FLOAT_MAX_INT:
            raise ValueError(f"an integer of {len(str(abs(int(value))))} digits is beyond float range")
        return cast(int, value)  # an Integral (int, numpy integer): put as it is
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return cast(float, value)


def _check_limits(value: float, info: PvInfo) -> None:
    if info.limits is not None and not info.limits[0] <= value <= info.limits[1]:
        low, high = info.limits
        raise ValueError(f"{show(value)} is outside the PV's control limits [{low:g}, {high:g}]")


def _check_int(value: float | int, code: str) -> int:
    if not isinstance(value, numbers.Integral) and not float(value).is_integer():
        raise ValueError(f"{show(value)} is not a whole number, but the PV holds integers")
    value = int(value)
    info = np.iinfo(_INT_TYPES[code])
    if not info.min <= value <= info.max:
        raise ValueError(f"{value} does not fit the PV's integer type (range {info.min}..{info.max})")
    return value


def coerce(value: Any, info: PvInfo) -> Any:
    """Check a normalized input against the PV and return the value to put; ValueError says why not."""
    kind = info.kind
    if kind == "float":
        number = float(_number(value, info))
        _check_limits(number, info)
        return number
    if kind == "int":
        number = _check_int(_number(value, info), info.code)
        _check_limits(number, info)
        return number
    if kind == "bool":
        if isinstance(value, (bool, numbers.Real)) and not isinstance(value, str) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{show(value)} is not a bool (True/False or 0/1)")
    if kind == "string":
        if isinstance(value, str):
            # NUL ends the string on the wire (silent truncation); a lone surrogate has no UTF-8
            bad = next((c for c in value if c == "\x00" or unicodedata.category(c) == "Cs"), None)
            if bad is not None:
                raise ValueError(f"{show(value)} contains the character {bad!r}, which PVAccess cannot carry")
            return value
        raise ValueError(f"{show(value)} ({type(value).__name__}) is not a string, but the PV holds one")
    if kind == "enum":
        return _coerce_enum(value, info)
    if kind == "array":
        return _coerce_array(value, info)
    if kind == "string_array":
        if isinstance(value, (list, tuple, np.ndarray)) and all(isinstance(v, str) for v in value):
            return [str(v) for v in value]
        raise ValueError(f"{show(value)} is not a list of strings, but the PV holds strings")
    return value  # a structure we do not know: let p4p and the server judge


def _coerce_enum(value: Any, info: PvInfo) -> str | int:
    choices = ", ".join(repr(c) for c in info.choices)
    if isinstance(value, str):
        if value in info.choices:
            return value
        raise ValueError(f"{value!r} is not one of the PV's choices ({choices})")
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if 0 <= int(value) < len(info.choices):
            return int(value)
        raise ValueError(f"index {value} is not a valid choice index (0..{len(info.choices) - 1})")
    raise ValueError(f"{show(value)} is neither a choice ({choices}) nor a choice index")


def _coerce_array(value: Any, info: PvInfo) -> np.ndarray:
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise ValueError(f"{show(value)} is a single value, but the PV holds an array")
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise ValueError(f"{show(value)} is not a flat array: {exc}") from None
    if array.ndim != 1:
        raise ValueError(f"the array has shape {array.shape}, but the PV holds a 1-d array")
    if array.size and array.dtype.kind not in "biuf":
        raise ValueError(f"{show(value)} has elements that are not numbers ({array.dtype})")
    code = info.code[1:]
    if code == "?":
        return array.astype(bool)
    if array.size and not np.all(np.isfinite(array.astype(float))):
        raise ValueError(f"{show(value)} contains NaN or infinite elements")
    if code in _INT_TYPES:
        if array.size and not np.all(array == np.round(array)):
            raise ValueError(f"{show(value)} has elements that are not whole numbers")
        limits = np.iinfo(_INT_TYPES[code])
        if array.size and (array.min() < limits.min or array.max() > limits.max):
            raise ValueError(f"{show(value)} has elements outside the PV's integer type range")
    if info.limits is not None and array.size:
        outside = (array < info.limits[0]) | (array > info.limits[1])
        if outside.any():
            first = int(np.argmax(outside))
            low, high = info.limits
            raise ValueError(
                f"element {first} ({array[first]:g}) is outside the PV's control limits "
                f"[{low:g}, {high:g}]"
            )
    return array.astype(_INT_TYPES.get(code) or _FLOAT_TYPES.get(code, np.float64))
