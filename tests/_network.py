"""Network helpers the tests share: this machine's own non-loopback address."""

from __future__ import annotations

import ipaddress
import socket

import pytest


def other_address() -> str:
    """A non-loopback IPv4 address of this machine (the test is skipped without one).

    Traffic to it stays inside this machine: the kernel delivers it locally, as on loopback.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        address = probe.getsockname()[0]
    except OSError:
        address = "127.0.0.1"
    finally:
        probe.close()
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address
