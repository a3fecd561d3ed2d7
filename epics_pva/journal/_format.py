"""The journal's line vocabulary: event and outcome names, and the lossless JSON form of values.

Shared by the writer (_writer.py) and the reader (_reader.py), so both spell a line alike.
Values are encoded losslessly: numpy scalars as Python numbers, numpy arrays as lists,
non-finite floats as ``{"$float": "NaN" | "Infinity" | "-Infinity"}``. What cannot be encoded
is recorded, never raised: as ``{"$repr": "<at most 200 characters>"}`` or
``{"$unencodable": "<type>"}`` (read back as the text "unencodable: <type>").
"""

from __future__ import annotations

import math
import numbers
import operator
import reprlib
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["encode_value", "decode_value", "safe_text", "wire_fields", "EVENTS", "OUTCOMES", "WIRE_FIELDS",
           "NOT_SENT", "REJECTED", "REPR_LIMIT"]

BEFORE, PUT, OUTCOME, VALIDATION, READ_ONLY = "before", "put", "outcome", "validation", "read_only"
INTERRUPTED = "interrupted"  # the call was interrupted (KeyboardInterrupt, ...) during its puts
TRUNCATED = "truncated"  # written by a writer that found the previous line cut off
END = "end"  # the call's last line: nothing more of it follows (what lets a reader stop early)
EVENTS = (BEFORE, PUT, OUTCOME, VALIDATION, READ_ONLY, INTERRUPTED, END)
OUTCOMES = ("accepted", "timed_out", "rejected", "failed", "not_attempted", "refused")
NOT_SENT = ("not_attempted", "refused")
"""Outcomes of a put line whose put never left this client (refused before sending)."""
REJECTED = "rejected"
"""The outcome of a put the server received and refused: it changed nothing."""

WIRE_FIELDS = ("prefix", "rehearsal", "rehearsal_id")
"""The settings of the Interface that wrote a call, on its `before` and `read_only` lines: what
the PV names meant on the wire (prefix) and which machine it was allowed to reach (rehearsal)."""



def wire_fields(wire: Mapping[str, Any] | None) -> dict[str, Any]:
    """The wire settings as a line holds them: prefix (str), rehearsal (bool), rehearsal_id (str)."""
    if wire is None:
        return {}
    unknown = set(wire) - set(WIRE_FIELDS)
    if unknown:
        raise ValueError(f"journal: unknown wire setting(s) {sorted(unknown)}; known: {list(WIRE_FIELDS)}")
    return {"prefix": str(wire.get("prefix", "")), "rehearsal": bool(wire.get("rehearsal", False)),
            "rehearsal_id": str(wire.get("rehearsal_id", ""))}


_FLOAT_TAG = "$float"
_DICT_TAG = "$dict"
_REPR_TAG = "$repr"
_UNENCODABLE_TAG = "$unencodable"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

REPR_LIMIT = 200
"""The longest stand-in the journal writes for a value it cannot encode (characters)."""
MAX_DEPTH = 32
"""Containers nested deeper than this are recorded as a bounded repr from there on."""
MAX_INT_BITS = 4096
"""Integers of more bits (about 1,233 digits) are recorded as "unencodable: int": JSON readers
(Python's among them) refuse integers of more than 4,300 digits."""
DECODE_DEPTH = 100
"""A line's value nested deeper than this (more than the encoder ever writes) is refused."""

_short = reprlib.Repr()
_short.maxlevel = 3
_short.maxstring = REPR_LIMIT
_short.maxother = REPR_LIMIT
_short.maxlong = 60


def encode_value(value: Any) -> Any:
    """A JSON-ready form of a PV value or validation result, decoded back by decode_value.

    Never raises: the journal records what it is given, and never fails a PV because of it.
    Non-finite floats become tagged objects (JSON has no NaN); numpy scalars become Python
    numbers; arrays, tuples and lists become lists; a subclass of int, float or str is
    recorded as the number or text it holds (not what its ``__float__`` says). Anything
    else, and whatever cannot be encoded (a repr that raises, lists nested deeper than
    MAX_DEPTH, an int of more than MAX_INT_BITS bits, a mapping whose items raise), becomes
    a tagged repr of at most REPR_LIMIT characters, or "unencodable: <type>" when even that
    fails.
    """
    try:
        return _encode(value, 0)
    except Exception:  # noqa: BLE001 - _encode guards each node; this is the last resort
        return _stand_in(value)


def _encode(value: Any, depth: int) -> Any:
    try:
        if value is None or isinstance(value, (bool, np.bool_)):
            return None if value is None else bool(value)
        if isinstance(value, int):  # int.__int__: the number held, whatever a subclass's __int__ says
            return _integer(int.__int__(value), value)
        if isinstance(value, float):
            return _float(float.__float__(value), value)
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, np.integer):
            return _integer(int(value), value)
        if isinstance(value, np.floating):
            number = float(value)
            if math.isinf(number) and np.isfinite(value):  # a long double beyond a double's range
                return _stand_in(value)
            return _float(number, value)
        if isinstance(value, numbers.Integral):
            return _integer(operator.index(value), value)
        if isinstance(value, numbers.Real):
            number = float(value)
            if type(number) is not float:
                return _stand_in(value)
            return _float(number, value)
        if depth >= MAX_DEPTH:
            return _stand_in(value)
        if isinstance(value, np.ndarray):
            if not value.ndim:
                return _encode(value[()], depth + 1)
            if value.dtype.kind in "biu" or (value.dtype.kind == "f" and value.dtype.itemsize <= 8
                                             and bool(np.isfinite(value).all())):
                return value.tolist()  # plain numbers already: the common case, at C speed
            return [_encode(v, depth + 1) for v in value.tolist()]
        if isinstance(value, (list, tuple)):
            return [_encode(v, depth + 1) for v in value]
        if isinstance(value, Mapping):
            encoded = {_key(k): _encode(v, depth + 1) for k, v in value.items()}
            # a dict that looks like one of our tags is wrapped, so decoding gives it back unchanged
            return {_DICT_TAG: encoded} if any(k.startswith("$") for k in encoded) else encoded
    except Exception:  # noqa: BLE001 - RecursionError, a raising __iter__ or items(): record what it was
        return _stand_in(value)
    return _stand_in(value)


def _integer(number: int, value: Any) -> Any:
    return number if number.bit_length() <= MAX_INT_BITS else {_UNENCODABLE_TAG: type(value).__name__}


def _float(number: float, value: Any) -> Any:
    if math.isfinite(number):
        return number
    return {_FLOAT_TAG: "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")}


def _key(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    text = _short_repr(key)
    return text if text is not None else f"unencodable: {type(key).__name__}"


def _short_repr(value: Any) -> str | None:
    """repr(value), bounded to REPR_LIMIT characters; None when it raises."""
    try:
        # containers through reprlib (bounded, nesting cut off at 3 levels); anything else its own
        # repr, cut: reprlib would hide a repr that raises behind an address
        container = isinstance(value, (list, tuple, dict, set, frozenset))
        text = _short.repr(value) if container else repr(value)
    except Exception:  # noqa: BLE001 - a repr that raises, an int too long to show
        return None
    if not isinstance(text, str):
        return None
    return str.__str__(text)[:REPR_LIMIT]


def _stand_in(value: Any) -> dict[str, str]:
    """What the journal records of a value it cannot encode: its bounded repr, or its type."""
    text = _short_repr(value)
    if text is None:
        return {_UNENCODABLE_TAG: type(value).__name__}
    return {_REPR_TAG: text}


def safe_text(value: Any) -> str:
    """str(value) for a message or reason field; a stand-in when __str__ raises (never raises)."""
    try:
        text = str(value)
        if isinstance(value, BaseException) and not text:
            text = type(value).__name__
        return str.__str__(text)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises still gets a line
        return f"{type(value).__name__} (its text could not be read)"


def decode_value(value: Any, depth: int = 0) -> Any:
    """The value encode_value was given (arrays come back as lists, unknown objects as repr str,
    unencodable ones as "unencodable: <type>"). ValueError for values nested deeper than
    DECODE_DEPTH, which no writer of this journal produces."""
    if depth > DECODE_DEPTH:
        raise ValueError(f"a value nested more than {DECODE_DEPTH} levels deep")
    if isinstance(value, list):
        return [decode_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == _FLOAT_TAG and inner in _NON_FINITE:
                return _NON_FINITE[inner]
            if key == _DICT_TAG and isinstance(inner, dict):
                return {k: decode_value(v, depth + 1) for k, v in inner.items()}
            if key == _REPR_TAG and isinstance(inner, str):
                return inner
            if key == _UNENCODABLE_TAG and isinstance(inner, str):
                return f"unencodable: {inner}"
        return {k: decode_value(v, depth + 1) for k, v in value.items()}
    return value
