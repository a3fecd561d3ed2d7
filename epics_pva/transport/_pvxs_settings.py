"""The client's search settings read as pvxs (the C++ library under p4p) reads them.

A check of these settings (rehearsal.py) or a search that follows them (search.py) must see
what pvxs will do, not what the text seems to say. From pvxs 1.5 (src/config.cpp:
`parse_bool`, `split_addr_into`, `SockEndpoint`; src/util.cpp: `SockAddr::setAddress`), as
p4p 4.3.0's `Context(...).conf()` reports it:

- EPICS_PVA_AUTO_ADDR_LIST is NO only when it is exactly ``NO`` in any letter case, or ``0``;
  ``YES`` (any case) and ``1`` are YES. Anything else (``off``, ``false``, ``" NO"``, empty)
  is logged by pvxs as an invalid bool and its default, YES, stays: searches then go to the
  broadcast address of every interface.
- EPICS_PVA_ADDR_LIST and EPICS_PVA_NAME_SERVERS are split on space, tab, CR and LF only. A
  comma is no separator: ``host,N`` is one entry, a host with multicast TTL N, and
  ``host@iface`` names an interface (an entry whose TTL is not a number is ignored whole).
- The host of an entry is what precedes its first ``,`` or ``@``; then ``[v6]:port``,
  ``[v6]``, ``v4:port``, a bare IPv6 address (two colons or more) or a plain IPv4 address
  or name. An IPv4 host is first read by libevent's inet_pton, which takes leading zeros as
  decimal (``0177.0.0.1`` is 177.0.0.1, where the C library reads 127.0.0.1); failing that,
  getaddrinfo reads numeric forms such as ``127.1`` or ``2130706433``, and looks names up.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping

__all__ = ["auto_addr_list", "client_settings", "endpoint", "entries", "numeric_address", "parse_bool"]


def client_settings(conf: Mapping[str, str] | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings a p4p client context would use: `conf`, or the EPICS_PVA_* environment."""
    if conf is not None:
        return dict(conf)
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k.startswith("EPICS_PVA_")}

_SEPARATORS = re.compile(r"[ \t\r\n]+")  # split_addr_into's " \t\r\n"


def parse_bool(value: str) -> bool | None:
    """A YES/NO setting as pvxs's parse_bool reads it: None for a value it refuses (pvxs logs
    "invalid bool value" and leaves the setting at its default)."""
    if value == "1" or (value.isascii() and value.upper() == "YES"):
        return True
    if value == "0" or (value.isascii() and value.upper() == "NO"):
        return False
    return None


def auto_addr_list(value: str | None) -> bool:
    """Whether pvxs searches automatically (broadcasts) with EPICS_PVA_AUTO_ADDR_LIST = `value`
    (None: unset); pvxs's default is YES, kept for a value it refuses."""
    return value is None or parse_bool(value) is not False


def entries(text: str) -> list[str]:
    """The entries of an address list (EPICS_PVA_ADDR_LIST, EPICS_PVA_NAME_SERVERS), as pvxs splits it."""
    return [entry for entry in _SEPARATORS.split(text) if entry]


def endpoint(entry: str) -> tuple[str, str | None, bool]:
    """(host, port text or None when none is given, IPv6 form?) of one address list entry, as
    pvxs reads it: the form says how pvxs first tries the host (see numeric_address).

    ValueError when pvxs cannot read it as an address (it then ignores the entry).
    """
    address = re.split(r"[,@]", entry, maxsplit=1)[0]  # before ",ttl" or "@iface"
    first, last = address.find(":"), address.rfind(":")
    opening, closing = address.find("["), address.rfind("]")
    if (opening < 0) != (closing < 0) or closing < opening:
        raise ValueError(f"IPv6 with mismatched brackets {entry!r}")
    if opening >= 0:
        return address[opening + 1:closing], address[last + 1:] if last > closing else None, True
    if first < 0:
        return address, None, False
    if first == last:
        return address[:first], address[first + 1:], False
    return address, None, True  # a bare IPv6 address


_SCANF_UNSIGNED = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)")  # what C's sscanf("%u") reads


def _libevent_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address libevent's evutil_inet_pton (bundled with pvxs) reads: sscanf's
    "%u.%u.%u.%u%c" with four numbers, each at most 255, and nothing after. Unlike the C
    library's inet_pton it takes leading zeros as decimal ("0177.0.0.1" is 177.0.0.1), and
    sscanf lets white space and a sign come before each number."""
    parts: list[int] = []
    position = 0
    for index in range(4):
        if index:
            if not host.startswith(".", position):
                return None
            position += 1
        found = _SCANF_UNSIGNED.match(host, position)
        if found is None:
            return None
        sign, digits = found.groups()
        number = int(digits)
        if number >= 1 << 64:
            number = (1 << 64) - 1  # strtoul saturates
        elif sign == "-":
            number = -number % (1 << 64)
        number %= 1 << 32  # stored in an unsigned int
        if number > 255:
            return None
        parts.append(number)
        position = found.end()
    if position != len(host):
        return None
    return ipaddress.IPv4Address(".".join(map(str, parts)))


def numeric_address(host: str, ipv6: bool | None = None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address pvxs reads from a numeric `host` (None for a name, which pvxs looks up).

    pvxs tries libevent's inet_pton for the entry's form first (IPv6 when bracketed or with
    two colons or more: `ipv6`, by default guessed from the colons), then getaddrinfo, which
    also reads numeric forms such as "127.1", "0x7f.1" or "2130706433"; of its answers pvxs
    takes IPv4 first. Numeric forms only here: no name is looked up.
    """
    if ipv6 is None:
        ipv6 = ":" in host
    if ipv6:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            pass
    else:
        address = _libevent_ipv4(host)
        if address is not None:
            return address
    if not host or "\0" in host:
        return None
    try:
        found = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):  # socket.gaierror: not numeric
        return None
    ordered = sorted(found, key=lambda info: info[0] != socket.AF_INET)
    return ipaddress.ip_address(str(ordered[0][4][0])) if ordered else None
