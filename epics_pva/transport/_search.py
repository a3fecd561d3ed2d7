"""PVAccess UDP name search: which server (TCP address and GUID) claims each PV name.

p4p 4.3's client does not say which server answered a get, so get_info learns it the way
pvxs's `pvxinfo` and `pvlist` do: a SEARCH datagram (command 0x03) listing the names goes to
each EPICS_PVA_ADDR_LIST entry, and every server holding some of them answers with a
SEARCH_RESPONSE (0x04) carrying its GUID, its TCP address and port, and the ids it claims.

Only the explicit address list is searched, and only its IPv4 unicast entries: the automatic
(broadcast) list is not repeated here, and EPICS_PVA_NAME_SERVERS (a search over TCP) is not
done; each result says so. Standard library only; every wait is bounded by `timeout`.
The wire format follows pvxs (src/pvaproto.h, src/client.cpp, src/udp_collector.cpp).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import select
import socket
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ._pvxs_settings import endpoint, entries

__all__ = [
    "DEFAULT_PORT",
    "Response",
    "ServerAddress",
    "destinations",
    "find_servers",
    "parse_response",
    "search_messages",
]

_log = logging.getLogger(__name__)

MAGIC = 0xCA
VERSION = 2
SEARCH = 0x03
SEARCH_RESPONSE = 0x04
DEFAULT_PORT = 5076  # EPICS_PVA_BROADCAST_PORT when unset

_MSB = 0x80  # header flags: the payload is big-endian
_NOT_ON_UDP = 0x01 | 0x30  # header flags: control message, segmented; never valid in a datagram
_UNICAST = 0x80  # SEARCH flags (pvxs pva_search_flags): sent to one host, not broadcast
_MAX_PAYLOAD = 1400  # bytes of names per datagram before the next one, as pvxs keeps under an MTU
_FIRST_RESEND, _LAST_RESEND = 0.1, 1.0  # s between sends for names still unclaimed: doubling

_EMPTY = "not searched: EPICS_PVA_ADDR_LIST is empty (automatic search is not repeated here)"
_NAME_SERVERS = "EPICS_PVA_NAME_SERVERS (search over TCP) is not searched here"


@dataclass(frozen=True)
class ServerAddress:
    """A server that claimed a PV: the TCP host and port clients connect to, and its GUID (hex)."""

    host: str
    port: int
    guid: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port} (guid {self.guid})"


@dataclass(frozen=True)
class Response:
    """One decoded SEARCH_RESPONSE: the server, the search sequence it answers, the ids it claims."""

    server: ServerAddress
    sequence: int
    ids: tuple[int, ...]


class _Short(ValueError):
    """A datagram ended before a field it announced."""


class _Reader:
    """Reads PVAccess fields in order from one datagram, in the byte order its header gave."""

    def __init__(self, data: bytes, order: str) -> None:
        self._data, self._at, self._order = data, 0, order

    def take(self, count: int) -> bytes:
        if count < 0 or self._at + count > len(self._data):
            raise _Short(f"needs {count} bytes at {self._at} of {len(self._data)}")
        chunk = self._data[self._at:self._at + count]
        self._at += count
        return chunk

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack(self._order + fmt, self.take(struct.calcsize(self._order + fmt)))
        return int(value)

    def size(self) -> int:
        first = self.take(1)[0]
        if first < 254:
            return first
        if first == 254:
            return self.unpack("I")
        raise _Short("a null size (255) where a string was expected")

    def string(self) -> bytes:
        return self.take(self.size())


def _size(count: int) -> bytes:
    """A PVAccess size: one byte below 254, else 254 and a big-endian uint32."""
    return bytes([count]) if count < 254 else b"\xfe" + struct.pack(">I", count)


def _string(text: bytes) -> bytes:
    return _size(len(text)) + text


def _datagram(sequence: int, channels: Sequence[tuple[int, bytes]], reply_port: int) -> bytes:
    body = (struct.pack(">IB3x", sequence, _UNICAST)
            + bytes(16)  # response address all zeros: reply to the datagram's sender
            + struct.pack(">H", reply_port)
            + _size(1) + _string(b"tcp")
            + struct.pack(">H", len(channels))
            + b"".join(struct.pack(">I", cid) + _string(name) for cid, name in channels))
    return struct.pack(">BBBBI", MAGIC, VERSION, _MSB, SEARCH, len(body)) + body


def search_messages(sequence: int, channels: Iterable[tuple[int, str]], reply_port: int) -> list[bytes]:
    """SEARCH datagrams asking for every (instance id, name), as few as fit under the MTU.

    The response address is left zero (reply to the sender's address) and the response port is
    `reply_port`, the port the answers must come back to.
    """
    messages: list[bytes] = []
    batch: list[tuple[int, bytes]] = []
    used = 0
    for cid, name in channels:
        encoded = name.encode()
        cost = 4 + len(_size(len(encoded))) + len(encoded)
        if batch and (used + cost > _MAX_PAYLOAD or len(batch) == 0xFFFF):
            messages.append(_datagram(sequence, batch, reply_port))
            batch, used = [], 0
        batch.append((cid, encoded))
        used += cost
    if batch:
        messages.append(_datagram(sequence, batch, reply_port))
    return messages


def _address(raw: bytes, source_host: str) -> str:
    """A 16-byte PVAccess address as text; all zeros (any interface) means the datagram's sender."""
    address = ipaddress.IPv6Address(raw)
    mapped = address.ipv4_mapped
    if mapped is not None:
        return source_host if mapped.is_unspecified else str(mapped)
    return source_host if address.is_unspecified else str(address)


def parse_response(data: bytes, source_host: str) -> Response | None:
    """The SEARCH_RESPONSE in one datagram from `source_host`, or None if it is anything else.

    None for other commands, control or segmented messages, a truncated or malformed body, a
    protocol other than "tcp", or a response that claims nothing (found flag clear).
    """
    if len(data) < 8 or data[0] != MAGIC or data[3] != SEARCH_RESPONSE or data[2] & _NOT_ON_UDP:
        return None
    order = ">" if data[2] & _MSB else "<"
    (length,) = struct.unpack(order + "I", data[4:8])
    if length > len(data) - 8:
        return None
    body = _Reader(data[8:8 + length], order)
    try:
        guid = body.take(12).hex()
        sequence = body.unpack("I")
        host = _address(body.take(16), source_host)
        port = body.unpack("H")
        protocol = body.string()
        found = body.take(1)[0]
        ids = tuple(body.unpack("I") for _ in range(body.unpack("H")))
    except _Short:
        return None
    if protocol != b"tcp" or not found:
        return None
    return Response(ServerAddress(host, port, guid), sequence, ids)


def _entry(entry: str, default_port: int) -> tuple[str, int]:
    """(host, port) of an address list entry as pvxs reads it: "host", "host:port", "[v6]",
    "[v6]:port", each maybe followed by ",ttl" and "@iface" (see pvxs_settings.endpoint)."""
    host, port, _ = endpoint(entry)
    if port is None:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"port {port!r} is not a number from 1 to 65535")
    return host, int(port)


def destinations(settings: Mapping[str, str]) -> tuple[list[tuple[str, int]], list[str]]:
    """The IPv4 unicast (address, port) pairs of EPICS_PVA_ADDR_LIST, and why each other entry is not.

    Entries are split and read as pvxs does (space, tab, CR, LF between them; see
    pvxs_settings); a port missing from an entry is EPICS_PVA_BROADCAST_PORT (else 5076). Host
    names are resolved; duplicates are dropped.
    """
    targets: list[tuple[str, int]] = []
    skipped: list[str] = []
    default = settings.get("EPICS_PVA_BROADCAST_PORT", "").strip()
    default_port = int(default) if default.isdigit() and 0 < int(default) < 65536 else DEFAULT_PORT
    for entry in entries(settings.get("EPICS_PVA_ADDR_LIST", "")):
        try:
            host, port = _entry(entry, default_port)
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
            address = ipaddress.IPv4Address(infos[0][4][0])
        except ValueError as exc:
            skipped.append(f"{entry!r} not searched: {exc}")
            continue
        except OSError as exc:  # socket.gaierror: no such host, or no IPv4 address for it
            skipped.append(f"{entry!r} not searched: no IPv4 address ({exc})")
            continue
        if address.is_multicast or address.is_unspecified or address == ipaddress.IPv4Address("255.255.255.255"):
            skipped.append(f"{entry!r} not searched: a broadcast or multicast address")
        elif (str(address), port) not in targets:
            targets.append((str(address), port))
    return targets, skipped


def _send(sock: socket.socket, messages: list[bytes], targets: list[tuple[str, int]],
          errors: dict[str, str]) -> None:
    for host, port in targets:
        for message in messages:
            try:
                sock.sendto(message, (host, port))
            except OSError as exc:  # EACCES: a subnet broadcast address (SO_BROADCAST is not set)
                errors[f"{host}:{port}"] = f"could not send to {host}:{port}: {exc.strerror or exc}"
                break


def _drain(sock: socket.socket, sequence: int, cids: Mapping[int, str],
           found: dict[str, ServerAddress]) -> None:
    """Read every datagram waiting on `sock`, recording the claims of this search's responses."""
    while True:
        try:
            data, source = sock.recvfrom(0x10000)
        except BlockingIOError:
            return
        except OSError as exc:  # an ICMP error surfacing on the socket: not an answer
            _log.debug("search socket: %s", exc)
            return
        response = parse_response(data, source[0])
        if response is None or response.sequence != sequence:
            _log.debug("ignored a datagram of %d bytes from %s:%s", len(data), *source[:2])
            continue
        for cid in response.ids:
            name = cids.get(cid)
            if name is None:
                continue
            earlier = found.setdefault(name, response.server)
            if earlier.guid != response.server.guid:
                _log.warning("%s is claimed by two servers: %s and %s", name, earlier, response.server)


def _unclaimed(timeout: float, targets: list[tuple[str, int]], notes: list[str]) -> str:
    where = ", ".join(f"{host}:{port}" for host, port in targets)
    return "; ".join([f"not found: no server at {where} claimed it within {timeout:g} s", *notes])


def find_servers(names: Iterable[str], settings: Mapping[str, str],
                 timeout: float) -> dict[str, ServerAddress | str]:
    """{name: the server claiming it, or why none is known}, searching EPICS_PVA_ADDR_LIST by UDP.

    `settings` are the client settings of the context (its conf, or the EPICS_PVA_* environment).
    One SEARCH per address list entry lists every name (more if they do not fit one datagram);
    names still unclaimed are asked again after 0.1, 0.2, 0.4 ... s, until all are claimed or
    `timeout` s have passed. Nothing is sent when the list has no searchable entry. Never raises
    for network trouble: the reasons say what happened.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    targets, notes = destinations(settings)
    if entries(settings.get("EPICS_PVA_NAME_SERVERS", "")):
        notes.append(_NAME_SERVERS)
    if not targets:
        listed = entries(settings.get("EPICS_PVA_ADDR_LIST", ""))
        why = "not searched: no entry of EPICS_PVA_ADDR_LIST can be searched" if listed else _EMPTY
        return dict.fromkeys(wanted, "; ".join([why, *notes]))
    cids = dict(enumerate(wanted))
    sequence = secrets.randbits(32)
    found: dict[str, ServerAddress] = {}
    errors: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("", 0))
            sock.setblocking(False)
            reply_port = sock.getsockname()[1]
            interval, next_send = _FIRST_RESEND, time.monotonic()
            while len(found) < len(wanted):
                now = time.monotonic()
                if now >= next_send:
                    pending = [(cid, name) for cid, name in cids.items() if name not in found]
                    _send(sock, search_messages(sequence, pending, reply_port), targets, errors)
                    if len(errors) == len(targets):
                        break  # nowhere to wait for an answer from
                    next_send, interval = now + interval, min(2 * interval, _LAST_RESEND)
                if now >= deadline:
                    break
                ready, _, _ = select.select([sock], [], [], max(0.0, min(deadline, next_send) - now))
                if ready:
                    _drain(sock, sequence, cids, found)
    except OSError as exc:  # no socket to be had (descriptors exhausted, no IPv4)
        errors["socket"] = f"could not search: {exc}"
    notes += errors.values()
    unclaimed = _unclaimed(timeout, targets, notes)
    return {name: found.get(name, unclaimed) for name in wanted}
