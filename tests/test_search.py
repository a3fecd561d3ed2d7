"""The PVAccess UDP name search (epics_pva.transport.find_servers) against real servers on loopback.

The servers are the soft IOC (p4p's pvxs server), EPICS base's softIoc with QSRV2, and, for
datagrams no real server sends, a fake UDP peer on loopback. Nothing leaves loopback.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time

import pytest

from epics_pva.transport import ServerAddress, find_servers, parse_response

ONE = {"setpoint": [{"name": "ONE:Q1:SET", "readback": "ONE:Q1:RBV"}]}
TWO = {"setpoint": [{"name": "TWO:Q1:SET", "readback": "TWO:Q1:RBV"}]}
EMPTY = "not searched: EPICS_PVA_ADDR_LIST is empty (automatic search is not repeated here)"


def tcp_address(ioc) -> str:
    """host:port of a soft IOC's TCP server, from its own description ("HOST tcp:P udp:Q")."""
    host, tcp, _udp = ioc.describe_address().split()
    return f"{host}:{tcp.removeprefix('tcp:')}"


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def receive(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, tuple[str, int]]:
    ready, _, _ = select.select([sock], [], [], timeout)
    assert ready, f"no datagram within {timeout} s"
    return sock.recvfrom(0x10000)


def test_the_soft_iocs_tcp_address_is_found(softioc_factory):
    ioc = softioc_factory(ONE)
    found = find_servers(["ONE:Q1:SET", "ONE:Q1:RBV"], ioc.client_conf(), timeout=5.0)
    setpoint, readback = found["ONE:Q1:SET"], found["ONE:Q1:RBV"]
    assert isinstance(setpoint, ServerAddress) and isinstance(readback, ServerAddress)
    assert f"{setpoint.host}:{setpoint.port}" == tcp_address(ioc)
    assert str(setpoint.port) == ioc.client_conf()["EPICS_PVA_SERVER_PORT"]
    assert readback == setpoint and len(setpoint.guid) == 24  # one server: one 12-byte GUID
    assert str(setpoint) == f"{tcp_address(ioc)} (guid {setpoint.guid})"


def test_epics_bases_tcp_address_is_found(epics_base_ioc):
    found = find_servers(["BASE:Q1:SET"], epics_base_ioc.client_conf(), timeout=5.0)["BASE:Q1:SET"]
    assert isinstance(found, ServerAddress)
    assert (found.host, found.port) == ("127.0.0.1", epics_base_ioc.pva_server_port)


def test_two_soft_iocs_on_one_address_list_are_told_apart(softioc_factory):
    one, two = softioc_factory(ONE), softioc_factory(TWO)
    conf = {**one.client_conf(),
            "EPICS_PVA_ADDR_LIST": f"{one.client_conf()['EPICS_PVA_ADDR_LIST']} "
                                   f"{two.client_conf()['EPICS_PVA_ADDR_LIST']}"}
    found = find_servers(["TWO:Q1:SET", "ONE:Q1:SET", "TWO:Q1:RBV"], conf, timeout=5.0)
    assert list(found) == ["TWO:Q1:SET", "ONE:Q1:SET", "TWO:Q1:RBV"]
    assert all(isinstance(f, ServerAddress) for f in found.values()), found
    assert f"{found['ONE:Q1:SET'].host}:{found['ONE:Q1:SET'].port}" == tcp_address(one)
    assert f"{found['TWO:Q1:SET'].host}:{found['TWO:Q1:SET'].port}" == tcp_address(two)
    assert found["TWO:Q1:RBV"] == found["TWO:Q1:SET"]
    assert found["ONE:Q1:SET"].guid != found["TWO:Q1:SET"].guid


def test_an_unknown_name_is_not_found_within_the_timeout(softioc_factory):
    ioc = softioc_factory(ONE)
    start = time.monotonic()
    found = find_servers(["NO:SUCH:PV", "ONE:Q1:SET"], ioc.client_conf(), timeout=0.5)
    took = time.monotonic() - start
    where = ioc.client_conf()["EPICS_PVA_ADDR_LIST"]
    assert found["NO:SUCH:PV"] == f"not found: no server at {where} claimed it within 0.5 s"
    assert isinstance(found["ONE:Q1:SET"], ServerAddress)
    assert 0.5 <= took < 2.0


def test_an_empty_address_list_sends_nothing_even_to_the_broadcast_port():
    with listener() as sock:
        port = sock.getsockname()[1]
        settings = {"EPICS_PVA_ADDR_LIST": "", "EPICS_PVA_AUTO_ADDR_LIST": "YES",
                    "EPICS_PVA_BROADCAST_PORT": str(port)}
        assert find_servers(["X:A"], settings, timeout=0.2) == {"X:A": EMPTY}
        # a marker sent now is queued behind anything the search sent: it must come first
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as marker:
            marker.sendto(b"marker", ("127.0.0.1", port))
        assert receive(sock)[0] == b"marker"
        # the same listener named in the list does receive a SEARCH: the check above can fail
        settings["EPICS_PVA_ADDR_LIST"] = "127.0.0.1"
        assert find_servers(["X:A"], settings, timeout=0.2)["X:A"].startswith("not found: ")
        data, _ = receive(sock)
        assert data[0] == 0xCA and data[3] == 0x03 and data.endswith(b"\x03X:A")


def test_name_servers_and_unusable_entries_are_said_not_searched():
    settings = {"EPICS_PVA_ADDR_LIST": "224.0.0.128 127.0.0.1:99999",
                "EPICS_PVA_NAME_SERVERS": "127.0.0.1:5075"}
    why = find_servers(["X:A"], settings, timeout=0.2)["X:A"]
    assert why.startswith("not searched: no entry of EPICS_PVA_ADDR_LIST can be searched; ")
    assert "'224.0.0.128' not searched: a broadcast or multicast address" in why
    assert "'127.0.0.1:99999' not searched: port '99999'" in why
    assert why.endswith("EPICS_PVA_NAME_SERVERS (search over TCP) is not searched here")


def response(sequence: int, ids: list[int], address: bytes, port: int, big: bool = True) -> bytes:
    """A SEARCH_RESPONSE as a server would send it (`big`: big-endian, else little-endian)."""
    e = ">" if big else "<"
    body = (bytes(range(12)) + struct.pack(e + "I", sequence) + address + struct.pack(e + "H", port)
            + b"\x03tcp\x01" + struct.pack(e + "H", len(ids)) + b"".join(struct.pack(e + "I", i) for i in ids))
    return struct.pack(e + "BBBBI", 0xCA, 2, 0xC0 if big else 0x40, 0x04, len(body)) + body


class FakeServer:
    """A UDP peer on loopback that answers the first SEARCH with `answers(search)` datagrams."""

    def __init__(self, answers) -> None:
        self.sock = listener()
        self.port = self.sock.getsockname()[1]
        self._answers = answers
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        data, source = receive(self.sock)
        for datagram in self._answers(data):
            self.sock.sendto(datagram, source)

    def close(self) -> None:
        self._thread.join(5.0)
        self.sock.close()


def claims(search: bytes) -> tuple[int, list[int]]:
    """The sequence id and the instance ids of a SEARCH datagram (big-endian, as ours are)."""
    (sequence,) = struct.unpack(">I", search[8:12])
    at = 8 + 4 + 4 + 16 + 2 + 1 + 4  # seq, flags+reserved, address, port, ["tcp"]
    (count,) = struct.unpack(">H", search[at:at + 2])
    at += 2
    ids = []
    for _ in range(count):
        ids.append(struct.unpack(">I", search[at:at + 4])[0])
        at += 4 + 1 + search[at + 4]
    return sequence, ids


def test_garbage_from_a_fake_server_is_ignored_and_a_good_answer_after_it_counts(softioc_factory):
    ioc = softioc_factory(ONE)

    def answers(search: bytes) -> list[bytes]:
        sequence, ids = claims(search)
        good = response(sequence, ids[:1], bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 9]), 4242, big=False)
        return [b"\xca\x02", b"garbage!", good[:20], good[:8] + b"\x00" * 4,  # short and truncated
                response(sequence ^ 1, ids, bytes(16), 1),  # another search's answer
                response(sequence, [999], bytes(16), 2),  # an id never asked for
                b"\xca\x02\xc0\x04\xff\xff\xff\xff" + good[8:],  # a length beyond the datagram
                good[:4] + struct.pack("<I", 30) + good[8:38],  # a body cut inside its address
                good]

    fake = FakeServer(answers)
    try:
        conf = {**ioc.client_conf(),
                "EPICS_PVA_ADDR_LIST": f"127.0.0.1:{fake.port} {ioc.client_conf()['EPICS_PVA_ADDR_LIST']}"}
        found = find_servers(["FAKE:PV", "ONE:Q1:SET"], conf, timeout=5.0)
    finally:
        fake.close()
    assert found["FAKE:PV"] == ServerAddress("127.0.0.9", 4242, bytes(range(12)).hex())
    assert f"{found['ONE:Q1:SET'].host}:{found['ONE:Q1:SET'].port}" == tcp_address(ioc)


def test_a_response_naming_no_address_means_the_sender_and_short_ones_are_none():
    whole = response(7, [1, 2], bytes(16), 5075)
    parsed = parse_response(whole, "127.0.0.5")
    assert parsed is not None and parsed.ids == (1, 2) and parsed.sequence == 7
    assert (parsed.server.host, parsed.server.port) == ("127.0.0.5", 5075)
    mapped_any = response(7, [1], bytes(10) + b"\xff\xff" + bytes(4), 5075)
    assert parse_response(mapped_any, "127.0.0.6").server.host == "127.0.0.6"
    assert all(parse_response(whole[:n], "127.0.0.5") is None for n in range(len(whole)))
    # a header whose length matches a body cut short anywhere: still none, never an exception
    body = whole[8:]
    assert all(parse_response(whole[:4] + struct.pack(">I", n) + body[:n], "127.0.0.5") is None
               for n in range(len(body)))


@pytest.mark.parametrize("names", [[f"LONG:{i:04d}:" + "X" * 60 for i in range(100)]])
def test_more_names_than_fit_one_datagram_are_all_asked(names):
    with listener() as sock:
        settings = {"EPICS_PVA_ADDR_LIST": f"127.0.0.1:{sock.getsockname()[1]}"}
        find_servers(names, settings, timeout=0.05)
        asked: set[int] = set()
        datagrams = 0
        while len(asked) < len(names):
            data, _ = receive(sock)
            assert len(data) <= 8 + 32 + 1400
            asked.update(claims(data)[1])
            datagrams += 1
    assert asked == set(range(len(names))) and datagrams > 1
