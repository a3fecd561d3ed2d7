"""The registry of PV types: everything that differs between double, int, string, enum and arrays.

Pure Python (no p4p): the config loader, the model and the p4p wiring look a type up here
instead of comparing type names. Adding a PV type is adding one `PVType` to `PV_TYPES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import PutRefused

__all__ = ["OBSERVABLE_TYPE", "PV_TYPES", "PVType", "pv_type"]


@dataclass(frozen=True)
class PVType:
    """One PV type: its NT code (None: NTEnum), config rules, device coercion and wire forms."""

    name: str
    nt_code: str | None
    numeric: bool
    scalar: bool  # one number (not an array, a string or an enum)
    initial_kinds: tuple[type, ...]  # TOML types accepted for `initial`
    default: Callable[[int | None], Any]  # default initial value, given the array length
    check_initial: Callable[[Any, tuple[str, ...], int | None, tuple[float, float] | None], Any]
    coerce: Callable[[Any, Any], Any]  # (setpoint config, put value) -> stored value, or PutRefused
    to_state: Callable[[Any], Any]  # stored value -> the model's internal state
    render: Callable[[Any], Any]  # model state -> readback value
    takes_choices: bool = False
    takes_length: bool = False
    enum: bool = False

    def post_form(self, value: Any) -> Any:
        """What `SharedPV.post` takes for `value` (an enum posts its index field)."""
        return {"value.index": int(value)} if self.enum else value

    def value_fields(self, value: Any) -> dict[str, Any]:
        """The value field(s) of a full Value holding `value` (for a reopened PV)."""
        return {"value.index": int(value)} if self.enum else {"value": value}

    def initial_fields(self, value: Any, choices: tuple[str, ...]) -> dict[str, Any]:
        """The value field(s) of a PV's first Value: an enum also publishes its choices."""
        return {**self.value_fields(value), "value.choices": list(choices)} if self.enum else {"value": value}


def _within_limits(cfg: Any, number: float) -> float:
    """`number` held within the setpoint's limits: clamped as an ao clamps to DRVL/DRVH, or
    refused when the setpoint's `limit_action` is "reject"."""
    limits = cfg.limits
    if limits is None or limits[0] <= number <= limits[1]:
        return number
    if getattr(cfg, "limit_action", "clamp") == "reject":
        raise PutRefused(f"{cfg.name}: {number!r} is outside the limits [{limits[0]!r}, {limits[1]!r}]")
    return cast(float, min(max(number, limits[0]), limits[1]))


def _number(cfg: Any, value: Any) -> float:
    if isinstance(value, (str, bytes)) or np.ndim(value) != 0:
        raise PutRefused(f"{cfg.name}: {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise PutRefused(f"{cfg.name}: {number!r} is not a finite number")
    return number


def _coerce_double(cfg: Any, value: Any) -> float:
    return _within_limits(cfg, _number(cfg, value))


def _coerce_int(cfg: Any, value: Any) -> int:
    # truncated toward zero, then clamped to whole limits, as a longout stores a put
    number = math.trunc(_number(cfg, value))
    limits = cfg.limits
    if limits is not None and getattr(cfg, "limit_action", "clamp") == "clamp":
        return int(min(max(number, math.ceil(limits[0])), math.floor(limits[1])))
    return int(_within_limits(cfg, number))


def _coerce_array(cfg: Any, value: Any) -> np.ndarray:
    array = np.asarray(value, dtype=float).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise PutRefused(f"{cfg.name}: the array holds values that are not finite")
    if cfg.length is not None and array.size > cfg.length:
        raise PutRefused(f"{cfg.name}: {array.size} elements, at most {cfg.length} allowed")
    if cfg.limits is not None:  # each element clamped (or the whole put refused)
        array = np.array([_within_limits(cfg, float(element)) for element in array], dtype=float)
    return array


def _coerce_enum(cfg: Any, value: Any) -> int:
    index = value
    if isinstance(value, str):
        if value not in cfg.choices:
            raise PutRefused(f"{cfg.name}: {value!r} is not one of {list(cfg.choices)}")
        index = cfg.choices.index(value)
    if not isinstance(index, (int, np.integer)) or not 0 <= index < len(cfg.choices):
        raise PutRefused(f"{cfg.name}: {value!r} is not a valid index of {len(cfg.choices)} choices")
    return int(index)


def _initial_scalar(cast: Callable[[Any], Any]) -> Callable[..., Any]:
    def check(value: Any, choices: Any, length: Any, limits: Any) -> Any:
        value = cast(value)
        if not math.isfinite(value):
            raise ValueError(f"must be finite, got {value!r}")
        if limits is not None and not limits[0] <= value <= limits[1]:
            raise ValueError(f"{value!r} is outside the limits {list(limits)}")
        return value
    return check


def _initial_enum(value: Any, choices: tuple[str, ...], length: Any, limits: Any) -> int:
    if isinstance(value, str):
        if value not in choices:
            raise ValueError(f"{value!r} is not one of the choices {list(choices)}")
        return choices.index(value)
    if not 0 <= value < len(choices):
        raise ValueError(f"index {value} is outside the {len(choices)} choices")
    return int(value)


def _initial_array(value: Any, choices: Any, length: int | None, limits: Any) -> list[float]:
    if len(value) != length or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        raise ValueError(f"must be a list of {length} numbers, got {value!r}")
    if not all(math.isfinite(x) for x in value):
        raise ValueError(f"must hold finite numbers only, got {value!r}")
    return [float(x) for x in value]


def _same(value: Any) -> Any:
    return value


PV_TYPES: dict[str, PVType] = {t.name: t for t in (
    PVType("double", "d", numeric=True, scalar=True, initial_kinds=(int, float), default=lambda n: 0.0,
           check_initial=_initial_scalar(float), coerce=_coerce_double, to_state=float, render=float),
    PVType("int", "i", numeric=True, scalar=True, initial_kinds=(int,), default=lambda n: 0,
           check_initial=_initial_scalar(int), coerce=_coerce_int, to_state=float,
           render=lambda state: int(round(float(state)))),
    PVType("string", "s", numeric=False, scalar=False, initial_kinds=(str,), default=lambda n: "",
           check_initial=lambda value, *_: value, coerce=lambda cfg, value: str(value),
           to_state=_same, render=_same),
    PVType("enum", None, numeric=False, scalar=False, initial_kinds=(int, str), default=lambda n: 0,
           check_initial=_initial_enum, coerce=_coerce_enum, to_state=_same, render=_same,
           takes_choices=True, enum=True),
    PVType("double_array", "ad", numeric=True, scalar=False, initial_kinds=(list,),
           default=lambda n: [0.0] * (n or 1), check_initial=_initial_array, coerce=_coerce_array,
           to_state=lambda value: np.asarray(value, dtype=float).copy(),
           render=lambda state: np.asarray(state, dtype=float), takes_length=True),
)}
"""Every PV type by its config name."""

OBSERVABLE_TYPE = PV_TYPES["double"]
"""The type of every observable (a computed double)."""


def pv_type(name: str) -> PVType:
    """The registered PV type called `name`; ValueError naming the known ones otherwise."""
    try:
        return PV_TYPES[name]
    except KeyError:
        raise ValueError(f"must be one of {', '.join(PV_TYPES)}, got {name!r}") from None
