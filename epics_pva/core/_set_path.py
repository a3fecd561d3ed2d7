"""The set side of an Interface: inputs checked, journaled, put with retries, validated, reported.

Interface.set_values and set_value hand their work to one SetPath each; their docstrings
there say what a caller sees. Every PV's outcome is a SetResult, never an exception. The
puts, retries and validations of a call are one SetRun (_set_run.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from p4p.client.thread import Context

from ..errors import (
    InvalidInputError,
    NotConnectedError,
    RehearsalError,
    StrangerServerError,
)
from ..journal import CallJournal, JournalFile, start_or_refuse
from ..results import SetResult, Status, show
from ..transport import (
    Connection,
    MetadataCache,
    PvInfo,
    check_name,
    coerce,
    normalize,
)
from ._guard import WriteMode, announce
from ._rehearsal import identity_problems, prove_on_the_wire, settings_problems
from ._set_run import SetRun
from ._settings import Settings
from ._time_limit import TimeLimit
from ._validation import ValidationFunction, check_configs

__all__ = ["SetPath"]

_log = logging.getLogger("epics_pva.interface")  # the Interface's one logger, as operators name it

SET, FAILED, NOT_ATTEMPTED, READ_ONLY = Status.SET, Status.FAILED, Status.NOT_ATTEMPTED, Status.READ_ONLY


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
        with self._monitors.busy():  # the updates its puts cause wait until the set is over
            results, read_only = self._checked_set(inputs, functions, settings, journal, rehearsal)
        if read_only:
            return results
        _refuse_if_nothing_reached_the_soft_ioc(results, inputs)
        counts = {s: sum(r.status == s for r in results.values()) for s in (SET, FAILED, NOT_ATTEMPTED)}
        _log.info(
            "set %d PV(s) in %.3f s (%s): %d set, %d failed, %d not attempted",
            len(results), time.monotonic() - start,
            "parallel" if self.settings.parallel else "in order",
            counts[SET], counts[FAILED], counts[NOT_ATTEMPTED],
        )
        return results

    def _checked_set(
        self, inputs: Mapping[str, Any], functions: Mapping[str, ValidationFunction | None], settings: Settings,
        journal: CallJournal, rehearsal: str | None,
    ) -> tuple[dict[str, SetResult], bool]:
        """Check the inputs, then set them (or in read-only mode, log them): (results, read-only?)."""
        context = self._connection.context()
        planned = self._prepare(context, inputs, rehearsal)
        if settings.read_only:
            _log.info("read-only: would set %s",
                      ", ".join(f"{pv} = {show(v)}" for pv, v in planned.items()))
            start_or_refuse(lambda: journal.read_only(planned), planned)
            return {pv: SetResult(pv, v, READ_ONLY) for pv, v in planned.items()}, True
        if journal:
            values, errors = self._values_before(planned)
            start_or_refuse(lambda: journal.before(values, errors), planned)
        with journal.guard():  # interrupted: waits cancelled, an "interrupted" line, re-raised
            run = SetRun(self.settings, context, self._monitors, self._time_limit, journal,
                         self._wire_proof(rehearsal))
            return run.run(planned, functions), False

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


def wire_settings(settings: Settings) -> dict[str, Any]:
    """What the journal records of a call's settings: its prefix and rehearsal (as the guard decided)."""
    return {"prefix": settings.prefix, "rehearsal": settings.rehearsal,
            "rehearsal_id": settings.rehearsal_id}


def _refuse_if_nothing_reached_the_soft_ioc(results: Mapping[str, SetResult], inputs: Mapping[str, Any]) -> None:
    """Rehearsal: when the wire check stopped every put that was tried before it was first sent,
    nothing was sent, so the call is refused as a whole (RehearsalError), as when the monitors
    already knew. A put stopped only when it was about to go out again (`sent`) had been sent:
    then the call reports each PV's outcome instead."""
    refused = {pv: r.error.reason for pv, r in results.items()
               if isinstance(r.error, StrangerServerError) and not r.error.sent}
    if refused and all(pv in refused or r.status == NOT_ATTEMPTED for pv, r in results.items()):
        raise RehearsalError(refused, inputs)
