"""What Badger's Retry/Stop dialog shows of our errors: the PV and the cause, on its first lines.

When ``set_variables`` or ``get_observables`` raises during a run, Badger 1.6 (in its
routine worker) asks Xopt to evaluate the point, and Xopt keeps the exception only as
``traceback.format_exc()`` text. The dialog's main text is then::

    There was an error setting variables or getting observables.

    XoptError: Xopt evaluator caught exception(s):

    Evaluation index 0:
    Traceback (most recent call last):
      ... a dozen lines of Xopt's, Badger's and the environment's frames ...
    epics_pva.errors.SetValuesError: Failed to set 1 of 2 PV(s) ...
      DEMO:Q2:SET = 0.5: put rejected by the server: interlock open

so the one line an operator needs comes last, below the fold of a tall dialog. Python prints
an exception's cause before its own traceback; the plugin therefore gives each error it
raises to Badger a cause that is a one-line summary with no traceback of its own, and the
dialog begins::

    Evaluation index 0:
    epics_pva.badger.PvFailure: DEMO:Q2:SET = 0.5: put rejected by the server: interlock open

    The above exception was the direct cause of the following exception:

    Traceback (most recent call last):
      ...

The exception itself is unchanged (type, message, ``results``, traceback); only the start
of its printed chain gains the summary. It is never raised on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import (
    EpicsPvaError,
    InvalidInputError,
    PutError,
    ReadError,
    RehearsalError,
    SetValuesError,
    ValidationError,
)
from ..results import Status, show

__all__ = ["PvFailure", "lead_with_summary", "summary_of"]


class PvFailure(EpicsPvaError):
    """The one-line summary (per PV) that Badger's dialog shows first: chained as the cause of
    the error the plugin raises, never raised by itself."""


PvFailure.__module__ = "epics_pva.badger"  # printed as epics_pva.badger.PvFailure: ...


def _lines(problems: Mapping[Any, Any]) -> list[str]:
    out = []
    for key, why in problems.items():
        name = key if isinstance(key, str) else show(key)
        text = str(why)
        out.append(text if text.startswith(name) else f"{name}: {text}")
    return out


def summary_of(exc: BaseException) -> str | None:
    """The PVs and causes of one of our errors, one line each; None for an error naming no PV."""
    lines: list[str]
    if isinstance(exc, RehearsalError):
        lines = [f"rehearsal refused the set, nothing was sent: {line}" for line in _lines(exc.problems)]
    elif isinstance(exc, InvalidInputError):  # NotConnectedError too: refused before any put
        lines = [f"refused before any put: {line}" for line in _lines(exc.problems)]
    elif isinstance(exc, SetValuesError):
        lines = [str(r.error) if r.error is not None else f"{r.pv} = {show(r.value)}: failed"
                 for r in exc.results.values() if r.status == Status.FAILED]
        if not lines:
            lines = [f"{r.pv} = {show(r.value)}: not attempted ({r.reason or 'sequential mode'})"
                     for r in exc.results.values() if r.status == Status.NOT_ATTEMPTED]
    elif isinstance(exc, ReadError):
        lines = [f"cannot read {line}" for line in _lines(exc.failures)]
    elif isinstance(exc, (PutError, ValidationError)):
        lines = [str(exc)]
    elif isinstance(exc, EpicsPvaError) and isinstance(problems := getattr(exc, "problems", None), Mapping):
        lines = _lines(problems)  # BoundsError: each PV and why
    else:
        return None
    return "\n".join(lines) if lines else None


def _first_shown(exc: BaseException) -> BaseException:
    """The exception a traceback prints first: the end of the chain of causes (and of
    contexts not suppressed)."""
    seen = {id(exc)}
    while True:
        follow = exc.__cause__
        if follow is None and not exc.__suppress_context__:
            follow = exc.__context__
        if follow is None or id(follow) in seen:
            return exc
        seen.add(id(follow))
        exc = follow


def lead_with_summary(exc: BaseException) -> BaseException:
    """Give `exc` a PvFailure summary as the first exception its printed chain shows; return it.

    Does nothing to an error naming no PV, or to one that already leads with a summary. Any
    causes `exc` has are kept: the summary goes before the first of them.
    """
    first = _first_shown(exc)
    if isinstance(first, PvFailure):
        return exc
    text = summary_of(exc)
    if text is None:
        return exc
    first.__cause__ = PvFailure(text)
    return exc
