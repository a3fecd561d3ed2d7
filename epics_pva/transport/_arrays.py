"""Whether a numeric array PV can hold an input, element by element, and the array to put.

A list or tuple (its elements already as `normalize` gives them) is checked element by
element and named by the first element that does not fit; a numpy array by its dtype and
values at once. Bools go only to bool arrays, strings and Fraction/Decimal elements to none,
NaN and infinities nowhere; integers must be whole and within the PV's integer type, floats
within a double's (or a float32's) range; the control limits hold for every element.
"""

from __future__ import annotations

import decimal
import fractions
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..results import show
from ._values import FLOAT_TYPES, INT_TYPES, PvInfo

__all__ = ["coerce_array"]


def coerce_array(value: Any, info: PvInfo) -> np.ndarray:
    """The array to put for a numeric array PV (type code "a?", "ad", "ai", ...); ValueError why not."""
    code = info.code[1:]
    if isinstance(value, (list, tuple)):
        array = _from_elements(value, code)
    elif isinstance(value, np.ndarray):
        array = _from_ndarray(value, code)
    else:
        raise ValueError(f"{show(value)} is a single value, but the PV holds an array")
    if info.limits is not None and array.size and code != "?":
        outside = (array < info.limits[0]) | (array > info.limits[1])
        if outside.any():
            first = int(np.argmax(outside))
            low, high = info.limits
            raise ValueError(f"element {first} ({array[first]:g}) is outside the PV's control limits "
                             f"[{low:g}, {high:g}]")
    return array


def _target(code: str) -> Any:
    return bool if code == "?" else INT_TYPES.get(code) or FLOAT_TYPES.get(code, np.float64)


def _from_elements(values: Sequence[Any], code: str) -> np.ndarray:
    numbers: list[Any] = []
    for k, element in enumerate(values):
        named = f"element {k} ({show(element)})"
        if isinstance(element, (list, tuple, np.ndarray)):
            raise ValueError(f"the array has {_shape(values)}, but the PV holds a 1-d array: "
                             f"{named} is itself an array")
        if isinstance(element, str):
            raise ValueError(f"{named} is a string, but the PV holds numbers")
        if isinstance(element, (fractions.Fraction, decimal.Decimal)):
            raise ValueError(f"{named} is not a plain number: give it as a float or an int")
        if not isinstance(element, (bool, int, float)):
            raise ValueError(f"{named} is not a number")
        if code == "?":
            if element not in (0, 1):
                raise ValueError(f"{named} is not a bool (True/False or 0/1)")
            numbers.append(bool(element))
            continue
        if isinstance(element, bool):
            raise ValueError(f"{named} is a bool, but the PV holds numbers")
        numbers.append(element)
    if code == "?":
        return np.array(numbers, dtype=bool)
    if any(isinstance(n, float) and not math.isfinite(n) for n in numbers):
        raise ValueError(f"{show(values)} contains NaN or infinite elements")
    if code in INT_TYPES:
        limits = np.iinfo(INT_TYPES[code])
        wholes = []
        for n in numbers:
            if isinstance(n, float) and not n.is_integer():
                raise ValueError(f"{show(values)} has elements that are not whole numbers")
            wholes.append(int(n))
        if wholes and (min(wholes) < limits.min or max(wholes) > limits.max):
            raise ValueError(f"{show(values)} has elements outside the PV's integer type range")
        return np.array(wholes, dtype=INT_TYPES[code])
    floats = []
    for k, n in enumerate(numbers):
        try:
            floats.append(float(n))
        except OverflowError:
            raise ValueError(f"element {k} ({show(n)}) is beyond the range of a double") from None
    return _as_floats(np.array(floats, dtype=np.float64), code)


def _shape(values: Sequence[Any]) -> str:
    """ "shape (2, 1)" of a nested list, or "more than one dimension" when it has none."""
    try:
        return f"shape {np.shape(values)}"
    except (ValueError, RecursionError, TypeError):  # ragged, or nested too deep to look at
        return "more than one dimension"


def _as_floats(array: np.ndarray, code: str) -> np.ndarray:
    """A float64 array of finite values as the PV's float type; ValueError naming an element beyond it."""
    if code == "f":
        with np.errstate(over="ignore"):
            narrowed = array.astype(np.float32)
        beyond = ~np.isfinite(narrowed)
        if beyond.any():
            k = int(np.argmax(beyond))
            raise ValueError(f"element {k} ({show(float(array[k]))}) is beyond the range of a float32")
        return narrowed
    return array


def _from_ndarray(array: np.ndarray, code: str) -> np.ndarray:
    if array.ndim != 1:
        raise ValueError(f"the array has shape {array.shape}, but the PV holds a 1-d array")
    kind = array.dtype.kind
    if kind == "b":
        if code != "?":
            raise ValueError(f"{show(array)} holds bools, but the PV holds numbers")
        return array.astype(bool)
    if kind == "c":
        raise ValueError(f"{show(array)} holds complex numbers")
    if array.size and kind not in "iuf":
        raise ValueError(f"{show(array)} has elements that are not numbers ({array.dtype})")
    if not array.size:
        return array.astype(_target(code))
    if kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{show(array)} contains NaN or infinite elements")
    if code == "?":
        bits = (array == 0) | (array == 1)
        if not bits.all():
            k = int(np.argmax(~bits))
            raise ValueError(f"element {k} ({show(array[k].item())}) is not a bool (True/False or 0/1)")
        return array.astype(bool)
    if code in INT_TYPES:
        limits = np.iinfo(INT_TYPES[code])
        if kind == "f":
            if not np.all(array == np.round(array)):
                raise ValueError(f"{show(array)} has elements that are not whole numbers")
            # as floats, exactly: [min, max + 1) holds every whole number the type can hold
            if array.min() < float(limits.min) or array.max() >= float(limits.max) + 1:
                raise ValueError(f"{show(array)} has elements outside the PV's integer type range")
        elif int(array.min()) < limits.min or int(array.max()) > limits.max:
            raise ValueError(f"{show(array)} has elements outside the PV's integer type range")
        return array.astype(INT_TYPES[code])
    with np.errstate(over="ignore"):
        doubles = array.astype(np.float64)
    if not np.all(np.isfinite(doubles)):  # a long double beyond a double's range
        k = int(np.argmax(~np.isfinite(doubles)))
        raise ValueError(f"element {k} is beyond the range of a double")
    return _as_floats(doubles, code)
