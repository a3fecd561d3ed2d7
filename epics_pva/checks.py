"""Checks made on a set_values call before anything is sent: its configs and their functions."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidInputError

__all__ = ["ValidationFunction", "check_configs"]

_log = logging.getLogger(__name__)

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


def check_configs(
    inputs: Mapping[str, Any], configs: Mapping[str, Any] | None
) -> dict[str, ValidationFunction | None]:
    """The validation function of each input PV; InvalidInputError if configs is malformed.

    Each function's signature is bound to the call's keywords first, so a function missing
    an argument (say a partial of wait_for_readback without `tolerance`) is refused before
    any put is sent, not found after the machine has moved.
    """
    if configs is None:
        return {}
    if not isinstance(configs, Mapping):
        raise InvalidInputError(
            {"configs": f"expected a dict of PV name -> function, not {type(configs).__name__}"})
    problems = {
        pv: why for pv, fn in configs.items()
        if pv in inputs and fn is not None and (why := _cannot_call(fn)) is not None
    }
    if problems:
        raise InvalidInputError(problems)
    unused = [pv for pv in configs if pv not in inputs]
    if unused:  # normal for Badger: a routine often sets a subset of the variables
        _log.debug("no input for configs key(s) %s: their validation is not run", unused)
    return {pv: fn for pv, fn in configs.items() if pv in inputs}
