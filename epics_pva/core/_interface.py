"""Interface: read and set EPICS PVs over PVAccess for an optimiser, safely and with evidence.

One lazily created p4p client context per Interface, shared by all threads; puts retried on
timeout; inputs checked before anything is sent; every PV's outcome reported. This class
owns the settings, the connection and the life cycle; the reads are done by read_path.py and
the sets by set_path.py; both log as "epics_pva.interface", the name operators configure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from p4p.client.thread import Context

from ..errors import SetValuesError
from ..results import SetResult, Status
from ..transport import Connection, MetadataCache
from ._fresh import FreshMonitors
from ._guard import WriteMode, announce, decide
from ._read_path import ReadPath
from ._readings import Reading
from ._set_path import SetPath
from ._settings import SWITCHES, Settings, environment_settings, specs
from ._time_limit import TimeLimit
from ._validation import ValidationFunction

__all__ = ["Interface", "Reading", "SetResult", "ValidationFunction"]


class Interface:
    """Reads and sets EPICS PVs over PVAccess through one persistent p4p client context.

    Takes the keyword arguments of `Settings` (all optional; see settings.py for each one's
    meaning and unit): `read_only`, `parallel`, `timeout`, `put_attempts`, `retry_delay`,
    `conf`, `nan_on_read_error`, `max_workers`, `monitor_limit`, `monitor_idle`,
    `validation_timeout`, `journal`, `journal_fsync`, `rehearsal`, `rehearsal_id`,
    `rehearsal_allow`, `fresh_reads`, `prefix` (and the no-op `metadata_max_age`); or a ready `settings`.
    They are checked once (ValueError naming the setting) and readable as attributes
    (`interface.timeout`); to change one, build a new Interface from `settings.replace(...)`.

    The ``EPICS_PVA_INTERFACE_*`` variables are the defaults of every setting the arguments
    leave out (``use_env=False``: the built-in defaults only; a ready `settings` is taken as it
    is). The operator's switches, ``EPICS_PVA_INTERFACE_READ_ONLY`` and ``_REHEARSAL``, are
    read again at every set and force read-only or rehearsal over any argument (see
    epics_pva.core._guard); `read_only`, `rehearsal` and `mode` say what is in force now. Only
    ``honour_switches=False``, written in code, ignores them (tests of the guard do).

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
        def fresh_reads(self) -> bool: ...
        @property
        def prefix(self) -> str: ...

    def __init__(self, settings: Settings | None = None, *, use_env: bool = True,
                 honour_switches: bool = True, **kwargs: Any) -> None:
        if settings is not None and kwargs:
            raise TypeError("give either settings or keyword arguments, not both")
        if settings is not None and not isinstance(settings, Settings):
            raise TypeError(f"settings must be a Settings, not {type(settings).__name__}")
        if settings is None:
            settings = Settings(**{**(environment_settings() if use_env else {}), **kwargs})
        self.settings = settings
        self.honour_switches = bool(honour_switches)
        # a monitor per PV set: its type, limits and connection, pushed by the server
        self._monitors = MetadataCache(self.settings.monitor_limit, self.settings.monitor_idle)
        # a monitor per PV read fresh (fresh_reads, or a read function): news after a set
        self._fresh = FreshMonitors(self.settings.monitor_limit, self.settings.monitor_idle)
        self._connection = Connection(self.settings.conf, on_close=self._forget, prefix=self.settings.prefix)
        self._time_limit = TimeLimit(self.settings.max_workers)
        self._reads = ReadPath(self.settings, self._connection, self._fresh)
        # the journal is opened on the first set: a bad path fails that set
        self._sets = SetPath(self.settings, self._connection, self._monitors, self._time_limit,
                             self.decide)
        announce(self.mode)  # an operator's forced switch is said once per process, at WARNING

    def _forget(self) -> None:
        """The context was dropped: every monitor made on it is dead."""
        self._monitors.close()
        self._fresh.close()

    def _set_done(self, results: Mapping[str, SetResult]) -> None:
        """A set completed (validations included): fresh reads from now on wait for news."""
        if any(r.status in (Status.SET, Status.FAILED) for r in results.values()):
            self._fresh.mark(results)

    def decide(self) -> WriteMode:
        """How a set made now may write: the settings with the operator's switches applied."""
        return decide(self.settings, honour_switches=self.honour_switches)

    @property
    def mode(self) -> WriteMode:
        """The write mode in force now (read-only, rehearsal, or write), as the next set sees it."""
        return self.decide()

    @property
    def stray_validations(self) -> int:
        """Validations that overran validation_timeout so far (each left to finish on its own)."""
        return self._time_limit.strays

    @property
    def running_stray_validations(self) -> int:
        """Of the stray validations, those still running (each in its thread, not in a slot:
        while max_workers of them run, a validation that needs a thread is refused)."""
        return self._time_limit.running_strays

    def __repr__(self) -> str:
        state = "connected" if self._connection.connected else "idle"
        shown = ", ".join(f"{name}={value!r}" for name, value in self.settings.as_dict().items()
                          if name != "conf")
        return f"Interface({shown}) <{state}; {self.mode.label}>"

    # ---- life cycle -------------------------------------------------------------------------

    def __getstate__(self) -> Settings:
        """Pickle the settings only: a process that unpickles it connects lazily on its own, and
        honours the operator's switches there (honour_switches=False does not travel)."""
        return self.settings

    def __setstate__(self, state: Settings) -> None:
        type(self).__init__(self, state)

    def __enter__(self) -> Interface:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client context and end idle validation threads; the next use reconnects lazily.

        Operations in flight in other threads fail at once with the context closed under
        them (ContextClosedError as the cause), never with a verdict on the machine. The
        journal's file is closed too; the next set opens it again.
        """
        self._connection.close()
        self._time_limit.close()
        self._sets.journal.close()

    @property
    def _context(self) -> Context | None:
        return self._connection._context

    # ---- reading ----------------------------------------------------------------------------

    def get_values(self, names: Iterable[str], configs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Read PVs concurrently and return {name: value} in the order asked.

        Values are Python scalars (float, int, bool, str), enum labels, numpy arrays or lists of
        str. A PV in INVALID alarm gives no value: its server says it is not a measurement.
        If any PV cannot be read or is INVALID, raises ReadError naming each and why
        ("alarm INVALID (UDF)") once the others are read, or, with nan_on_read_error, gives
        NaN for those PVs and logs a warning. MINOR and MAJOR values are returned; each PV's
        change of alarm is logged at WARNING once, not on every read.

        With the fresh_reads setting, a read after a set_values on this Interface gives, for each
        PV not set by it, a value received after that set completed (waited for by monitor, at
        most `timeout` s; ReadError "no update since the set" past it). `configs` may give a PV
        its read function, which makes that PV's reads after a set fresh even without the
        setting: `partial(average_fresh, n=4)` or `partial(first_after, seconds=S)`.
        """
        return self._reads.values(names, configs)

    def get_readings(self, names: Iterable[str], configs: Mapping[str, Any] | None = None) -> dict[str, Reading]:
        """Read PVs concurrently and return {name: Reading} (value, alarm, server time stamp).

        Reports; never refuses a value for its alarm: an INVALID PV gives its Reading with
        severity 3 and `ok` False. Names are checked as by get_values. A PV that cannot be
        read raises ReadError as get_values does, or, with nan_on_read_error, gives a Reading
        with value NaN, timestamp NaN, severity 3 (INVALID), status 7 (CLIENT) and the reason
        as its message, logged at WARNING. fresh_reads and `configs` as for get_values.
        """
        return self._reads.readings(names, configs)

    def get_value(self, name: str) -> Any:
        """Read one PV; see get_values."""
        return self.get_values([name])[name]

    def get_info(
        self, names: Iterable[str], configs: Mapping[str, Any] | None = None
    ) -> dict[str, dict[str, Any]]:
        """What an operator's Info view shows: {"interface": {setting: str}, "vars": {pv: {field: str}}}.

        Per PV, as text: value, type, units, control limits, alarm severity and message, the
        server's time stamp (ISO 8601 UTC), whether it answered within `timeout` s, and the
        server ("host:port (guid ...)", its TCP address and GUID), found by a PVAccess UDP name
        search of the EPICS_PVA_ADDR_LIST entries (p4p does not say which server answered);
        when none claimed it within `timeout` s, or the list is empty, the row says why. A
        setpoint whose `configs` entry is a wait_for_readback partial also shows its readback
        PV's value and alarm, the tolerance, offset and settle time limit, and whether it is
        within tolerance. Never raises for an unreachable PV: its rows say why. One concurrent
        get and, beside it, one name search for all names; no put. The first row of each PV,
        and of the interface, is `mode`: what a set would do now (`Interface.mode.label`:
        read-only, rehearsal against a soft IOC id, or write).
        """
        return self._reads.info(names, configs, mode=self.mode.label)

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

        In read-only mode (the setting, or EPICS_PVA_INTERFACE_READ_ONLY now) the inputs are
        checked as usual, nothing is put and no validation runs: every PV's result has
        status Status.READ_ONLY ("read_only"), and `ok` is True. In rehearsal mode a set that
        cannot be proved to reach only the rehearsal's soft IOC raises RehearsalError before
        any put.
        """
        results = self._sets.set(inputs, configs)
        self._set_done(results)
        if any(r.status in (Status.FAILED, Status.NOT_ATTEMPTED) for r in results.values()):
            raise SetValuesError(results)
        return results

    def set_value(
        self, pv: str, value: Any, validation_function: ValidationFunction | None = None
    ) -> SetResult:
        """Set one PV and validate it; raises that PV's own error (PutError, ValidationError...)."""
        result = self._sets.set({pv: value}, {pv: validation_function})[pv]
        self._set_done({pv: result})
        if result.error is not None:
            raise result.error
        return result

    def latest_values(self, names: Iterable[str]) -> dict[str, Any]:
        """{pv: value} of the given PVs as their monitors last pushed them (plain Python).

        Called between a set's check and its puts (as a journal of "before" values would),
        these are the values before the set, with no round trip; PVs never set through this
        interface, or disconnected, are left out.
        """
        return self._monitors.latest(names)


def _setting_property(name: str, doc: str) -> property:
    return property(lambda self: getattr(self.settings, name), doc=doc)


def _switch_property(name: str, doc: str) -> property:
    if name == "rehearsal":  # a forced rehearsal that refuses every write is a rehearsal too
        return property(lambda self: self.mode.settings.rehearsal or self.mode.rehearsal_forced,
                        doc=f"{doc} (in force now: the operator's switch may force it)")
    return property(lambda self: getattr(self.mode.settings, name),
                    doc=f"{doc} (in force now: the operator's switch may force it)")


# every setting reads as an attribute (interface.timeout); none can be assigned past its check;
# the switches and what they carry read as the write guard decides now
for _name, _spec in specs().items():
    _make = _switch_property if _name in (*SWITCHES, "rehearsal_id", "rehearsal_allow") else _setting_property
    setattr(Interface, _name, _make(_name, _spec.doc))
