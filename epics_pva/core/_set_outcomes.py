"""The outcome of one PV of a set that did not go as planned: its SetResult, or its PutError."""

from __future__ import annotations

import logging
import time
from typing import Any

from p4p.client.raw import RemoteError

from ..errors import JournalError, PutError, StrangerServerError
from ..results import SetResult, Status, show

__all__ = ["not_journaled", "put_error", "unexpected"]

_log = logging.getLogger("epics_pva.interface")  # the Interface's one logger, as operators name it


def not_journaled(pv: str, value: Any, exc: JournalError, attempts: int, start: float) -> SetResult:
    """The outcome of a put not sent because its journal line could not be written."""
    error = PutError(pv, value, f"put not sent: {exc}", attempts)
    _log.error("%s", error)
    return SetResult(pv, value, Status.FAILED, attempts, error=error, elapsed=time.monotonic() - start)


def unexpected(pv: str, value: Any, exc: Exception) -> SetResult:
    """The outcome of a PV whose put or check raised what nothing expected: failed, saying so."""
    _log.error("setting %s = %s raised %r", pv, show(value), exc, exc_info=exc)
    error = PutError(pv, value, f"unexpected error: {type(exc).__name__}: {exc}", attempts=1)
    error.__cause__ = exc
    return SetResult(pv, value, Status.FAILED, 1, error=error)


def put_error(pv: str, value: Any, exc: BaseException, attempts: int) -> PutError:
    """The error for a put that failed for a reason other than a timeout (never retried)."""
    if isinstance(exc, StrangerServerError):
        return StrangerServerError(pv, value, exc.reason, attempts, sent=exc.sent)
    if isinstance(exc, RemoteError):
        return PutError(pv, value, f"put rejected by the server: {exc}", attempts)
    if isinstance(exc, (ValueError, TypeError)):
        return PutError(pv, value, f"value does not fit the PV: {exc}", attempts)
    return PutError(pv, value, f"put failed: {type(exc).__name__}: {exc}", attempts)
