"""The write guard: the one place that decides whether, and how, a set may write to the machine.

Every write epics_pva makes passes through `decide`, at every set_values call: a plain
`Interface()`, the Badger plugin (in the GUI's process and in its worker), `pva-journal
restore`, `pva-preflight --write-test` / `--step` and the dry run all set through
`Interface.set_values`, which asks here first. It reads the operator's switches from the
process environment at that moment:

- ``EPICS_PVA_INTERFACE_READ_ONLY`` true forces read-only over any argument: nothing is put;
- ``EPICS_PVA_INTERFACE_REHEARSAL`` true forces rehearsal (``_REHEARSAL_ID`` names the soft
  IOC, ``_REHEARSAL_ALLOW`` the hosts besides loopback it may be searched on); a rehearsal
  forced with no id refuses every write, since no server can be proved to be the soft IOC.

A switch whose value cannot be understood takes the safe side (read-only, or rehearsal) and
the guard says so. Switches only ever make a set safer: a false switch undoes nothing an
argument asked for. Code may ignore them only by saying so (``honour_switches=False``), as
tests of the guard itself do.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .._fork import at_fork
from ._settings import Settings, parse_setting, specs

__all__ = [
    "READ_ONLY_VARIABLE", "REHEARSAL_ALLOW_VARIABLE", "REHEARSAL_ID_VARIABLE", "REHEARSAL_VARIABLE",
    "Switches", "WriteMode", "decide", "read_switches",
]

_log = logging.getLogger("epics_pva.interface")  # what operators configure for the Interface

READ_ONLY_VARIABLE = str(specs()["read_only"].variable)
REHEARSAL_VARIABLE = str(specs()["rehearsal"].variable)
REHEARSAL_ID_VARIABLE = str(specs()["rehearsal_id"].variable)
REHEARSAL_ALLOW_VARIABLE = str(specs()["rehearsal_allow"].variable)


@dataclass(frozen=True)
class Switches:
    """The operator's safety switches as the process environment sets them now."""

    read_only: bool = False
    rehearsal: bool = False
    rehearsal_id: str = ""  # "" when unset (or unusable: then a note says why)
    rehearsal_allow: str | None = None  # None when unset
    notes: tuple[str, ...] = ()  # each switch value that could not be understood, and what it meant


def _switch(variable: str, setting: str, environ: Mapping[str, str], notes: list[str]) -> bool:
    text = environ.get(variable, "")
    if not text.strip():
        return False
    try:
        return bool(parse_setting(setting, text))
    except ValueError:
        side = "read-only" if setting == "read_only" else "rehearsal mode"
        notes.append(f"{variable}={text!r:.60} is not a yes/no value: taken as {side}, the safe side")
        return True


def _text_switch(variable: str, setting: str, environ: Mapping[str, str], notes: list[str]) -> str | None:
    text = environ.get(variable, "")
    if not text.strip():
        return None
    try:
        return str(parse_setting(setting, text))
    except ValueError as exc:
        notes.append(f"{exc}: ignored")
        return None


def read_switches(environ: Mapping[str, str] | None = None) -> Switches:
    """The switches `environ` (default: the process environment, read now) sets."""
    environ = os.environ if environ is None else environ
    notes: list[str] = []
    read_only = _switch(READ_ONLY_VARIABLE, "read_only", environ, notes)
    rehearsal = _switch(REHEARSAL_VARIABLE, "rehearsal", environ, notes)
    rehearsal_id = _text_switch(REHEARSAL_ID_VARIABLE, "rehearsal_id", environ, notes) or ""
    allow = _text_switch(REHEARSAL_ALLOW_VARIABLE, "rehearsal_allow", environ, notes)
    return Switches(read_only, rehearsal, rehearsal_id, allow, tuple(notes))


@dataclass(frozen=True)
class WriteMode:
    """How one set may write: the settings it runs with, and why, when it may write nothing.

    `settings` are the Interface's with the switches applied; `refusal` is set when no put may
    be sent at all (the set is then refused before anything is read or sent); `forced` names
    what the switches changed, for the operator.
    """

    settings: Settings
    refusal: str | None = None
    forced: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    read_only_forced: bool = False
    rehearsal_forced: bool = False

    @property
    def label(self) -> str:
        """One line for an operator: "read-only ...", "rehearsal ...", "refused ..." or "write"."""
        s = self.settings
        if s.read_only:
            why = f"forced by {READ_ONLY_VARIABLE}" if self.read_only_forced else "setting"
            return f"read-only ({why}): nothing is put"
        if self.refusal is not None:
            return f"refused: {self.refusal}"
        if s.rehearsal:
            why = f"forced by {REHEARSAL_VARIABLE}" if self.rehearsal_forced else "setting"
            return f"rehearsal ({why}): puts only to soft IOC {s.rehearsal_id}"
        return "write: puts go to the machine"


def decide(settings: Settings, environ: Mapping[str, str] | None = None,
           honour_switches: bool = True) -> WriteMode:
    """The WriteMode of a set made now with `settings`: the switches of `environ` applied."""
    if not honour_switches:
        return WriteMode(settings)
    switches = read_switches(environ)
    forced: list[str] = []
    changes: dict[str, object] = {}
    refusal = None
    if switches.read_only and not settings.read_only:
        changes["read_only"] = True
        forced.append(f"{READ_ONLY_VARIABLE} forces read-only")
    if switches.rehearsal:
        rehearsal_id = switches.rehearsal_id or settings.rehearsal_id
        if switches.rehearsal_id and settings.rehearsal_id and switches.rehearsal_id != settings.rehearsal_id:
            forced.append(f"{REHEARSAL_ID_VARIABLE} ({switches.rehearsal_id}) replaces rehearsal_id "
                          f"{settings.rehearsal_id}")
        if not settings.rehearsal:
            forced.append(f"{REHEARSAL_VARIABLE} forces rehearsal mode")
        if not rehearsal_id:
            refusal = (f"{REHEARSAL_VARIABLE} forces rehearsal mode but {REHEARSAL_ID_VARIABLE} is not "
                       "set: no server can be proved to be the rehearsal's soft IOC, so nothing is put")
        else:
            changes.update(rehearsal=True, rehearsal_id=rehearsal_id)
            if switches.rehearsal_allow is not None:
                changes["rehearsal_allow"] = switches.rehearsal_allow
    effective = settings.replace(**changes) if changes else settings
    return WriteMode(effective, refusal, tuple(forced), switches.notes,
                     read_only_forced=switches.read_only, rehearsal_forced=switches.rehearsal)


_announced: set[str] = set()
_announced_lock = threading.Lock()


def announce(mode: WriteMode) -> None:
    """Log at WARNING, once per process for each distinct message, what the switches forced."""
    messages = list(mode.notes)
    if mode.forced or mode.refusal is not None:
        messages.append(f"{mode.label} ({'; '.join(mode.forced)})" if mode.forced else mode.label)
    for message in messages:
        with _announced_lock:
            if message in _announced:
                continue
            _announced.add(message)
        _log.warning("%s", message)


def _forget_announcements_in_child() -> None:
    # a forked Badger worker says it again: its log is the one the operator reads
    global _announced_lock
    _announced_lock = threading.Lock()
    _announced.clear()


at_fork(after_in_child=_forget_announcements_in_child)
