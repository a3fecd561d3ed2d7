"""Interface: read and set EPICS PVs over PVAccess for an optimiser, safely and with evidence.

One lazily created p4p client context per Interface, shared by all threads; puts retried on
timeout; inputs checked before anything is sent; every PV's outcome reported.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from p4p.client.thread import Context, Disconnected, RemoteError

from . import info as _info
from ._p4p_compat import get_many, put_many
from ._version import __version__
from .checks import ValidationFunction, check_configs
from .closing import closed_error, is_closed
from .connection import Connection
from .errors import (
    ContextClosedError,
    EpicsPvaError,
    InvalidInputError,
    JournalError,
    NotConnectedError,
    PutError,
    PutTimeoutError,
    ReadError,
    RehearsalError,
    SetValuesError,
    ValidationError,
)
from .journal import Journal
from .journal_hook import CallJournal, classify
from .measure import wait_configs
from .metadata import MetadataCache
from .readings import CLIENT_STATUS, INVALID, NO_ALARM, AlarmMemory, Reading, reading_of
from .rehearsal import client_settings, identity_problems, settings_problems
from .results import SetResult, Status
from .settings import Settings, specs
from .time_limit import TimeLimit
from .validation import recording_traces
from .values import PvInfo, check_name, coerce, normalize, show

__all__ = ["Interface", "Reading", "SetResult", "ValidationFunction"]

_log = logging.getLogger(__name__)

SET, FAILED, NOT_ATTEMPTED, READ_ONLY = Status.SET, Status.FAILED, Status.NOT_ATTEMPTED, Status.READ_ONLY
_NOT_SENT = object()  # marks "no first put was sent on this PV's behalf yet"


def _read_failure(exc: BaseException, timeout: float) -> str:
    """Why a get failed, in words an operator can act on."""
    if isinstance(exc, TimeoutError):
        return f"no reply within {timeout:g} s (unknown PV, or its server is down)"
    if isinstance(exc, Disconnected):
        return "disconnected from its server"
    if isinstance(exc, RemoteError):
        return f"remote error: {exc}"
    return f"{type(exc).__name__}: {exc}"


class Interface:
    """Reads and sets EPICS PVs over PVAccess through one persistent p4p client context.

    Takes the keyword arguments of `Settings` (all optional; see settings.py for each one's
    meaning and unit): `read_only`, `parallel`, `timeout`, `put_attempts`, `retry_delay`,
    `conf`, `nan_on_read_error`, `max_workers`, `monitor_limit`, `monitor_idle`,
    `validation_timeout`, `journal`, `journal_fsync`, `rehearsal`, `rehearsal_id`,
    `rehearsal_allow`, `prefix` (and the no-op `metadata_max_age`); or a ready `settings`.
    They are checked once (ValueError naming the setting) and readable as attributes
    (`interface.timeout`); to change one, build a new Interface from `settings.replace(...)`.

    Nothing connects until first use. The object is thread safe, usable again after close()
    (it reconnects lazily), survives os.fork() in either process, and pickles to its settings.
    """

    if TYPE_CHECKING:  # for type checkers: the read-only setting attributes made below the class
        @property
        def read_only(self) -> bool: ...
        @property
        def parallel(self) -> bool: ...
        @property
        def timeout(self) -> float: ...
        @property
        def put_attempts(self) -> int: ...
        @property
        def retry_delay(self) -> float: ...
        @property
        def nan_on_read_error(self) -> bool: ...
        @property
        def max_workers(self) -> int: ...
        @property
        def monitor_limit(self) -> int: ...
        @property
        def monitor_idle(self) -> float: ...
        @property
        def metadata_max_age(self) -> float: ...
        @property
        def conf(self) -> dict[str, str] | None: ...
        @property
        def validation_timeout(self) -> float | None: ...
        @property
        def journal(self) -> str | None: ...
        @property
        def journal_fsync(self) -> bool: ...
        @property
        def rehearsal(self) -> bool: ...
        @property
        def rehearsal_id(self) -> str: ...
        @property
        def rehearsal_allow(self) -> str: ...
        @property
        def prefix(self) -> str: ...

    def __init__(self, settings: Settings | None = None, **kwargs: Any) -> None:
        if settings is not None and kwargs:
            raise TypeError("give either settings or keyword arguments, not both")
        if settings is not None and not isinstance(settings, Settings):
            raise TypeError(f"settings must be a Settings, not {type(settings).__name__}")
        self.settings = settings if settings is not None else Settings(**kwargs)
        # a monitor per PV set: its type, limits and connection, pushed by the server
        self._monitors = MetadataCache(self.settings.monitor_limit, self.settings.monitor_idle)
        # a rehearsal fixes the environment it checks: the context is built from exactly that
        conf = client_settings(self.settings.conf) if self.settings.rehearsal else self.settings.conf
        self._connection = Connection(conf, self.settings.max_workers, on_close=self._monitors.close,
                                      prefix=self.settings.prefix)
        self._alarms = AlarmMemory()  # each PV's last alarm: log a change once, not every read
        self._journal: Journal | None = None  # opened on the first set: a bad path fails that set
        self._journal_lock = threading.Lock()
        self._time_limit = TimeLimit(self.settings.max_workers)

    @property
    def stray_validations(self) -> int:
        """Validations that overran validation_timeout so far (each left to finish on its own)."""
        return self._time_limit.strays

    @property
    def running_stray_validations(self) -> int:
        """Of the stray validations, those still running (each holds a validation thread slot)."""
        return self._time_limit.running_strays

    def __repr__(self) -> str:
        state = "connected" if self._connection.connected else "idle"
        shown = ", ".join(f"{name}={value!r}" for name, value in self.settings.as_dict().items()
                          if name != "conf")
        return f"Interface({shown}) <{state}>"

    # ---- life cycle -------------------------------------------------------------------------

    def __getstate__(self) -> Settings:
        """Pickle the settings only: a process that unpickles it connects lazily on its own."""
        return self.settings

    def __setstate__(self, state: Settings) -> None:
        type(self).__init__(self, state)

    def __enter__(self) -> Interface:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client context and the thread pool; the next use reconnects lazily.

        Operations in flight in other threads fail at once with the context closed under
        them (ContextClosedError as the cause), never with a verdict on the machine. The
        journal's file is closed too; the next set opens it again.
        """
        self._connection.close()
        journal = self._journal
        if journal is not None:
            journal.close()

    @property
    def _context(self) -> Context | None:
        return self._connection._context

    def _get_context(self) -> Context:
        return self._connection.context()

    def _get_pool(self) -> ThreadPoolExecutor:
        return self._connection.pool()

    # ---- reading ----------------------------------------------------------------------------

    def get_values(self, names: Iterable[str]) -> dict[str, Any]:
        """Read PVs concurrently and return {name: value} in the order asked.

        Values are Python scalars (float, int, bool, str), enum labels, numpy arrays or lists of
        str. A PV in INVALID alarm gives no value: its server says it is not a measurement.
        If any PV cannot be read or is INVALID, raises ReadError naming each and why
        ("alarm INVALID (UDF)") once the others are read, or, with nan_on_read_error, gives
        NaN for those PVs and logs a warning. MINOR and MAJOR values are returned; each PV's
        change of alarm is logged at WARNING once, not on every read.
        """
        names = self._check_names(names)
        readings, failures = self._read(names)
        for name, reading in readings.items():
            if not reading.ok:
                failures[name] = str(reading.alarm)
        values = {name: r.value for name, r in readings.items() if r.ok}
        if failures:
            error = ReadError({name: failures[name] for name in names if name in failures}, values)
            if not self.nan_on_read_error:
                raise error
            _log.warning("%s; returning NaN for them", error)
            return {name: values.get(name, math.nan) for name in names}
        return values

    def get_readings(self, names: Iterable[str]) -> dict[str, Reading]:
        """Read PVs concurrently and return {name: Reading} (value, alarm, server time stamp).

        Reports; never refuses a value for its alarm: an INVALID PV gives its Reading with
        severity 3 and `ok` False. Names are checked as by get_values. A PV that cannot be
        read raises ReadError as get_values does, or, with nan_on_read_error, gives a Reading
        with value NaN, timestamp NaN, severity 3 (INVALID), status 7 (CLIENT) and the reason
        as its message, logged at WARNING.
        """
        names = self._check_names(names)
        readings, failures = self._read(names)
        if failures:
            if not self.nan_on_read_error:
                raise ReadError(failures, readings)
            _log.warning("%s; giving INVALID NaN readings for them", ReadError(failures, readings))
            for name, why in failures.items():
                readings[name] = Reading(math.nan, math.nan, INVALID, CLIENT_STATUS, why)
        return {name: readings[name] for name in names}

    def _check_names(self, names: Iterable[str]) -> list[str]:
        """The PV names to read, as a list; InvalidInputError naming every bad or repeated one."""
        if isinstance(names, str):
            raise InvalidInputError({repr(names): "give a list of PV names, not one string"}, "read")
        if not isinstance(names, Iterable):
            raise InvalidInputError({repr(names): "give a list of PV names"}, "read")
        names = list(names)
        problems = {show(n) if not isinstance(n, str) else n: why
                    for n in names if (why := check_name(n))}
        counts = Counter(n for n in names if isinstance(n, str))
        duplicates = {n for n, k in counts.items() if k > 1}
        problems.update({n: "PV name given more than once" for n in duplicates})
        if problems:
            raise InvalidInputError(problems, "read")
        return names

    def _read(self, names: list[str]) -> tuple[dict[str, Reading], dict[str, str]]:
        """Read PVs with one concurrent get: the Reading of each one read, and why each other was not.

        Both dicts follow the order of `names`. Logs each PV's change of alarm once.
        """
        if not names:
            return {}, {}
        # each reply becomes its Reading on p4p's thread as it arrives (ValueError: unreadable)
        replies = get_many(self._get_context(), names, self.timeout, convert=reading_of)
        readings: dict[str, Reading] = {}
        failures: dict[str, str] = {}
        for name, reply in zip(names, replies, strict=True):
            if isinstance(reply, ValueError):
                failures[name] = f"unreadable value: {reply}"
                continue
            if isinstance(reply, BaseException):
                failures[name] = _read_failure(reply, self.timeout)
                continue
            readings[name] = reply
            alarm = reply.alarm
            if self._alarms.changed(name, alarm):
                if alarm.severity == NO_ALARM:
                    _log.info("%s: alarm cleared", name)
                else:
                    _log.warning("%s = %s: %s", name, show(reply.value), alarm)
        return readings, failures

    def get_value(self, name: str) -> Any:
        """Read one PV; see get_values."""
        return self.get_values([name])[name]

    def get_info(
        self, names: Iterable[str], configs: Mapping[str, Any] | None = None
    ) -> dict[str, dict[str, Any]]:
        """What an operator's Info view shows: {"interface": {setting: str}, "vars": {pv: {field: str}}}.

        Per PV, as text: value, type, units, control limits, alarm severity and message, the
        server's time stamp (ISO 8601 UTC), whether it answered within `timeout` s, and the
        server's address (which p4p does not expose, and the row says so). A setpoint whose
        `configs` entry is a wait_for_readback partial also shows its readback PV's value and
        alarm, the tolerance, offset and settle time limit, and whether it is within tolerance.
        Never raises for an unreachable PV: its rows say why. One concurrent get, no put.
        """
        names = self._check_names(names)
        waits = {pv: c for pv, c in wait_configs(configs or {}).items() if pv in names}
        extra = list(dict.fromkeys(c.readback_pv for c in waits.values() if c.readback_pv not in names))
        context = self._get_context()
        replies = dict(zip(names + extra, context.get(names + extra, timeout=self.timeout, throw=False),
                           strict=True))
        found: dict[str, dict[str, str]] = {}
        for pv in names:
            found[pv] = _info.pv_fields(replies[pv], self.timeout)
            if pv in waits:
                found[pv].update(_info.readback_fields(replies[pv], waits[pv],
                                                       replies[waits[pv].readback_pv], self.timeout))
        return {"interface": _info.interface_fields(self.settings.as_dict(), context.conf(), __version__),
                "vars": found}

    # ---- setting ----------------------------------------------------------------------------

    def set_values(
        self,
        inputs: Mapping[str, Any],
        configs: Mapping[str, ValidationFunction | None] | None = None,
    ) -> dict[str, SetResult]:
        """Set PVs to values, validate each with configs[pv] if given, and report every outcome.

        All inputs are checked first (name, type, finiteness, the PV's control limits, as its
        monitor last pushed them); if any is bad, InvalidInputError is raised and nothing is
        sent, or NotConnectedError if PVs are unreachable or disconnected; both carry every
        PV's outcome (not_attempted, with its reason) in `.results`. Returns {pv: SetResult}
        in the order given; if any PV fails, raises SetValuesError carrying every PV's outcome.
        An empty dict sets nothing and returns {}. configs keys not being set are ignored.
        """
        results = self._set(inputs, configs)
        if any(r.status in (FAILED, NOT_ATTEMPTED) for r in results.values()):
            raise SetValuesError(results)
        return results

    def set_value(
        self, pv: str, value: Any, validation_function: ValidationFunction | None = None
    ) -> SetResult:
        """Set one PV and validate it; raises that PV's own error (PutError, ValidationError...)."""
        result = self._set({pv: value}, {pv: validation_function})[pv]
        if result.error is not None:
            raise result.error
        return result

    def _set(
        self, inputs: Mapping[str, Any], configs: Mapping[str, ValidationFunction | None] | None
    ) -> dict[str, SetResult]:
        """Check, then set (or in read-only mode, log) the inputs; never raises for a PV failure."""
        start = time.monotonic()
        if not isinstance(inputs, Mapping):
            raise InvalidInputError(
                {"inputs": f"expected a dict of PV name -> value, not {type(inputs).__name__}"})
        functions = check_configs(inputs, configs)
        if not inputs:
            _log.info("set_values called with no inputs: nothing to set")
            return {}
        if self.rehearsal and not self.read_only:
            # before any context exists with these settings: a refused one must reach nothing
            problems = settings_problems(self._connection.conf or {}, self.rehearsal_allow)
            if problems:
                raise RehearsalError(problems, inputs)
        journal = self._open_journal(inputs)
        context = self._get_context()
        planned = self._prepare(context, inputs)
        if self.read_only:
            _log.info("read-only: would set %s",
                      ", ".join(f"{pv} = {show(v)}" for pv, v in planned.items()))
            self._journal_start(journal, planned, lambda: journal.read_only(planned))
            return {pv: SetResult(pv, v, READ_ONLY) for pv, v in planned.items()}
        if journal:
            values, errors = self._values_before(planned)
            self._journal_start(journal, planned, lambda: journal.before(values, errors))
        if self.parallel and len(planned) > 1:
            results = self._set_parallel(context, planned, functions, journal)
        else:
            results = self._set_in_order(context, planned, functions, journal)
        counts = {s: sum(r.status == s for r in results.values()) for s in (SET, FAILED, NOT_ATTEMPTED)}
        _log.info(
            "set %d PV(s) in %.3f s (%s): %d set, %d failed, %d not attempted",
            len(results), time.monotonic() - start, "parallel" if self.parallel else "in order",
            counts[SET], counts[FAILED], counts[NOT_ATTEMPTED],
        )
        return results

    def _open_journal(self, inputs: Mapping[str, Any]) -> CallJournal:
        """This call's journal lines (none without a journal); JournalError if it cannot be written.

        Checked before anything is read or sent: the error's `results` say every PV was not
        attempted.
        """
        if self.settings.journal is None:
            return CallJournal(None)
        try:
            with self._journal_lock:
                if self._journal is None:
                    self._journal = Journal(self.settings.journal, fsync=self.settings.journal_fsync)
                journal = self._journal
            journal.check()
            return CallJournal(journal)
        except JournalError as exc:
            raise self._refused_by_journal(exc, inputs) from None

    def _journal_start(self, journal: CallJournal, planned: Mapping[str, Any], write: Any) -> None:
        """Write the call's first lines (before or read_only); JournalError, nothing sent, if it fails."""
        try:
            write()
        except JournalError as exc:
            raise self._refused_by_journal(exc, planned) from None

    @staticmethod
    def _refused_by_journal(exc: JournalError, inputs: Mapping[str, Any]) -> JournalError:
        """The error of a set refused because its journal cannot be written: every PV not attempted."""
        _log.error("set refused, nothing sent: %s", exc)
        reason = f"journal cannot be written: {exc.reason}"
        results = {pv: SetResult(pv, value, NOT_ATTEMPTED, reason=reason) for pv, value in inputs.items()}
        return JournalError(exc.path, f"{exc.reason}; nothing was sent", exc.errno, results=results)

    def _values_before(self, planned: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Each PV's value as its monitor gave it to the input check ({pv: value}, {pv: why none}).

        No extra read: the values the check saw, just before the puts.
        """
        values = self.latest_values(planned)
        errors = {pv: "no value from its monitor" for pv in planned if pv not in values}
        return values, errors

    def _prepare(self, context: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
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
        if self.rehearsal and not self.read_only:
            # each PV's server, as its monitor last pushed it (again after every reconnect)
            doubts = identity_problems(infos, staged, self.rehearsal_id, unreachable)
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
        found = self._monitors.lookup(context, names, self.timeout)
        return found.infos, found.problems

    def latest_values(self, names: Iterable[str]) -> dict[str, Any]:
        """{pv: value} of the given PVs as their monitors last pushed them (plain Python).

        Called between a set's check and its puts (as a journal of "before" values would),
        these are the values before the set, with no round trip; PVs never set through this
        interface, or disconnected, are left out.
        """
        return self._monitors.latest(names)

    def _set_in_order(
        self, context: Context, planned: Mapping[str, Any],
        functions: Mapping[str, ValidationFunction | None], journal: CallJournal | None = None,
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
                results[pv] = self._set_one(context, pv, value, functions.get(pv), journal=journal)
            except Exception as exc:  # noqa: BLE001 - a bug or p4p surprise: this PV's outcome
                results[pv] = self._unexpected(pv, value, exc)
            failed = results[pv].status == FAILED
        return results

    def _set_parallel(
        self, context: Context, planned: Mapping[str, Any],
        functions: Mapping[str, ValidationFunction | None], journal: CallJournal | None = None,
    ) -> dict[str, SetResult]:
        """Send every first put at once (one p4p multi-put), then retry and validate each PV in its task.

        A slow or timed-out PV delays no other PV's put; each PV's retries and validation run
        concurrently in the pool, so the call lasts about as long as its slowest PV.
        """
        start = time.monotonic()
        journal = journal if journal is not None else CallJournal(None)
        unsent: dict[str, SetResult] = {}
        for pv in planned:  # each put line is written before any put is sent
            try:
                journal.put(pv, planned[pv], 1)
            except JournalError as exc:
                unsent[pv] = self._not_journaled(pv, planned[pv], exc, 0, start)
        names = [pv for pv in planned if pv not in unsent]
        if _log.isEnabledFor(logging.DEBUG):  # show() of every value only when it is logged
            for pv in names:
                _log.debug("put %s = %s (attempt 1 of %d)", pv, show(planned[pv]), self.put_attempts)
        try:
            replies: list[Any] = (put_many(context, names, [planned[pv] for pv in names], self.timeout,
                                           self._monitors.infos(names)) if names else [])
        except Exception as exc:  # noqa: BLE001 - unexpected: every PV's put failed with it
            replies = [exc] * len(names)
        if journal:
            closed = is_closed(context)
            for pv, reply in zip(names, replies, strict=True):
                journal.outcome(pv, 1, *classify(reply, self.timeout, closed and reply is not None))
        futures: dict[str, Future[SetResult] | SetResult | None] = {}
        for pv, reply in zip(names, replies, strict=True):
            if reply is None and functions.get(pv) is None:  # done, nothing to validate: no task
                futures[pv] = SetResult(pv, planned[pv], SET, 1, elapsed=time.monotonic() - start)
                continue
            try:
                futures[pv] = self._get_pool().submit(
                    self._set_one, context, pv, planned[pv], functions.get(pv), reply, start, journal)
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
                results[pv] = self._unexpected(pv, planned[pv], exc)
        return results

    def _not_journaled(self, pv: str, value: Any, exc: JournalError, attempts: int, start: float) -> SetResult:
        """The outcome of a put not sent because its journal line could not be written."""
        error = PutError(pv, value, f"put not sent: {exc}", attempts)
        _log.error("%s", error)
        return SetResult(pv, value, FAILED, attempts, error=error, elapsed=time.monotonic() - start)

    def _unexpected(self, pv: str, value: Any, exc: Exception) -> SetResult:
        """The outcome of a PV whose put or check raised what nothing expected: failed, saying so."""
        _log.error("setting %s = %s raised %r", pv, show(value), exc, exc_info=exc)
        error = PutError(pv, value, f"unexpected error: {type(exc).__name__}: {exc}", attempts=1)
        error.__cause__ = exc
        return SetResult(pv, value, FAILED, 1, error=error)

    def _put_error(self, pv: str, value: Any, exc: BaseException, attempts: int) -> PutError:
        """The error for a put that failed for a reason other than a timeout (never retried)."""
        if isinstance(exc, RemoteError):
            return PutError(pv, value, f"put rejected by the server: {exc}", attempts)
        if isinstance(exc, (ValueError, TypeError)):
            return PutError(pv, value, f"value does not fit the PV: {exc}", attempts)
        return PutError(pv, value, f"put failed: {type(exc).__name__}: {exc}", attempts)

    def _set_one(
        self, context: Context, pv: str, value: Any, validate: ValidationFunction | None,
        first: Any = _NOT_SENT, start: float | None = None, journal: CallJournal | None = None,
    ) -> SetResult:
        """Put one value, retrying timeouts, then validate it; the outcome, never an exception.

        `first` is the outcome of a first put already sent (None: done; an exception: failed).
        """
        start = time.monotonic() if start is None else start
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
                    return self._not_journaled(pv, value, exc, attempts - 1, start)
                _log.debug("put %s = %s (attempt %d of %d)", pv, show(value), attempts, self.put_attempts)
                outcome = put_many(context, [pv], [value], self.timeout, self._monitors.infos([pv]))[0]
                if journal:
                    journal.outcome(pv, attempts, *classify(
                        outcome, self.timeout, outcome is not None and is_closed(context)))
            if outcome is None:
                break
            if is_closed(context):  # cut off, not refused: not retried, not the machine
                closed = (outcome if isinstance(outcome, ContextClosedError)
                          else closed_error(f"putting {pv}"))
                return failed(PutError(pv, value, str(closed), attempts))
            if not isinstance(outcome, TimeoutError):
                return failed(self._put_error(pv, value, outcome, attempts))
            if attempts >= self.put_attempts:
                return failed(PutTimeoutError(pv, value, attempts, self.timeout))
            _log.warning(
                "put %s = %s timed out after %g s (attempt %d of %d); retrying in %g s",
                pv, show(value), self.timeout, attempts, self.put_attempts, self.retry_delay)
            time.sleep(self.retry_delay)
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
        kwargs = {"set_pv": pv, "set_value": value, "context": context, "timeout": self.timeout}
        limit = self.settings.validation_timeout
        if limit is None:
            return validate(**kwargs)
        return self._time_limit.run(pv, validate, kwargs, limit)


def _setting_property(name: str, doc: str) -> property:
    return property(lambda self: getattr(self.settings, name), doc=doc)


# every setting reads as an attribute (interface.timeout); none can be assigned past its check
for _name, _spec in specs().items():
    setattr(Interface, _name, _setting_property(_name, _spec.doc))
