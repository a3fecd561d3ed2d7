"""One PV's entry in a set of monitors (_monitor_set.py), the metadata cache's entry
(_monitors.py), and what is judged of their updates."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from p4p import Value
from p4p.client.thread import Disconnected, RemoteError

from ._monitor import Monitor
from ._values import PvInfo

__all__ = ["Entry", "Lookup", "MonitorEntry", "close_entry", "evictions", "problem_of", "reshapes", "state_of"]

_log = logging.getLogger("epics_pva.transport._monitors")


class MonitorEntry:
    """One PV's subscription in a set of monitors: its connection state, last problem, last use."""

    __slots__ = ("connected", "problem", "subscription", "used")

    def __init__(self, used: float) -> None:
        self.subscription: Monitor | None = None
        self.connected = False
        self.problem: str | None = None  # the last disconnect or remote error, in words
        self.used = used  # when a call last asked for it (the set's clock)


class Entry(MonitorEntry):
    """A metadata cache's entry: also the latest value the PV pushed, and its description."""

    __slots__ = ("info", "value")

    def __init__(self, used: float) -> None:
        super().__init__(used)
        self.value: Any = None  # latest p4p Value, or None before the first
        self.info: PvInfo | None = None  # describe(value), computed when first asked


def problem_of(update: BaseException) -> str:
    """A monitor's error update (or a get's error) in words: why its PV gave no value."""
    if isinstance(update, Disconnected):
        return "disconnected from its server"
    if isinstance(update, RemoteError):
        return f"remote error: {update}"
    return f"{type(update).__name__}: {update}"


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


def close_entry(entry: MonitorEntry) -> None:
    subscription, entry.subscription = entry.subscription, None
    if subscription is not None:
        try:
            subscription.close()
        except Exception:  # noqa: BLE001 - closing a monitor of a closed context: nothing left
            _log.debug("closing a monitor failed", exc_info=True)


def evictions(entries: Mapping[str, Any], now: float, idle: float, size: int, keep: set[str]) -> list[str]:
    """The PVs whose monitors to close: those unused (`.used`, monotonic s) for `idle` s, then
    the least recently used beyond `size` (`entries` in order of use, oldest first); never
    those in `keep` (a call's own PVs stay, even beyond `size`)."""
    dropped = [pv for pv, e in entries.items() if now - e.used >= idle and pv not in keep]
    excess = len(entries) - len(dropped) - size
    for pv in entries:
        if excess <= 0:
            break
        if pv not in keep and pv not in dropped:
            dropped.append(pv)
            excess -= 1
    return dropped
