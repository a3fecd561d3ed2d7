"""The read side of an Interface: names checked, PVs read with one concurrent get, alarms logged.

Interface.get_values, get_readings and get_info hand their work to one ReadPath each; their
docstrings there say what a caller sees.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .._version import __version__
from ..errors import InvalidInputError, ReadError
from ..results import show
from ..transport import Connection, ServerAddress, check_name, find_servers, get_many
from ._fresh import FreshMonitors
from ._info import interface_fields, pv_fields, readback_fields
from ._readings import (
    CLIENT_STATUS,
    INVALID,
    NO_ALARM,
    AlarmMemory,
    Reading,
    read_failure,
    reading_of,
)
from ._settings import Settings
from ._validation import wait_configs

__all__ = ["ReadPath", "check_names"]

_log = logging.getLogger("epics_pva.interface")  # the Interface's one logger, as operators name it


def check_names(names: Iterable[str]) -> list[str]:
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


class ReadPath:
    """Reads PVs through an Interface's connection, remembering each PV's last alarm."""

    def __init__(self, settings: Settings, connection: Connection,
                 fresh: FreshMonitors | None = None) -> None:
        self.settings = settings
        self._connection = connection
        self._fresh = fresh  # with fresh_reads: the monitors a read after a set waits on
        self._alarms = AlarmMemory()  # each PV's last alarm: log a change once, not every read

    def values(self, names: Iterable[str], configs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """{name: value} in the order asked; see Interface.get_values."""
        names = check_names(names)
        readings, failures = self.read(names, configs)
        for name, reading in readings.items():
            if not reading.ok:
                failures[name] = str(reading.alarm)
        values = {name: r.value for name, r in readings.items() if r.ok}
        if failures:
            error = ReadError({name: failures[name] for name in names if name in failures}, values)
            if not self.settings.nan_on_read_error:
                raise error
            _log.warning("%s; returning NaN for them", error)
            return {name: values.get(name, math.nan) for name in names}
        return values

    def readings(self, names: Iterable[str], configs: Mapping[str, Any] | None = None) -> dict[str, Reading]:
        """{name: Reading} in the order asked; see Interface.get_readings."""
        names = check_names(names)
        readings, failures = self.read(names, configs)
        if failures:
            if not self.settings.nan_on_read_error:
                raise ReadError(failures, readings)
            _log.warning("%s; giving INVALID NaN readings for them", ReadError(failures, readings))
            for name, why in failures.items():
                readings[name] = Reading(math.nan, math.nan, INVALID, CLIENT_STATUS, why)
        return {name: readings[name] for name in names}

    def read(self, names: list[str], configs: Mapping[str, Any] | None = None,
             ) -> tuple[dict[str, Reading], dict[str, str]]:
        """Read PVs with one concurrent get: the Reading of each one read, and why each other was not.

        With fresh_reads, after a set, each PV not among its inputs is read from its monitor
        instead (see _fresh.py), through its read function in `configs` if it has one; without
        it, only the PVs with a read function are.
        Both dicts follow the order of `names`. Logs each PV's change of alarm once.
        """
        if not names:
            return {}, {}
        timeout = self.settings.timeout
        context = self._connection.context()
        got: dict[str, Reading | BaseException] = {}
        if self._fresh is not None:
            fresh = self._fresh.read(context, names, configs, timeout, self.settings.fresh_reads)
            if fresh is not None:
                got.update(fresh[0])
                got.update({pv: _Failed(why) for pv, why in fresh[1].items()})
        rest = [name for name in names if name not in got]
        # each reply becomes its Reading on p4p's thread as it arrives (ValueError: unreadable)
        if rest:
            got.update(zip(rest, get_many(context, rest, timeout, convert=reading_of), strict=True))
        readings: dict[str, Reading] = {}
        failures: dict[str, str] = {}
        for name in names:
            reply = got[name]
            if isinstance(reply, _Failed):
                failures[name] = str(reply)
                continue
            if isinstance(reply, ValueError):
                failures[name] = f"unreadable value: {reply}"
                continue
            if isinstance(reply, BaseException):
                failures[name] = read_failure(reply, timeout)
                continue
            readings[name] = reply
            alarm = reply.alarm
            if self._alarms.changed(name, alarm):
                if alarm.severity == NO_ALARM:
                    _log.info("%s: alarm cleared", name)
                else:
                    _log.warning("%s = %s: %s", name, show(reply.value), alarm)
        return readings, failures

    def info(
        self, names: Iterable[str], configs: Mapping[str, Any] | None = None, mode: str = ""
    ) -> dict[str, dict[str, Any]]:
        """The rows of an operator's Info view; see Interface.get_info. `mode` is the write
        guard's label, shown as every PV's first row and the interface's."""
        names = check_names(names)
        timeout = self.settings.timeout
        waits = {pv: c for pv, c in wait_configs(configs or {}).items() if pv in names}
        extra = list(dict.fromkeys(c.readback_pv for c in waits.values() if c.readback_pv not in names))
        context = self._connection.context()
        search = _Search(names, self._connection.prefix, self._connection.client_conf(), timeout)
        replies = dict(zip(names + extra, context.get(names + extra, timeout=timeout, throw=False),
                           strict=True))
        servers = search.result()
        found: dict[str, dict[str, str]] = {}
        for pv in names:
            found[pv] = {"mode": mode} if mode else {}
            found[pv].update(pv_fields(replies[pv], timeout, servers[pv]))
            if pv in waits:
                found[pv].update(readback_fields(replies[pv], waits[pv],
                                                       replies[waits[pv].readback_pv], timeout))
        shown = interface_fields(self.settings.as_dict(), context.conf(), __version__)
        return {"interface": {"mode": mode, **shown} if mode else shown, "vars": found}


class _Failed(Exception):
    """Why a fresh read of one PV failed, in words (see _fresh.py)."""


class _Search:
    """A UDP name search for the server of each PV (see search.py), run beside the info get."""

    def __init__(self, names: list[str], prefix: str, settings: Mapping[str, str], timeout: float) -> None:
        self._names, self._prefix, self._timeout = names, prefix, timeout
        self._found: dict[str, ServerAddress | str] = {}
        self._thread = threading.Thread(target=self._run, args=(settings,), daemon=True,
                                        name="epics_pva-search")
        self._thread.start()

    def _run(self, settings: Mapping[str, str]) -> None:
        try:
            self._found = find_servers([self._prefix + n for n in self._names], settings, self._timeout)
        except Exception as exc:  # a bug here must not cost the operator the rest of the view
            _log.exception("server search failed")
            self._found = {self._prefix + n: f"not known: the search failed ({exc})" for n in self._names}

    def result(self) -> dict[str, str]:
        """{name as asked: its server row}, waiting at most a second past the search's own limit."""
        self._thread.join(self._timeout + 1.0)
        found = dict(self._found) if not self._thread.is_alive() else {}
        return {n: str(found.get(self._prefix + n, "not known: the search did not finish"))
                for n in self._names}
