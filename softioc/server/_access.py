"""Who may write: the access rules for control PVs and setpoints; and which hosts are loopback.

A rule is a list of entries, each naming a client as a put handler sees it
(`op.account()` and the host part of `op.peer()`):

    "alice"             the account alice, from any host
    "@10.1.2.3"         any account from that host (an address, or a name resolved at start)
    "alice@10.1.2.3"    the account alice from that host only
    "*"                 everyone

Control PVs (FAULT:ARM, FAULT:CLEAR, RESTART, ...) follow `[ioc] control_from`, by default
only the account that started the soft IOC; setpoints follow `[ioc] write_from`, by default
everyone (a simulated machine is there for its clients).
"""

from __future__ import annotations

import getpass
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["AccessRule", "is_loopback", "owner", "peer_of"]

EVERYONE = "*"


def is_loopback(host: str) -> bool:
    """True when `host` (an address or 'localhost') reaches this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def owner() -> str:
    """The account running this process: the soft IOC's owner."""
    return getpass.getuser()


def _addresses(host: str) -> frozenset[str]:
    """Every address `host` stands for (itself if it is one); ConfigError if it resolves to none."""
    try:
        return frozenset({str(ipaddress.ip_address(host))})
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise ConfigError(f"access rule host {host!r} cannot be resolved: {exc}") from None
    return frozenset(str(info[4][0]) for info in infos)


def peer_of(op: Any) -> tuple[str, str]:
    """(account, host address) of the client behind a p4p server operation ('' when unknown)."""
    try:
        account = str(op.account())
    except Exception:  # noqa: BLE001 - an unknown account matches no named entry
        account = ""
    try:
        peer = str(op.peer())
    except Exception:  # noqa: BLE001
        peer = ""
    host = peer.rsplit(":", 1)[0].strip("[]") if ":" in peer else peer
    return account, host


@dataclass(frozen=True)
class AccessRule:
    """One named rule (`control_from`, `write_from`): `entries` None lets everyone write."""

    name: str
    entries: tuple[str, ...] | None
    _resolved: tuple[tuple[str, frozenset[str] | None], ...] = ()

    @classmethod
    def build(cls, name: str, entries: Iterable[str] | None) -> AccessRule:
        """A rule with its host names resolved now (at soft IOC start)."""
        if entries is None or EVERYONE in entries:
            return cls(name, None)
        resolved = []
        for entry in entries:
            account, at, host = entry.partition("@")
            resolved.append((account, _addresses(host) if at else None))
        return cls(name, tuple(entries), tuple(resolved))

    def allows(self, account: str, host: str) -> bool:
        """True when a client with this account, at this address, may write."""
        if self.entries is None:
            return True
        for want_account, hosts in self._resolved:
            if want_account and want_account != account:
                continue
            if hosts is not None and host not in hosts:
                continue
            return True
        return False

    def refusal(self, pv: str, account: str, host: str) -> str | None:
        """None if allowed, else the message of the refusal naming the rule."""
        if self.allows(account, host):
            return None
        return (f"{pv}: write refused by the soft IOC's {self.name} rule: account {account!r} "
                f"from {host or 'an unknown host'} is not in {list(self.entries or ())}")
