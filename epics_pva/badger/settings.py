"""Interface settings from environment variables, for Badger's argument-less construction.

Precedence, highest first:

1. ``EPICS_PVA_INTERFACE_READ_ONLY`` set true forces read-only, whatever an argument, a saved
   routine or a later assignment says (a dry run on a live machine must not write);
2. arguments given to the constructor;
3. the other ``EPICS_PVA_INTERFACE_*`` variables;
4. the defaults of ``epics_pva.Interface``.

The PVAccess client itself reads the standard ``EPICS_PVA_*`` variables (address list,
ports) as usual. This module does not import Badger.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

READ_ONLY_VARIABLE = "EPICS_PVA_INTERFACE_READ_ONLY"

#: field name -> environment variable
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "read_only": READ_ONLY_VARIABLE,
    "parallel": "EPICS_PVA_INTERFACE_PARALLEL",
    "timeout": "EPICS_PVA_INTERFACE_TIMEOUT",
    "put_attempts": "EPICS_PVA_INTERFACE_PUT_ATTEMPTS",
    "retry_delay": "EPICS_PVA_INTERFACE_RETRY_DELAY",
    "nan_on_read_error": "EPICS_PVA_INTERFACE_NAN_ON_READ_ERROR",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(variable: str, text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(
        f"{variable}={text!r} is not a yes/no value: use one of {sorted(_TRUE)} or {sorted(_FALSE)}"
    )


def _number(variable: str, text: str, kind: type, minimum: float, strict: bool) -> Any:
    try:
        value = kind(text.strip())
    except ValueError:
        raise ValueError(f"{variable}={text!r} is not a{'n integer' if kind is int else ' number'}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{variable}={text!r} must be {bound}")
    return value


_PARSERS = {
    "read_only": _bool,
    "parallel": _bool,
    "nan_on_read_error": _bool,
    "timeout": lambda var, text: _number(var, text, float, 0.0, strict=True),
    "put_attempts": lambda var, text: _number(var, text, int, 1, strict=False),
    "retry_delay": lambda var, text: _number(var, text, float, 0.0, strict=False),
}


def settings_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The interface settings given by ``EPICS_PVA_INTERFACE_*`` variables (empty ones ignored).

    Raises ValueError naming the variable when a value cannot be understood.
    """
    environ = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    for field, variable in ENVIRONMENT_VARIABLES.items():
        text = environ.get(variable, "")
        if text.strip():
            settings[field] = _PARSERS[field](variable, text)
    return settings


def read_only_forced(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``EPICS_PVA_INTERFACE_READ_ONLY`` is set to a true value.

    A value that is not a clear yes/no also counts as forcing read-only: when in doubt, do
    not write to the machine. (Construction still reports the bad value as an error.)
    """
    environ = os.environ if environ is None else environ
    text = environ.get(READ_ONLY_VARIABLE, "")
    if not text.strip():
        return False
    try:
        return _bool(READ_ONLY_VARIABLE, text)
    except ValueError:
        return True
