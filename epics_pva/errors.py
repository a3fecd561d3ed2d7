"""The exceptions of epics_pva: one small hierarchy whose messages name the PV, the value and the cause.

Messages are written for the operator who reads them in Badger's error dialog::

    EpicsPvaError                 base of everything raised on purpose
    +-- InvalidInputError         refused before anything was sent (also a ValueError);
    |   |                         a set's `results` say every PV was not_attempted, and why
    |   +-- NotConnectedError     ... because PVs were unreachable or disconnected (also a
    |                             SetValuesError: one `except SetValuesError` sees every outcome)
    +-- ReadError                 one or more PVs could not be read
    +-- PutError                  one PV's put failed (rejected, type mismatch, ...)
    |   +-- PutTimeoutError       every attempt of one PV's put timed out (also a TimeoutError)
    +-- ValidationError           the validation function of one PV raised after its put
    +-- SetValuesError            a set_values call had failures; carries every PV's outcome
    |   +-- RehearsalError        rehearsal mode refused a whole set before any put
    +-- ContextClosedError        the client context was closed under an operation (close(), fork)
    +-- BadgerEnvironmentError    a Badger environment cannot be loaded or read (also a ValueError)
    +-- JournalError              the journal file cannot be written or read (also an OSError)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .results import SetResult, Status
from .results import show as _show

__all__ = [
    "EpicsPvaError",
    "InvalidInputError",
    "NotConnectedError",
    "ReadError",
    "PutError",
    "PutTimeoutError",
    "ValidationError",
    "SetValuesError",
    "RehearsalError",
    "StrangerServerError",
    "ContextClosedError",
    "BadgerEnvironmentError",
    "LineWriteError",
    "ValidationTimeout",
    "SetCancelled",
    "JournalError",
]


class EpicsPvaError(Exception):
    """Base class of every error epics_pva raises on purpose."""


class InvalidInputError(EpicsPvaError, ValueError):
    """Inputs refused before any put was sent; `problems` maps each bad PV name (or input) to why.

    From a set, `results` holds every PV's outcome (status not_attempted, `reason` saying why),
    in the order given; it is empty for a refused read or a malformed call.
    """

    _kind = "invalid input(s)"

    def __init__(self, problems: Mapping[str, str], what: str = "set",
                 results: Mapping[str, SetResult] | None = None) -> None:
        self.problems = dict(problems)
        self.results = dict(results or {})
        lines = [f"Refused to {what} anything: {len(self.problems)} {self._kind}"]
        lines += [f"  {name}: {why}" for name, why in self.problems.items()]
        Exception.__init__(self, "\n".join(lines))


class ReadError(EpicsPvaError):
    """Some PVs could not be read; `failures` maps PV -> why, `values` holds the PVs that were read."""

    def __init__(self, failures: Mapping[str, str], values: Mapping[str, Any] | None = None) -> None:
        self.failures = dict(failures)
        self.values = dict(values or {})
        total = len(self.failures) + len(self.values)
        lines = [f"Could not read {len(self.failures)} of {total} PV(s):"]
        lines += [f"  {pv}: {why}" for pv, why in self.failures.items()]
        super().__init__("\n".join(lines))


class PutError(EpicsPvaError):
    """The put of `value` to `pv` failed after `attempts` attempt(s); `reason` says why."""

    def __init__(self, pv: str, value: Any, reason: str, attempts: int = 1) -> None:
        self.pv, self.value, self.reason, self.attempts = pv, value, reason, attempts
        super().__init__(f"{pv} = {_show(value)}: {reason}")


class PutTimeoutError(PutError, TimeoutError):
    """Every one of the `attempts` puts of `value` to `pv` timed out."""

    def __init__(self, pv: str, value: Any, attempts: int, timeout: float) -> None:
        reason = (
            f"put timed out on all {attempts} attempt(s) "
            f"(no completion within {timeout:g} s each)"
        )
        super().__init__(pv, value, reason, attempts)
        self.timeout = timeout


class ValidationError(EpicsPvaError):
    """The put of `value` to `pv` succeeded but its validation function raised `cause`."""

    def __init__(self, pv: str, value: Any, cause: BaseException) -> None:
        self.pv, self.value, self.cause = pv, value, cause
        try:
            detail = str(cause) or type(cause).__name__
        except Exception:  # noqa: BLE001 - an error whose __str__ raises still fails only its PV
            detail = f"{type(cause).__name__} (its text could not be read)"
        super().__init__(f"{pv} = {_show(value)}: validation failed: {detail}")


class SetValuesError(EpicsPvaError):
    """A set_values call had failures; `results` holds every PV's outcome, in the order given."""

    def __init__(self, results: Mapping[str, SetResult]) -> None:
        self.results = dict(results)
        failed = [r for r in self.results.values() if r.status == Status.FAILED]
        skipped = [r for r in self.results.values() if r.status == Status.NOT_ATTEMPTED]
        done = [r for r in self.results.values() if r.status == Status.SET]
        lines = [
            f"Failed to set {len(failed)} of {len(self.results)} PV(s) "
            f"({len(done)} set, {len(skipped)} not attempted):"
        ]
        lines += [f"  {r.error}" for r in failed]
        lines += [
            f"  {r.pv} = {_show(r.value)}: not attempted "
            f"({r.reason or 'sequential mode stops at the first failure'})"
            for r in skipped
        ]
        super().__init__("\n".join(lines))

    @property
    def failed(self) -> dict[str, SetResult]:
        """The outcomes of the PVs that failed."""
        return {pv: r for pv, r in self.results.items() if r.status == Status.FAILED}


class NotConnectedError(InvalidInputError, SetValuesError):
    """A set refused before any put because PVs are unreachable or disconnected (or the context
    was closed under the check).

    `problems` maps each such PV (and any bad input) to why; `results` holds every PV's
    outcome, all not_attempted with their `reason`. Caught as InvalidInputError (nothing was
    sent) and as SetValuesError (every PV's outcome).
    """

    _kind = "refused input(s): PV(s) not connected"

    def __init__(self, problems: Mapping[str, str], what: str = "set",
                 results: Mapping[str, SetResult] | None = None) -> None:
        InvalidInputError.__init__(self, problems, what, results)


class StrangerServerError(PutError):
    """Rehearsal mode: the server a put reached is not the rehearsal's soft IOC, as the put's own
    Get showed on its own connection (after a reconnect the PV's monitor may not know yet), so
    the put was not sent there.

    `sent` is True when this put had already gone out once, to the soft IOC, on a connection
    that dropped before the reply came: its fate there is unknown; only the copy the client
    library would have sent again, to the stranger, was stopped.
    """

    def __init__(self, pv: str, value: Any, reason: str, attempts: int = 1, sent: bool = False) -> None:
        super().__init__(pv, value, reason, attempts)
        self.sent = sent


class RehearsalError(SetValuesError):
    """Rehearsal mode refused a set before any put was sent: `problems` maps each PV (or
    setting) to why.

    Every PV of the call is in `results` as not attempted (`reason` saying why): nothing was sent.
    """

    def __init__(self, problems: Mapping[str, str], inputs: Mapping[str, Any]) -> None:
        self.problems = dict(problems)
        others = f"not sent: rehearsal refused {len(self.problems)} other PV(s) or setting(s)"
        self.results = {
            pv: SetResult(pv, value, Status.NOT_ATTEMPTED, reason=self.problems.get(pv, others))
            for pv, value in inputs.items()}
        lines = [f"Rehearsal refused to set {len(self.results)} PV(s); nothing was sent:"]
        lines += [f"  {why}" for why in self.problems.values()]
        EpicsPvaError.__init__(self, "\n".join(lines))


class BadgerEnvironmentError(EpicsPvaError, ValueError):
    """A Badger environment cannot be loaded or read; the message names it and what is wrong."""


class ContextClosedError(EpicsPvaError):
    """The client context was closed (close() or os.fork() in another thread) under an operation.

    Says nothing about the machine: the operation was cut off, not judged.
    """


class JournalError(EpicsPvaError, OSError):
    """The journal at `path` cannot be written (or read): `reason` says why, `errno` the OS code."""

    def __init__(self, path: Any, reason: str, errno: int | None = None,
                 results: Mapping[str, SetResult] | None = None) -> None:
        super().__init__(f"journal {str(path)!r}: {reason}")
        self.path, self.reason = str(path), reason
        self.errno = errno  # only errno: with strerror set, OSError would rewrite the message
        # from a set refused for it: every PV's outcome (all not_attempted), in the order given
        self.results = dict(results or {})


class LineWriteError(JournalError):
    """A journal line's write failed after it began: the line may be in the file, whole or in
    part (a short write, or a failed fsync). The reader skips a part; a whole line stays."""


class ValidationTimeout(EpicsPvaError, TimeoutError):
    """A validation function was still running when its time limit (seconds) ran out."""


class SetCancelled(EpicsPvaError):
    """A wait given up because the set_values call it worked for was interrupted."""
