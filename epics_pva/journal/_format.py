"""The journal's line vocabulary: event and outcome names, and the lossless JSON form of values.

Shared by the writer (journal.py) and the reader (journal_read.py), so both spell a line alike.
Values are encoded losslessly: numpy scalars as Python numbers, numpy arrays as lists,
non-finite floats as ``{"$float": "NaN" | "Infinity" | "-Infinity"}``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["encode_value", "decode_value", "wire_fields", "EVENTS", "OUTCOMES", "WIRE_FIELDS", "NOT_SENT",
           "REJECTED"]

BEFORE, PUT, OUTCOME, VALIDATION, READ_ONLY = "before", "put", "outcome", "validation", "read_only"
INTERRUPTED = "interrupted"  # the call was interrupted (KeyboardInterrupt, ...) during its puts
TRUNCATED = "truncated"  # written by a writer that found the previous line cut off
EVENTS = (BEFORE, PUT, OUTCOME, VALIDATION, READ_ONLY, INTERRUPTED)
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
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_value(value: Any) -> Any:
    """A JSON-ready form of a PV value or validation result, decoded back by decode_value.

    Non-finite floats become tagged objects (JSON has no NaN); numpy scalars become Python
    numbers; arrays, tuples and lists become lists; anything else unknown its tagged repr.
    """
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    if isinstance(value, (numbers.Integral, np.integer)):
        return int(value)
    if isinstance(value, (numbers.Real, np.floating)):
        number = float(value)
        if math.isfinite(number):
            return number
        return {_FLOAT_TAG: "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")}
    if isinstance(value, str):
        return str(value)
    if isinstance(value, np.ndarray):
        return [encode_value(v) for v in value.tolist()] if value.ndim else encode_value(value.item())
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, Mapping):
        encoded = {str(k): encode_value(v) for k, v in value.items()}
        # a dict that looks like one of our tags is wrapped, so decoding gives it back unchanged
        return {_DICT_TAG: encoded} if any(k.startswith("$") for k in encoded) else encoded
    return {_REPR_TAG: repr(value)}


def decode_value(value: Any) -> Any:
    """The value encode_value was given (arrays come back as lists, unknown objects as repr str)."""
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == _FLOAT_TAG and inner in _NON_FINITE:
                return _NON_FINITE[inner]
            if key == _DICT_TAG and isinstance(inner, dict):
                return {k: decode_value(v) for k, v in inner.items()}
            if key == _REPR_TAG and isinstance(inner, str):
                return inner
        return {k: decode_value(v) for k, v in value.items()}
    return value
