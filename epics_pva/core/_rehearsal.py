"""Rehearsal mode: prove, before any put, that a set can only reach the rehearsal's soft IOC.

Two proofs, both made before anything is sent, and again on every set call:

1. the client settings (an Interface's `conf`, else the EPICS_PVA_* environment) can reach
   only loopback or explicitly allowed addresses: automatic address lists are off, and no
   broadcast address is in EPICS_PVA_ADDR_LIST or EPICS_PVA_NAME_SERVERS. These are checked
   on the settings themselves, before a p4p context is built with them;
2. every PV of the call was last received from a server publishing `softiocId` equal to the
   rehearsal id (the soft IOC's banner prints it as EPICS_PVA_INTERFACE_REHEARSAL_ID).

Any doubt refuses the whole call (RehearsalError); reads are never refused. A monitor hears of
a reconnect a moment after the channel makes it, so each put proves the id once more on its
own connection: it fetches the PV first and is not sent unless that reply carries the id
(`prove_on_the_wire`, StrangerServerError). When a connection drops after a put went out and
before its reply, pvxs sends the put again by itself on the next connection: it is fetched
and proved again first, so no put travels on a connection whose server it did not prove.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import StrangerServerError
from ..transport import (
    SERVER_ID_FIELD,
    PvInfo,
    auto_addr_list,
    endpoint,
    entries,
    numeric_address,
    parse_bool,
    server_id_of,
)

__all__ = ["identity_problem", "prove_on_the_wire", "settings_problems"]

_SEARCH_LISTS = ("EPICS_PVA_ADDR_LIST", "EPICS_PVA_NAME_SERVERS")


def _host_of(entry: str) -> tuple[str, bool | None]:
    """The host of an address list entry as pvxs reads it ("h", "h:port", "[v6]:port",
    "h,ttl@iface"), and whether pvxs reads it as IPv6 first; the whole entry when pvxs cannot
    read it (it is then checked as given)."""
    try:
        host, _, ipv6 = endpoint(entry)
    except ValueError:
        return entry, None
    return host, ipv6


def _entry_problem(variable: str, entry: str, allowed: set[str]) -> str | None:
    host, ipv6 = _host_of(entry)
    address = numeric_address(host, ipv6)
    if address is not None and (
            address.version == 4 and (str(address).endswith(".255") or address.is_multicast
                                      or address.is_unspecified)
            or address.version == 6 and (address.is_multicast or address.is_unspecified)):
        return (f"{variable} holds {entry!r}, a broadcast or multicast address: a search there "
                "reaches every server on that network")
    if host.lower() in allowed:
        return None
    if (address is not None and address.is_loopback) or host.lower() == "localhost":
        return None
    return (f"{variable} holds {entry!r}, which is neither loopback nor allowed "
            "(allow it with rehearsal_allow / EPICS_PVA_INTERFACE_REHEARSAL_ALLOW)")


def _auto_problem(auto: str | None) -> str:
    if auto is None:
        return ("EPICS_PVA_AUTO_ADDR_LIST is unset, and pvxs then defaults to YES: automatic search "
                "broadcasts on every network interface; set it to NO")
    if parse_bool(auto):
        return (f"EPICS_PVA_AUTO_ADDR_LIST is {auto!r}: automatic search broadcasts on every network "
                "interface; set it to NO")
    return (f"EPICS_PVA_AUTO_ADDR_LIST is {auto!r}, which pvxs reads as YES (it takes only NO, in "
            "any letter case, or 0 as NO, and keeps its default YES for any other value): automatic "
            "search broadcasts on every network interface; set it to NO")


def settings_problems(settings: Mapping[str, str], allow: str = "") -> dict[str, str]:
    """{setting: why} for every way these client settings could reach beyond the rehearsal.

    `allow` is a comma-separated list of addresses or host names permitted besides loopback.
    Empty when the settings reach only loopback and allowed hosts, with no automatic search.
    The settings are read as pvxs reads them (pvxs_settings): EPICS_PVA_AUTO_ADDR_LIST is off
    only when pvxs takes it as NO, and the address lists are split where pvxs splits them.
    """
    allowed = {h.strip().lower() for h in allow.split(",") if h.strip()}
    problems: dict[str, str] = {}
    auto = settings.get("EPICS_PVA_AUTO_ADDR_LIST")
    if auto_addr_list(auto):
        problems["EPICS_PVA_AUTO_ADDR_LIST"] = _auto_problem(auto)
    for variable in _SEARCH_LISTS:
        for entry in entries(settings.get(variable, "")):
            why = _entry_problem(variable, entry, allowed)
            if why is not None:
                problems.setdefault(variable, why)
    return problems


def identity_problem(pv: str, info: PvInfo | None, expected: str, unread: str | None = None) -> str | None:
    """Why `pv` cannot be proved to be served by the soft IOC `expected`, or None when it is."""
    if info is None:
        return (f"{pv} cannot be proved to be served by the rehearsal's soft IOC: "
                f"{unread or 'it was not read'}")
    return _id_problem(pv, info.server_id, expected)


def _id_problem(pv: str, server_id: str | None, expected: str) -> str | None:
    if server_id is None:
        return (f"{pv} is served by a server that is not the rehearsal's soft IOC "
                f"(no {SERVER_ID_FIELD} field)")
    if server_id != expected:
        return (f"{pv} is served by a server that is not the rehearsal's soft IOC "
                f"({SERVER_ID_FIELD} {server_id} != expected {expected})")
    return None


def prove_on_the_wire(expected: str) -> Callable[[str, Any, Any, bool], None]:
    """A put_many `vet`: raises StrangerServerError unless the PV's value, fetched by the put
    itself on the connection the put goes out on, carries the soft IOC id `expected`.

    `again` is True when the put already went out once, on a connection that dropped before
    its reply, and the client library is about to send it again on a new one: the error then
    says so (`sent`), since the first copy may have reached the soft IOC."""
    def vet(pv: str, value: Any, current: Any, again: bool) -> None:
        why = _id_problem(pv, server_id_of(current), expected)
        if why is None:
            return
        if again:
            raise StrangerServerError(
                pv, value, "sent once, on a connection that dropped before its reply (its fate there "
                f"is unknown); not sent again on the new connection: {why}, as the put's own Get showed",
                sent=True)
        raise StrangerServerError(pv, value, f"not sent: {why}, as the put's own Get showed")
    return vet


def identity_problems(infos: Mapping[str, PvInfo], names: Iterable[str], expected: str,
                      unread: Mapping[str, str]) -> dict[str, str]:
    """{pv: why} for every PV in `names` not proved to be served by the soft IOC `expected`."""
    problems: dict[str, Any] = {}
    for pv in names:
        why = identity_problem(pv, infos.get(pv), expected, unread.get(pv))
        if why is not None:
            problems[pv] = why
    return problems
