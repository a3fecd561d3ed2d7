"""The set side of an Interface: inputs checked, journaled, put with retries, validated, reported.

Interface.set_values and set_value hand their work to one SetPath each; their docstrings
there say what a caller sees. Every PV's outcome is a SetResult, never an exception.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Future
from typing import Any

from p4p.client.thread import Context, RemoteError

from .._cancel import pause
from ..errors import (
    ContextClosedError,
    EpicsPvaError,
    InvalidInputError,
    JournalError,
    NotConnectedError,
    PutError,
    PutTimeoutError,
    RehearsalError,
    StrangerServerError,
    ValidationError,
)
from ..journal import CallJournal, JournalFile, classify, start_or_refuse
from ..results import SetResult, Status, show
from ..transport import (
    Connection,
    MetadataCache,
    PvInfo,
    check_name,
    closed_error,
    coerce,
    is_closed,
    normalize,
    put_many,
)
from ._guard import WriteMode, announce
from ._rehearsal import identity_problems, prove_on_the_wire, settings_problems
from ._settings import Settings
from ._time_limit import TimeLimit
from ._validation import ValidationFunction, check_configs, recording_traces

__all__ = ["SetPath"]

_log = logging.getLogger("epics_pva.interface")  # the Interface's one logger, as operators name it

SET, FAILED, NOT_ATTEMPTED, READ_ONLY = Status.SET, Status.FAILED, Status.NOT_ATTEMPTED, Status.READ_ONLY
_NOT_SENT = object()  # marks "no first put was sent on this PV's behalf yet"


class SetPath:
    """Sets PVs through an Interface's connection, checked against its monitors, into its journal."""

    def __init__(self, settings: Settings, connection: Connection, monitors: MetadataCache,
                 time_limit: TimeLimit, decide: Callable[[], WriteMode]) -> None:
        self.settings = settings
        self._decide = decide  # the write guard, asked at every call
        self._connection = connection
        self._monitors = monitors
        self._time_limit = time_limit
        # the journal's lock waits last at most the timeout; each call records its wire settings
        self.journal = JournalFile(settings.journal, settings.journal_fsync, wire_settings(settings),
                                   settings.timeout)

    def set(
        self, inputs: Mapping[str, Any], configs: Mapping[str, ValidationFunction | None] | None
    ) -> dict[str, SetResult]:
        """Check, then set (or in read-only mode, log) the inputs; never raises for a PV failure.

        The write guard decides first, from the switches as they are now, whether this call
        may write and how (read-only, rehearsal); nothing below reads the switches itself.
        """
        start = time.monotonic()
        mode = self._decide()
        announce(mode)
        settings = mode.settings
        if not isinstance(inputs, Mapping):
            raise InvalidInputError(
                {"inputs": f"expected a dict of PV name -> value, not {type(inputs).__name__}"})
        functions = check_configs(inputs, configs)
        if not inputs:
            _log.info("set_values called with no inputs: nothing to set")
            return {}
        if mode.refusal is not None and not settings.read_only:
            raise RehearsalError({"rehearsal": mode.refusal}, inputs)
        rehearsal = settings.rehearsal_id if settings.rehearsal and not settings.read_only else None
        if rehearsal is not None:
            # before any context exists with these settings: a refused one must reach nothing
            problems = settings_problems(self._connection.client_conf(), settings.rehearsal_allow)
            if problems:
                raise RehearsalError(problems, inputs)
        journal = self.journal.open_call(inputs, wire_settings(settings))  # as the guard decided
        context = self._connection.context()
        planned = self._prepare(context, inputs, rehearsal)
        if settings.read_only:
            _log.info("read-only: would set %s",
                      ", ".join(f"{pv} = {show(v)}" for pv, v in planned.items()))
            start_or_refuse(lambda: journal.read_only(planned), planned)
            return {pv: SetResult(pv, v, READ_ONLY) for pv, v in planned.items()}
        if journal:
            values, errors = self._values_before(planned)
            start_or_refuse(lambda: journal.before(values, errors), planned)
        with journal.guard():  # interrupted: waits cancelled, an "interrupted" line, re-raised
            if self.settings.parallel and len(planned) > 1:
                results = self._set_parallel(context, planned, functions, journal, rehearsal)
            else:
                results = self._set_in_order(context, planned, functions, journal, rehearsal)
        _refuse_if_nothing_reached_the_soft_ioc(results, inputs)
        counts = {s: sum(r.status == s for r in results.values()) for s in (SET, FAILED, NOT_ATTEMPTED)}
        _log.info(
            "set %d PV(s) in %.3f s (%s): %d set, %d failed, %d not attempted",
            len(results), time.monotonic() - start,
            "parallel" if self.settings.parallel else "in order",
            counts[SET], counts[FAILED], counts[NOT_ATTEMPTED],
        )
        return results

    @staticmethod
    def _wire_proof(rehearsal: str | None) -> Any:
        """In rehearsal mode (`rehearsal` the soft IOC's id), the check each put makes of its
        server before it is sent (else None)."""
        return prove_on_the_wire(rehearsal) if rehearsal is not None else None

    def _values_before(self, planned: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Each PV's value as its monitor gave it to the input check ({pv: value}, {pv: why none}).

        No extra read: the values the check saw, just before the puts.
        """
        values = self._monitors.latest(planned)
        errors = {pv: "no value from its monitor" for pv in planned if pv not in values}
        return values, errors

    def _prepare(self, context: Context, inputs: Mapping[str, Any], rehearsal: str | None) -> dict[str, Any]:
        """Check every input against its PV's monitor and return the values to put.

        Raises InvalidInputError (NotConnectedError if a PV cannot be reached) listing every
        bad input, with every PV's outcome in `.results`; nothing has been sent then.
        """
        problems: dict[str, str] = {}
        staged: dict[str, Any] = {}
        for pv, value in inputs.items():
            why = check_name(pv)
            if why is not None:
                problems[pv if isinstance(pv, str) else show(pv)] = why
                continue
            try:
                staged[pv] = normalize(value)
            except ValueError as exc:
                problems[pv] = str(exc)
        planned: dict[str, Any] = {}
        infos, unreachable = self._describe(context, list(staged))
        if rehearsal is not None:
            # each PV's server, as its monitor last pushed it (again after every reconnect)
            doubts = identity_problems(infos, staged, rehearsal, unreachable)
            if doubts:
                raise RehearsalError(doubts, inputs)
        for pv, info in infos.items():
            try:
                planned[pv] = coerce(staged[pv], info)
            except ValueError as exc:
                problems[pv] = str(exc)
        problems.update(unreachable)
        if problems:
            results = {}
            for pv, value in inputs.items():
                key = pv if isinstance(pv, str) else show(pv)
                reason = problems.get(key) or f"not sent: {len(problems)} other input(s) refused"
                results[key] = SetResult(key, value, NOT_ATTEMPTED, reason=reason)
            refused = NotConnectedError if unreachable else InvalidInputError
            raise refused({k: problems[k] for k in results if k in problems}, results=results)
        return {pv: planned[pv] for pv in inputs}

    def _describe(self, context: Context, names: list[str]) -> tuple[dict[str, PvInfo], dict[str, str]]:
        """What each PV accepts (type, limits) from its monitor, and why the others cannot be set.

        A PV seen before costs no round trip; new ones are subscribed concurrently and
        waited for, as are disconnected ones, at most `timeout` seconds in all.
        """
        found = self._monitors.lookup(context, names, self.settings.timeout)
        return found.infos, found.problems

    def _set_in_order(
        self, context: Context, planned: Mapping[str, Any],
        functions: Mapping[str, ValidationFunction | None], journal: CallJournal | None = None,
        rehearsal: str | None = None,
    ) -> dict[str, SetResult]:
        """Set PVs one after the other, stopping at the first failure."""
        results: dict[str, SetResult] = {}
        failed = False
        for pv, value in planned.items():
            if failed:
                results[pv] = SetResult(pv, value, NOT_ATTEMPTED,
                                        reason="sequential mode stops at the first failure")
                continue
            try:
                results[pv] = self._set_one(context, pv, value, functions.get(pv), journal=journal,
                                            rehearsal=rehearsal)
            except Exception as exc:  # noqa: BLE001 - a bug or p4p surprise: this PV's outcome
                results[pv] = _unexpected(pv, value, exc)
            failed = results[pv].status == FAILED
        return results

    def _set_parallel(
        self, context: Context, planned: Mapping[str, Any],
        functions: Mapping[str, ValidationFunction | None], journal: CallJournal | None = None,
        rehearsal: str | None = None,
    ) -> dict[str, SetResult]:
        """Send every first put at once (one p4p multi-put), then retry and validate each PV in its task.

        A slow or timed-out PV delays no other PV's put; each PV's retries and validation run
        concurrently in the pool, so the call lasts about as long as its slowest PV.
        """
        start = time.monotonic()
        timeout = self.settings.timeout
        journal = journal if journal is not None else CallJournal(None)
        unsent: dict[str, SetResult] = {}
        for pv in planned:  # each put line is written before any put is sent
            try:
                journal.put(pv, planned[pv], 1)
            except JournalError as exc:
                unsent[pv] = _not_journaled(pv, planned[pv], exc, 0, start)
        names = [pv for pv in planned if pv not in unsent]
        if _log.isEnabledFor(logging.DEBUG):  # show() of every value only when it is logged
            for pv in names:
                _log.debug("put %s = %s (attempt 1 of %d)", pv, show(planned[pv]), self.settings.put_attempts)
        try:
            replies: list[Any] = (put_many(context, names, [planned[pv] for pv in names], timeout,
                                           self._monitors.infos(names), vet=self._wire_proof(rehearsal)) if names else [])
        except Exception as exc:  # noqa: BLE001 - unexpected: every PV's put failed with it
            replies = [exc] * len(names)
        if journal:
            closed = is_closed(context)
            for pv, reply in zip(names, replies, strict=True):
                journal.outcome(pv, 1, *classify(reply, timeout, closed and reply is not None))
        futures: dict[str, Future[SetResult] | SetResult | None] = {}
        for pv, reply in zip(names, replies, strict=True):
            if reply is None and functions.get(pv) is None:  # done, nothing to validate: no task
                futures[pv] = SetResult(pv, planned[pv], SET, 1, elapsed=time.monotonic() - start)
                continue
            try:
                futures[pv] = self._connection.pool().submit(  # with the call's cancel signal
                    contextvars.copy_context().run,
                    self._set_one, context, pv, planned[pv], functions.get(pv), reply, start, journal,
                    rehearsal)
            except RuntimeError:  # the pool was shut down by a concurrent close()
                futures[pv] = None
        results: dict[str, SetResult] = {}
        for pv in planned:
            if pv in unsent:
                results[pv] = unsent[pv]
                continue
            future = futures[pv]
            try:
                if future is None:
                    raise CancelledError
                results[pv] = future if isinstance(future, SetResult) else future.result()
            except CancelledError:
                value = planned[pv]
                error = PutError(pv, value, "not validated: the interface was closed", attempts=1)
                results[pv] = SetResult(pv, value, FAILED, 1, error=error)
            except Exception as exc:  # noqa: BLE001 - a bug or p4p surprise: this PV's outcome
                results[pv] = _unexpected(pv, planned[pv], exc)
        return results

    def _set_one(
        self, context: Context, pv: str, value: Any, validate: ValidationFunction | None,
        first: Any = _NOT_SENT, start: float | None = None, journal: CallJournal | None = None,
        rehearsal: str | None = None,
    ) -> SetResult:
        """Put one value, retrying timeouts, then validate it; the outcome, never an exception.

        `first` is the outcome of a first put already sent (None: done; an exception: failed).
        """
        start = time.monotonic() if start is None else start
        timeout, allowed = self.settings.timeout, self.settings.put_attempts
        journal = journal if journal is not None else CallJournal(None)
        attempts = 0

        def failed(error: EpicsPvaError) -> SetResult:
            _log.warning("%s", error)
            return SetResult(pv, value, FAILED, attempts, error=error,
                             elapsed=time.monotonic() - start)

        while True:
            attempts += 1
            if first is not _NOT_SENT:
                outcome, first = first, _NOT_SENT
            else:
                try:
                    journal.put(pv, value, attempts)  # before sending: a kill cannot hide the put
                except JournalError as exc:
                    return _not_journaled(pv, value, exc, attempts - 1, start)
                _log.debug("put %s = %s (attempt %d of %d)", pv, show(value), attempts, allowed)
                outcome = put_many(context, [pv], [value], timeout, self._monitors.infos([pv]),
                                   vet=self._wire_proof(rehearsal))[0]
                if journal:
                    journal.outcome(pv, attempts, *classify(
                        outcome, timeout, outcome is not None and is_closed(context)))
            if outcome is None:
                break
            if is_closed(context):  # cut off, not refused: not retried, not the machine
                closed = (outcome if isinstance(outcome, ContextClosedError)
                          else closed_error(f"putting {pv}"))
                return failed(PutError(pv, value, str(closed), attempts))
            if not isinstance(outcome, TimeoutError):
                return failed(_put_error(pv, value, outcome, attempts))
            if attempts >= allowed:
                return failed(PutTimeoutError(pv, value, attempts, timeout))
            _log.warning(
                "put %s = %s timed out after %g s (attempt %d of %d); retrying in %g s",
                pv, show(value), timeout, attempts, allowed, self.settings.retry_delay)
            if pause(self.settings.retry_delay):  # the call was interrupted meanwhile: stop
                return failed(PutError(pv, value, f"interrupted: attempt {attempts + 1} not sent", attempts))
        if validate is None:
            return SetResult(pv, value, SET, attempts, elapsed=time.monotonic() - start)
        # the readback trace a wait_for_readback sees goes into the journal: a lag fit needs it
        with recording_traces() as traces:
            try:
                outcome = self._validate(validate, pv, value, context)
            except (Exception, SystemExit) as exc:  # a validation function may not end the program
                journal.validation(pv, error=exc, trace=traces.last)
                return failed(ValidationError(pv, value, exc))
        journal.validation(pv, result=outcome, trace=traces.last)
        return SetResult(pv, value, SET, attempts, outcome, elapsed=time.monotonic() - start)

    def _validate(self, validate: ValidationFunction, pv: str, value: Any, context: Context) -> Any:
        """Run one validation function, within validation_timeout if set (ValidationTimeout past it)."""
        kwargs = {"set_pv": pv, "set_value": value, "context": context, "timeout": self.settings.timeout}
        limit = self.settings.validation_timeout
        if limit is None:
            return validate(**kwargs)
        return self._time_limit.run(pv, validate, kwargs, limit)


def wire_settings(settings: Settings) -> dict[str, Any]:
    """What the journal records of a call's settings: its prefix and rehearsal (as the guard decided)."""
    return {"prefix": settings.prefix, "rehearsal": settings.rehearsal,
            "rehearsal_id": settings.rehearsal_id}


def _not_journaled(pv: str, value: Any, exc: JournalError, attempts: int, start: float) -> SetResult:
    """The outcome of a put not sent because its journal line could not be written."""
    error = PutError(pv, value, f"put not sent: {exc}", attempts)
    _log.error("%s", error)
    return SetResult(pv, value, FAILED, attempts, error=error, elapsed=time.monotonic() - start)


def _unexpected(pv: str, value: Any, exc: Exception) -> SetResult:
    """The outcome of a PV whose put or check raised what nothing expected: failed, saying so."""
    _log.error("setting %s = %s raised %r", pv, show(value), exc, exc_info=exc)
    error = PutError(pv, value, f"unexpected error: {type(exc).__name__}: {exc}", attempts=1)
    error.__cause__ = exc
    return SetResult(pv, value, FAILED, 1, error=error)


def _put_error(pv: str, value: Any, exc: BaseException, attempts: int) -> PutError:
    """The error for a put that failed for a reason other than a timeout (never retried)."""
    if isinstance(exc, StrangerServerError):
        return StrangerServerError(pv, value, exc.reason, attempts, sent=exc.sent)
    if isinstance(exc, RemoteError):
        return PutError(pv, value, f"put rejected by the server: {exc}", attempts)
    if isinstance(exc, (ValueError, TypeError)):
        return PutError(pv, value, f"value does not fit the PV: {exc}", attempts)
    return PutError(pv, value, f"put failed: {type(exc).__name__}: {exc}", attempts)


def _refuse_if_nothing_reached_the_soft_ioc(results: Mapping[str, SetResult], inputs: Mapping[str, Any]) -> None:
    """Rehearsal: when the wire check stopped every put that was tried before it was first sent,
    nothing was sent, so the call is refused as a whole (RehearsalError), as when the monitors
    already knew. A put stopped only when it was about to go out again (`sent`) had been sent:
    then the call reports each PV's outcome instead."""
    refused = {pv: r.error.reason for pv, r in results.items()
               if isinstance(r.error, StrangerServerError) and not r.error.sent}
    if refused and all(pv in refused or r.status == NOT_ATTEMPTED for pv, r in results.items()):
        raise RehearsalError(refused, inputs)
