"""Validation functions: called after a successful put to check that the machine followed it.

What a set checks of its configs before anything is sent (`check_configs`), how the settings
of a wait_for_readback config are read back from it (`wait_configs`), and which configs the
set path runs as a readback wait of its own instead of a call in a thread (`readback_wait_of`).
wait_for_readback itself, and the traces it records, are in _readback.py.

A validation function is called as ``fn(set_pv=..., set_value=..., context=..., timeout=...)``
with the interface's ``p4p.client.thread.Context``; it returns what it measured or raises.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..errors import InvalidInputError
from ._readback import ReadbackTrace, recording_traces, wait_for_readback, wait_parameters_problem

__all__ = [
    "ReadbackTrace", "ValidationFunction", "WaitConfig", "check_configs", "readback_wait_of",
    "recording_traces", "wait_configs", "wait_for_readback", "wait_parameters_problem",
]

_log = logging.getLogger(__name__)


# ---- what a set checks of its configs before anything is sent ----------------------------------

ValidationFunction = Callable[..., Any]
"""Called as fn(set_pv=..., set_value=..., context=..., timeout=...) after a successful put."""

# what every validation function is called with; the values only matter to bind()
_CALL = {"set_pv": "PV", "set_value": 0.0, "context": None, "timeout": 1.0}


def _cannot_call(fn: Any) -> str | None:
    """Why `fn` cannot be called as a validation function, or None if it can (or cannot be told)."""
    if not callable(fn):
        return f"validation function {fn!r} is not callable"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # some builtins publish no signature: nothing to check before the call
    try:
        signature.bind(**_CALL)
    except TypeError as exc:
        return (f"validation function {fn!r} cannot be called with "
                f"(set_pv=, set_value=, context=, timeout=): {exc}")
    return None


def _wait_parameters(fn: Any) -> dict[str, Any] | None:
    """The parameters a (nested) functools.partial of wait_for_readback binds, or None for any
    other function (and for a partial that cannot bind: _cannot_call says why)."""
    args: list[Any] = []
    keywords: dict[str, Any] = {}
    while isinstance(fn, partial):
        args, keywords = [*fn.args, *args], {**fn.keywords, **keywords}
        fn = fn.func
    if fn is not wait_for_readback:
        return None
    try:
        return dict(inspect.signature(wait_for_readback).bind_partial(*args, **keywords).arguments)
    except TypeError:
        return None


def check_configs(
    inputs: Mapping[str, Any], configs: Mapping[str, Any] | None
) -> dict[str, ValidationFunction | None]:
    """The validation function of each input PV; InvalidInputError if configs is malformed.

    Each function's signature is bound to the call's keywords first, so a function missing
    an argument (say a partial of wait_for_readback without `tolerance`) is refused before
    any put is sent, not found after the machine has moved. The parameters a partial of
    wait_for_readback binds are checked too (a NaN, negative or infinite tolerance, a NaN,
    infinite, negative or zero count_down, a NaN or infinite offset, a readback_pv that is no
    PV name, a parameter of the wrong type), the error naming the PV and the parameter.
    """
    if configs is None:
        return {}
    if not isinstance(configs, Mapping):
        raise InvalidInputError(
            {"configs": f"expected a dict of PV name -> function, not {type(configs).__name__}"})
    problems = {
        pv: why for pv, fn in configs.items()
        if pv in inputs and fn is not None and (why := _cannot_call(fn) or _bad_wait(fn)) is not None
    }
    if problems:
        raise InvalidInputError(problems)
    unused = [pv for pv in configs if pv not in inputs]
    if unused:  # normal for Badger: a routine often sets a subset of the variables
        _log.debug("no input for configs key(s) %s: their validation is not run", unused)
    return {pv: fn for pv, fn in configs.items() if pv in inputs}


def _bad_wait(fn: Any) -> str | None:
    parameters = _wait_parameters(fn)
    return None if parameters is None else wait_parameters_problem(parameters)


# ---- the settings of a wait_for_readback config ---------------------------------------------------

@dataclass(frozen=True)
class WaitConfig:
    """What a wait_for_readback validation of one setpoint was configured with (s, value units)."""

    readback_pv: str
    tolerance: float | None = None
    count_down: float | None = None
    offset: float | None = None


def wait_configs(configs: Mapping[str, Any]) -> dict[str, WaitConfig]:
    """The wait_for_readback settings of each setpoint in a Badger-style configs dict.

    Accepts ``functools.partial(wait_for_readback, readback_pv=..., tolerance=..., ...)``
    (nested partials too), plain dicts with those keys or WaitConfigs; others are skipped.
    """
    found: dict[str, WaitConfig] = {}
    for set_pv, config in configs.items():
        keywords: dict[str, Any] = {}
        if isinstance(config, WaitConfig):
            found[set_pv] = config
            continue
        if isinstance(config, Mapping):
            keywords = dict(config)
        else:
            while isinstance(config, partial):
                keywords = {**config.keywords, **keywords}
                config = config.func
        readback = keywords.get("readback_pv")
        if isinstance(readback, str):
            found[set_pv] = WaitConfig(readback, keywords.get("tolerance"), keywords.get("count_down"),
                                       keywords.get("offset"))
    return found


_WAIT_KEYWORDS = frozenset({"readback_pv", "tolerance", "count_down", "offset"})
_CALL_KEYWORDS = frozenset(_CALL)


def readback_wait_of(fn: Any) -> dict[str, Any] | None:
    """The keywords of a validation that is exactly a wait_for_readback partial (readback_pv,
    tolerance, count_down, offset; nested partials too), or None for any other function.

    Such a validation is run by the set path as a readback wait of its own, on the call's
    thread, instead of a call in a thread: it behaves the same (the same keywords, errors and
    trace). Anything else bound in (positional arguments, other keywords) leaves it a function.
    """
    keywords: dict[str, Any] = {}
    while isinstance(fn, partial):
        if fn.args:
            return None
        keywords = {**fn.keywords, **keywords}
        fn = fn.func
    if fn is not wait_for_readback:
        return None
    wait = {k: v for k, v in keywords.items() if k not in _CALL_KEYWORDS}  # the call's own win
    return wait if set(wait) == _WAIT_KEYWORDS else None
