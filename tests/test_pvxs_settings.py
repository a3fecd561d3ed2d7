"""The search settings are read here as pvxs reads them: checked against pvxs's own reading.

A p4p client context reports the configuration pvxs made of its settings (`Context.conf()`):
with EPICS_PVA_AUTO_ADDR_LIST taken as YES, the broadcast address of every interface joins
EPICS_PVA_ADDR_LIST there. Building a context sends nothing: pvxs searches only for the
channels a client opens, and none is opened here. Every context below has an empty or
loopback-only address list and no name servers.
"""

from __future__ import annotations

import ipaddress

import pytest
from p4p.client.thread import Context

from epics_pva.core import settings_problems
from epics_pva.transport import auto_addr_list, endpoint, entries, numeric_address


def effective(conf):
    """pvxs's configuration of a client context built from `conf` alone (no channel, no search)."""
    ctx = Context("pva", conf=conf, useenv=False)
    try:
        return ctx.conf()
    finally:
        ctx.close()


AUTO_VALUES = ["NO", "no", "No", "nO", "0", "YES", "yes", "Yes", "1", " NO", "NO ", "\tNO", "NO\n", "off",
               "OFF", "false", "False", "", "00", "0 ", "+0", "-0", "0.0", "n", "NONE", "disabled", "2"]


def test_auto_addr_list_is_no_exactly_when_pvxs_takes_it_as_no():
    broadcasts = effective({"EPICS_PVA_AUTO_ADDR_LIST": "YES", "EPICS_PVA_ADDR_LIST": ""})
    if not broadcasts["EPICS_PVA_ADDR_LIST"]:
        pytest.skip("no interface here has a broadcast address: pvxs's YES and NO look alike")
    seen = {}
    for value in AUTO_VALUES:
        searched = effective({"EPICS_PVA_AUTO_ADDR_LIST": value, "EPICS_PVA_ADDR_LIST": ""})["EPICS_PVA_ADDR_LIST"]
        seen[value] = bool(searched)
    assert {v: auto_addr_list(v) for v in AUTO_VALUES} == seen
    assert [v for v, on in seen.items() if not on] == ["NO", "no", "No", "nO", "0"]
    assert auto_addr_list(None)  # unset: pvxs's default


def ours(text, default_port=5076):
    """The destinations this package reads from an address list, written as pvxs writes them."""
    found = set()
    for entry in entries(text):
        host, port, ipv6 = endpoint(entry)
        address = numeric_address(host, ipv6)
        assert address is not None, entry
        shown = f"[{address}]" if address.version == 6 else str(address)
        found.add(f"{shown}:{port or default_port}")
    return sorted(found)


def theirs(text, port=None):
    conf = {"EPICS_PVA_AUTO_ADDR_LIST": "NO", "EPICS_PVA_ADDR_LIST": text}
    if port is not None:
        conf["EPICS_PVA_BROADCAST_PORT"] = str(port)
    listed = effective(conf)["EPICS_PVA_ADDR_LIST"]
    return sorted(listed.split(" ")) if listed else []


@pytest.mark.parametrize("text", [
    "127.0.0.1", "127.0.0.1:5099", "127.0.0.1 127.0.0.2", "127.0.0.1\t127.0.0.2\r\n127.0.0.3\n",
    "  127.0.0.1   127.0.0.1:5076 ", "127.0.0.1,3", "127.0.0.1,3@lo", "127.0.0.1@lo", "127.0.0.2:5099,1",
    "::1", "[::1]", "[::1]:5099", "x[::1]:5099", "[127.0.0.1]:5099", "0:0:0:0:0:0:0:1",
    # numeric forms, loopback however read: libevent's inet_pton reads leading zeros as decimal
    # (the C library as octal: 127.0.0.8), and sscanf's signs, white space and wrap-around;
    # getaddrinfo the rest
    "127.0.0.010", "+127.0.0.1", "127.0.0.+1", "\v127.0.0.1", "4294967423.0.0.1",
    "127.1", "2130706433", "0x7f.0.0.1", "[0x7f.0.0.1]",
])
def test_address_lists_are_split_and_read_as_pvxs_does(text):
    assert all(ipaddress.ip_address(e.rpartition(":")[0].strip("[]")).is_loopback for e in ours(text))
    assert ours(text) == theirs(text)
    assert ours(text, 5999) == theirs(text, 5999)


@pytest.mark.parametrize("text", ["127.0.0.1,127.0.0.2", "127.0.0.1;127.0.0.2", "127.0.0.1\v127.0.0.2",
                                  "127.0.0.1\u00a0127.0.0.2", "127.0.0.1:", "127.0.0.1@lo,3", "[::1"])
def test_what_pvxs_does_not_split_is_one_entry_here(text):
    """pvxs ignores each of these whole (a comma starts a TTL; only space, tab, CR and LF
    separate entries): one entry here too, never two addresses."""
    assert theirs(text) == []
    assert entries(text) == [text]


def test_leading_zeros_are_decimal_as_libevent_reads_them():
    """Not built into a context (it is no loopback address): pvxs reads "0177.0.0.1" as
    177.0.0.1, where the C library's getaddrinfo reads 127.0.0.1."""
    assert str(numeric_address("0177.0.0.1")) == "177.0.0.1"
    assert str(numeric_address("127.0.0.010")) == "127.0.0.10"
    problems = settings_problems({"EPICS_PVA_AUTO_ADDR_LIST": "NO", "EPICS_PVA_ADDR_LIST": "0177.0.0.1"})
    assert "neither loopback nor allowed" in problems["EPICS_PVA_ADDR_LIST"]


def test_the_rehearsal_check_reads_each_entry_as_pvxs_does():
    def problems(addr_list):
        return settings_problems({"EPICS_PVA_AUTO_ADDR_LIST": "NO", "EPICS_PVA_ADDR_LIST": addr_list})

    assert problems("127.0.0.1,10.1.2.3") == {}  # one entry (TTL "10.1.2.3"): pvxs ignores it whole
    assert problems("127.0.0.1:5076,1@lo 127.1 [::1]:5076") == {}
    assert "neither loopback nor allowed" in problems("127.0.0.1 10.1.2.3,5")["EPICS_PVA_ADDR_LIST"]
    for broadcast in ("10.1.2.255@eth0", "4294967295", "10.1.2.255,1", "x[ff02::1]"):
        assert "a broadcast or multicast address" in problems(broadcast)["EPICS_PVA_ADDR_LIST"], broadcast
    assert "neither loopback" in problems("127.0.0.1\v10.1.2.3")["EPICS_PVA_ADDR_LIST"]  # unreadable: refused
