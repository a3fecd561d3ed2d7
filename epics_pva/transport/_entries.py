"""One PV's entry in the Interface's metadata cache (_monitors.py), and what is judged of its updates."""

from __future__ import annotations

import logging
from typing import Any

from p4p import Value

from ._monitor import Monitor
from ._values import PvInfo

__all__ = ["Entry", "Lookup", "close_entry", "reshapes", "state_of"]

_log = logging.getLogger("epics_pva.transport._monitors")


class Entry:
    """One PV's subscription and the latest it pushed (value, connection state, last problem)."""

    __slots__ = ("connected", "info", "problem", "subscription", "used", "value")

    def __init__(self, used: float) -> None:
        self.subscription: Monitor | None = None
        self.value: Any = None  # latest p4p Value, or None before the first
        self.info: PvInfo | None = None  # describe(value), computed when first asked
        self.connected = False
        self.problem: str | None = None  # the last disconnect or remote error, in words
        self.used = used


class Lookup:
    """The outcome of one MetadataCache.lookup: `infos` of the PVs ready, `problems` of the others."""

    def __init__(self, infos: dict[str, PvInfo], problems: dict[str, str]) -> None:
        self.infos, self.problems = infos, problems


def reshapes(update: Any, info: PvInfo) -> bool:
    """Whether a monitor update may change what its PV accepts (type, limits, choices, server id).

    A server's post of a new value, alarm or time stamp marks only those fields changed;
    describing every such update again would cost each set of many PVs a describe() per PV.
    The description is dropped on every disconnect, so the first update from whichever server
    answers next (which need not mark every field) is described afresh.
    """
    raw = update if isinstance(update, Value) else getattr(update, "raw", update)  # a Value's getattr is slow
    try:
        changed = raw.changedSet()
    except AttributeError:  # not a p4p Value: nothing to tell by
        return True
    for name in changed:
        if name.partition(".")[0] in ("alarm", "timeStamp"):
            continue
        if name == "value.index" or (name == "value" and info.kind != "enum"):
            continue  # a new value: an enum's choices are value.choices, which is not this
        return True
    return False


def state_of(entry: Entry | None) -> str:
    if entry is None:
        return "unmonitored"
    if entry.connected:
        return "connected"
    return "connecting" if entry.value is None else "disconnected"


def close_entry(entry: Entry) -> None:
    subscription, entry.subscription = entry.subscription, None
    if subscription is not None:
        try:
            subscription.close()
        except Exception:  # noqa: BLE001 - closing a monitor of a closed context: nothing left
            _log.debug("closing a monitor failed", exc_info=True)
