"""What an input means, and whether the PV can hold it: the checks made before any put.

`normalize` turns whatever numpy and Python hand over into the plain value it means (or says
why it means none): numpy scalars and 0-d arrays become Python scalars; subclasses of int,
float and str become the number or text they hold, never what their ``__int__``,
``__float__`` or ``__str__`` say; masked values are refused; Fraction and Decimal stay exact;
bytes, None, complex numbers, dates and unknown objects are refused. `coerce` then checks that
value against what the PV accepts (its kind, type code, choices and control limits) and
returns exactly what will be put: an input never reaches the server as something else.

No network here: callers read the PV, `describe` it (epics_pva.transport._values), then
`normalize` and `coerce` the input. ValueError always names the value and says why.
"""

from __future__ import annotations

import decimal
import fractions
import math
import numbers
import operator
import unicodedata
from typing import Any

import numpy as np

from ..results import show
from ._arrays import coerce_array
from ._values import INT_TYPES, PvInfo

__all__ = ["check_name", "coerce", "normalize"]

_FLOAT_MAX_INT = int(np.finfo(float).max)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_float32(number: float) -> bool:
    """Whether a finite double rounds to a finite float32 (a PV of type "f" can hold it)."""
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(number)))


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


class _Unfit(ValueError):
    """Why a scalar means no value a PV can hold: a phrase, the caller names the value."""


def normalize(value: Any) -> Any:
    """The plain value an input means: bool, int, float, str, Fraction, Decimal (finite), a list
    or tuple of such elements, or a numpy array of one dimension or more.

    Raises ValueError naming the value for what means no value (None, a masked value,
    complex numbers, bytes, dates, mappings, objects).
    """
    if isinstance(value, np.ma.MaskedArray):  # np.ma.masked (a masked element) included
        mask = np.ma.getmaskarray(value)
        if mask.any():
            if value.ndim == 0:
                raise ValueError(f"{show(value)} is masked: it holds no value")
            raise ValueError(f"element {int(np.argmax(mask.reshape(-1)))} is masked: it holds no value")
        value = np.asarray(np.ma.getdata(value))
    if isinstance(value, np.ndarray):
        if value.ndim:
            return value  # its dtype and shape are checked against the PV by coerce
        value = value[()]  # a 0-d array: the scalar it holds (p4p refuses 0-d arrays)
    if isinstance(value, (list, tuple)):
        elements = [_element(k, v) for k, v in enumerate(value)]
        return tuple(elements) if isinstance(value, tuple) else elements
    try:
        return _plain(value)
    except _Unfit as why:
        raise ValueError(f"{show(value)} {why}") from None


def _element(index: int, value: Any) -> Any:
    """One element of a list or tuple, as `normalize` gives a scalar; what only the PV's kind
    can judge (bytes, nested lists, Decimal) is left for `coerce`."""
    if isinstance(value, np.ma.MaskedArray) and value.ndim == 0:
        if np.ma.getmaskarray(value).any():
            raise ValueError(f"element {index} is masked: it holds no value")
        value = np.ma.getdata(value)[()]
    if isinstance(value, (list, tuple, np.ndarray, bytes, bytearray, memoryview)):
        return value
    try:
        return _plain(value)
    except _Unfit as why:
        raise ValueError(f"element {index} ({show(value)}) {why}") from None


def _plain(value: Any) -> Any:
    """The plain scalar `value` means; _Unfit why not."""
    if value is None:
        raise _Unfit("is not a value")
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.generic):
        return _from_numpy(value)
    if isinstance(value, int):  # int.__int__: the number it holds, whatever __int__ says
        return int.__int__(value)
    if isinstance(value, float):  # the same: a float subclass's __float__ may say anything
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise _Unfit(f"({type(value).__name__}) is bytes, not text: decode it first")
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise _Unfit("is not a finite number")
        return decimal.Decimal(value)  # an exact copy: a subclass's methods are not called again
    if isinstance(value, fractions.Fraction):
        return fractions.Fraction(value.numerator, value.denominator)
    if isinstance(value, numbers.Number) and not isinstance(value, numbers.Real):
        raise _Unfit("is a complex number")
    if isinstance(value, numbers.Integral):
        return _call(operator.index, value, int)
    if isinstance(value, numbers.Rational):
        return fractions.Fraction(_call(operator.index, value.numerator, int),
                                  _call(operator.index, value.denominator, int))
    if isinstance(value, numbers.Real):
        return _call(float, value, float)  # what it says it is: the only way to ask it
    raise _Unfit(f"({type(value).__name__}) is not a number, string or array")


def _call(convert: Any, value: Any, kind: type) -> Any:
    try:
        result = convert(value)
    except Exception as exc:  # noqa: BLE001 - a number type whose conversion raises: say so
        raise _Unfit(f"({type(value).__name__}) cannot be read as a number: "
                     f"{type(exc).__name__}: {exc}") from None
    if type(result) is not kind:
        raise _Unfit(f"({type(value).__name__}) cannot be read as a number: "
                     f"it converts to {type(result).__name__}")
    return result


def _from_numpy(value: np.generic) -> Any:
    if isinstance(value, (np.datetime64, np.timedelta64)):  # a timedelta64 is a numpy integer
        raise _Unfit(f"({type(value).__name__}) is a time, not a number")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        number = float(value)
        if math.isinf(number) and np.isfinite(value):  # a long double beyond a double's range
            raise _Unfit("is beyond the range of a double")
        return number
    if isinstance(value, np.complexfloating):
        raise _Unfit("is a complex number")
    if isinstance(value, np.str_):
        return str.__str__(value)
    if isinstance(value, np.bytes_):
        raise _Unfit(f"({type(value).__name__}) is bytes, not text: decode it first")
    raise _Unfit(f"({type(value).__name__}) is not a number, string or array")


# ---- against the PV ---------------------------------------------------------------------------------

_EXACT = (fractions.Fraction, decimal.Decimal)


def _number(value: Any, info: PvInfo) -> Any:
    """A finite real number from a normalized `value` (int, float, Fraction or Decimal)."""
    if isinstance(value, str):
        raise ValueError(f"{show(value)} is a string, but the PV holds a number")
    if isinstance(value, (list, tuple, np.ndarray)):
        raise ValueError(f"{show(value)} is an array, but the PV holds a single number")
    if isinstance(value, bool) and info.kind == "float":
        raise ValueError(f"{value!r} is a bool, but the PV holds a floating-point number")
    if isinstance(value, int):
        # Python ints are unbounded: math.isfinite/float() would raise OverflowError
        if info.kind == "float" and abs(value) > _FLOAT_MAX_INT:
            raise ValueError(f"an integer of {len(str(abs(value)))} digits is beyond float range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return value
    if isinstance(value, _EXACT):
        return value
    raise ValueError(f"{show(value)} ({type(value).__name__}) is not a number")


def _to_float(value: Any, code: str) -> float:
    """`value` as the double (or float32, code "f") the PV will hold; ValueError beyond its range."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if math.isinf(number):
        raise ValueError(f"{show(value)} is beyond the range of a double")
    if code == "f" and abs(number) > _FLOAT32_MAX and not is_float32(number):
        raise ValueError(f"{show(value)} is beyond the range of a float32")
    return number


def _whole(value: Any) -> int | None:
    """The int a number is exactly, or None when it is not a whole number."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, fractions.Fraction):
        return value.numerator if value.denominator == 1 else None
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else None
    return None


def _check_limits(value: float, info: PvInfo) -> None:
    if info.limits is not None and not info.limits[0] <= value <= info.limits[1]:
        low, high = info.limits
        raise ValueError(f"{show(value)} is outside the PV's control limits [{low:g}, {high:g}]")


def _check_int(value: Any, code: str) -> int:
    number = _whole(value)
    if number is None:
        raise ValueError(f"{show(value)} is not a whole number, but the PV holds integers")
    limits = np.iinfo(INT_TYPES[code])
    if not limits.min <= number <= limits.max:
        raise ValueError(f"{number} does not fit the PV's integer type (range {limits.min}..{limits.max})")
    return number


def _is_bit(value: Any) -> bool:
    """True for True/False and for numbers equal to 0 or 1."""
    return isinstance(value, (bool, int, float, *_EXACT)) and value in (0, 1)


def coerce(value: Any, info: PvInfo) -> Any:
    """Check a normalized input against the PV and return the value to put; ValueError says why not."""
    kind = info.kind
    if kind == "float":
        number = _to_float(_number(value, info), info.code)
        _check_limits(number, info)
        return number
    if kind == "int":
        whole = _check_int(_number(value, info), info.code)
        _check_limits(whole, info)
        return whole
    if kind == "bool":
        if _is_bit(value):
            return bool(value)
        raise ValueError(f"{show(value)} is not a bool (True/False or 0/1)")
    if kind == "string":
        if isinstance(value, str):
            _check_text(value, show(value))
            return value
        raise ValueError(f"{show(value)} ({type(value).__name__}) is not a string, but the PV holds one")
    if kind == "enum":
        return _coerce_enum(value, info)
    if kind == "array":
        return coerce_array(value, info)
    if kind == "string_array":
        return _coerce_strings(value)
    return value  # a structure we do not know: let p4p and the server judge


def _check_text(text: str, shown: str) -> None:
    # NUL ends the string on the wire (silent truncation); a lone surrogate has no UTF-8
    bad = next((c for c in text if c == "\x00" or unicodedata.category(c) == "Cs"), None)
    if bad is not None:
        raise ValueError(f"{shown} contains the character {bad!r}, which PVAccess cannot carry")


def _coerce_strings(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple, np.ndarray)) or (isinstance(value, np.ndarray) and value.ndim != 1):
        raise ValueError(f"{show(value)} is not a list of strings, but the PV holds strings")
    texts = []
    for k, element in enumerate(value):
        if isinstance(element, np.str_):
            element = str.__str__(element)
        if not isinstance(element, str):
            raise ValueError(f"{show(value)} is not a list of strings: element {k} ({show(element)}) "
                             "is not a string")
        _check_text(element, f"element {k} ({show(element)})")
        texts.append(element)
    return texts


def _coerce_enum(value: Any, info: PvInfo) -> str | int:
    choices = ", ".join(repr(c) for c in info.choices)
    if isinstance(value, str):
        if value in info.choices:
            return value
        raise ValueError(f"{value!r} is not one of the PV's choices ({choices})")
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(info.choices):
            return value
        raise ValueError(f"index {value} is not a valid choice index (0..{len(info.choices) - 1})")
    raise ValueError(f"{show(value)} is neither a choice ({choices}) nor a choice index")
