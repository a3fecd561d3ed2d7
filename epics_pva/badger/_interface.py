"""epics_pva.Interface as a Badger interface plugin (a pydantic model Badger can describe)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, cast

from badger import interface as badger_interface
from pydantic import Field, PrivateAttr, create_model, model_validator

from ..core import Interface as PvaInterface
from ..core import (
    Settings,
    ValidationFunction,
    defaults,
    environment_settings,
    read_switches,
    specs,
)
from ..errors import EpicsPvaError, SetValuesError
from ..results import SetResult
from .settings import ENVIRONMENT_VARIABLES, read_only_forced
from .summary import lead_with_summary

_log = logging.getLogger(__name__)

_create_lock = threading.Lock()


def _badger_fields() -> dict[str, tuple[Any, Any]]:
    """One pydantic field per setting with an environment variable, derived from Settings."""
    default = defaults()
    fields: dict[str, tuple[Any, Any]] = {}
    for name, spec in specs().items():
        if spec.variable is None:
            continue
        bounds = spec.bounds  # gt, ge and le: the only bounds a setting has
        schema = Field(default[name], description=f"{spec.doc} (environment: {spec.variable})",
                       gt=bounds.get("gt"), ge=bounds.get("ge"), le=bounds.get("le"))
        # a setting whose default is None (no limit, no journal) takes None too
        fields[name] = (spec.kind if default[name] is not None else spec.kind | None, schema)
    return fields


_FIELDS = tuple(_badger_fields())


class _Interface(badger_interface.Interface):
    """EPICS PVAccess for Badger: a ``badger.interface.Interface`` delegating to ``epics_pva.Interface``.

    Every call behaves exactly as ``epics_pva.Interface`` with the same settings: reads are
    concurrent, puts are checked first and retried on timeout, ``configs`` validation
    functions (e.g. ``wait_for_readback``) run after each put, and errors name each PV.
    The p4p client context is private, opened on first use and kept; ``reset_interface()``
    (Badger calls it in its worker process) and ``close()`` drop it, the next call opens a
    fresh one. ``conf`` (not a Badger parameter) is a p4p client configuration used
    instead of the ``EPICS_PVA_*`` environment.

    Settings come from arguments, then ``EPICS_PVA_INTERFACE_*`` environment variables, then
    defaults; ``EPICS_PVA_INTERFACE_READ_ONLY`` set true forces read-only over everything, and
    ``EPICS_PVA_INTERFACE_REHEARSAL`` set true forces rehearsal mode (see epics_pva.core._rehearsal).
    """

    name: ClassVar[str] = "epics_pva"

    # the setting fields (read_only, timeout, ...) are added from Settings by create_model below

    _conf: dict[str, str] | None = PrivateAttr(default=None)
    _pva: PvaInterface | None = PrivateAttr(default=None)
    _history: deque[dict[str, SetResult]] = PrivateAttr(default_factory=lambda: deque(maxlen=100))
    _configs: dict[str, Any] = PrivateAttr(default_factory=dict)  # each PV's latest validation

    def __init__(self, conf: Mapping[str, str] | None = None, **data: Any) -> None:
        if conf is not None and not isinstance(conf, Mapping):
            raise ValueError(f"conf must be a dict of EPICS_PVA_* settings, not {type(conf).__name__}")
        super().__init__(**data)
        self._conf = dict(conf) if conf is not None else None

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, data: Any) -> Any:
        """Fill settings not given from EPICS_PVA_INTERFACE_*; a forced read-only shows as read_only.

        The switches themselves are applied by the write guard at every set (a forced rehearsal
        without an id refuses the sets, not the construction, so reads still work).
        """
        if not isinstance(data, Mapping):
            return data
        merged = {**environment_settings(), **data}
        switches = read_switches()
        if switches.read_only:
            if data.get("read_only") is False:
                _log.warning("%s forces read-only over read_only=False", ENVIRONMENT_VARIABLES["read_only"])
            merged["read_only"] = True
        if switches.rehearsal and (switches.rehearsal_id or merged.get("rehearsal_id")):
            merged["rehearsal"] = True  # shown as Badger shows the parameters; without an id, sets refuse
        return merged

    # ---- the delegate -------------------------------------------------------------------------

    @property
    def effective_read_only(self) -> bool:
        """Whether puts are suppressed now: the field, or the environment forcing it."""
        return bool(self.read_only) or read_only_forced()

    @property
    def mode(self) -> str:
        """What a set would do now, for the operator (read-only, rehearsal, or write)."""
        return self._interface().mode.label

    def _settings(self) -> Settings:
        """The Settings these fields (and `conf`) give; the write guard applies the switches."""
        values = {field: getattr(self, field) for field in _FIELDS}
        return Settings(**values, conf=self._conf)

    def _interface(self) -> PvaInterface:
        """The epics_pva.Interface doing the work, (re)built whenever the settings change.

        Fields may be assigned after construction, and the environment may force read-only
        at any time: each call compares the Settings they give with the delegate's, and on
        a difference builds a new delegate from the new Settings (checked like any other),
        closing the old one.
        """
        wanted = self._settings()
        pva = self._pva
        if pva is not None and pva.settings == wanted:
            return pva
        with _create_lock:
            old = self._pva
            if old is not None and old.settings == wanted:
                return old
            self._pva = PvaInterface(wanted)
        if old is not None:
            _log.info("interface settings changed: %s", _changes(old.settings, wanted))
            old.close()
        return self._pva

    # ---- Badger's interface API -------------------------------------------------------------------

    @badger_interface.log
    def get_values(self, channel_names: Iterable[str],
                   configs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Read PVs concurrently; {name: value} in the order asked (see epics_pva.Interface).

        With fresh_reads (EPICS_PVA_INTERFACE_FRESH_READS), a read after set_values waits for
        each PV's first update after that set; ``configs`` may give an observable its read
        function (``partial(average_fresh, n=4)``, ``partial(first_after, seconds=S)``).

        An unreadable PV, or one in INVALID alarm, raises ReadError naming it and why
        ("alarm INVALID (UDF)"): Badger then stops the routine and asks the operator to
        retry or abort, rather than optimising on a value that is no measurement.
        (With nan_on_read_error such a PV reads NaN instead.) Errors lead with a one-line
        summary naming each PV and why (epics_pva.badger.summary), the first thing Badger's
        dialog shows.
        """
        try:
            return self._interface().get_values(channel_names, configs)
        except EpicsPvaError as exc:
            lead_with_summary(exc)
            raise

    @badger_interface.log
    def set_values(
        self,
        channel_inputs: Mapping[str, Any],
        configs: Mapping[str, ValidationFunction | None] | None = None,
    ) -> dict[str, SetResult]:
        """Set PVs and validate them with ``configs``; every PV's outcome (see epics_pva.Interface).

        Errors are epics_pva's, leading with a one-line summary per PV (see get_values).
        """
        if isinstance(configs, Mapping):  # get_info shows each setpoint's readback from then on
            self._configs.update({pv: fn for pv, fn in configs.items() if fn is not None})
        try:
            results = self._interface().set_values(channel_inputs, configs=configs)
        except SetValuesError as exc:
            self._history.append(exc.results)
            lead_with_summary(exc)
            raise
        except EpicsPvaError as exc:
            lead_with_summary(exc)
            raise
        self._history.append(results)
        return results

    def get_value(self, channel_name: str) -> Any:
        """Read one PV (errors as get_values)."""
        try:
            return self._interface().get_value(channel_name)
        except EpicsPvaError as exc:
            lead_with_summary(exc)
            raise

    def set_value(
        self, channel_name: str, channel_value: Any, validation_function: ValidationFunction | None = None
    ) -> SetResult:
        """Set one PV and validate it; raises that PV's own error (leading with its summary)."""
        try:
            result = self._interface().set_value(channel_name, channel_value, validation_function)
        except EpicsPvaError as exc:
            lead_with_summary(exc)
            raise
        self._history.append({channel_name: result})
        return result

    def get_info(
        self, channels: Iterable[str], configs: Mapping[str, Any] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Badger's InterfaceInfo for its variable table's Info dialog (see epics_pva.Interface.get_info).

        ``{"interface": {setting: str}, "vars": {pv: {field: str}}}``. A setpoint shows its
        readback and tolerance when its wait_for_readback partial is in ``configs`` or was
        given to an earlier set_values; an environment may pass its configs here to show
        them before any set (the example environment does).
        """
        return self._interface().get_info(channels, configs={**self._configs, **(configs or {})})

    def reset_interface(self) -> None:
        """Drop the client context (Badger calls this in its worker process); the next call opens a fresh one."""
        pva = self._pva
        if pva is not None:
            pva.close()

    def close(self) -> None:
        """Close the client context and threads; the interface reconnects if used again."""
        self.reset_interface()

    def __enter__(self) -> _Interface:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def history(self) -> list[dict[str, SetResult]]:
        """The outcomes of the most recent set calls (up to 100), oldest first."""
        return list(self._history)

    @property
    def last_results(self) -> dict[str, SetResult] | None:
        """The outcome of the latest set call, failed or not; None before any."""
        return self._history[-1] if self._history else None


def _changes(old: Settings, new: Settings) -> str:
    before, after = old.as_dict(), new.as_dict()
    return ", ".join(f"{k} {before[k]!r} -> {after[k]!r}" for k in after if after[k] != before[k])


# Badger reads its parameters from the pydantic schema: one field per setting, from Settings
# cast: pydantic's overloads cannot see fields built at run time
Interface = cast(Any, create_model)(
    "Interface", __base__=_Interface, __module__=__name__, __doc__=_Interface.__doc__,
    **_badger_fields(),
)
