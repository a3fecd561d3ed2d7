"""Where one soft IOC serves: its p4p server on one host, and the ports that server bound.

The ports bound the first time are kept, so that a restart (an outage) and the next start
come back where clients look. Taking the server down and bringing it back may race (a fault
expiring, a RESTART put, stop()); one lock orders them.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from p4p.server import Server

from ..child_process import free_port
from ..errors import PortInUseError

_log = logging.getLogger(__name__)

__all__ = ["Endpoint"]


class Endpoint:
    """The p4p server of one soft IOC on `host`: TCP `port` and UDP `broadcast_port` (0: free ones)."""

    def __init__(self, host: str, port: int, broadcast_port: int) -> None:
        self.host, self.port, self.broadcast_port = host, port, broadcast_port
        self._server: Server | None = None
        self._bound: dict[str, str] | None = None  # the server settings of the ports once bound
        self.effective: dict[str, str] = {}  # the running (or last) server's configuration
        self._lock = threading.Lock()  # one take-down or bring-back at a time

    @property
    def up(self) -> bool:
        """Whether the server is on the network now."""
        return self._server is not None

    def serve(self, provider: Any) -> None:
        """Start the p4p server: first time on the configured ports, later on the same ones.

        PortInUseError when an explicit (or, on restart, a previously bound) TCP port is taken.
        """
        if not self._bound and self.broadcast_port == 0:
            # a search port of the kernel's choice could also be given to a client's search
            # socket (pvxs binds both with SO_REUSEADDR), which would then take its searches
            self.broadcast_port = free_port(self.host, socket.SOCK_DGRAM)
        conf = dict(self._bound) if self._bound else {
            "EPICS_PVAS_INTF_ADDR_LIST": self.host,
            "EPICS_PVAS_BEACON_ADDR_LIST": self.host,
            "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
            "EPICS_PVAS_SERVER_PORT": str(self.port),
            "EPICS_PVAS_BROADCAST_PORT": str(self.broadcast_port),
            "EPICS_PVA_ADDR_LIST": self.host,
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_SERVER_PORT": str(self.port),
            "EPICS_PVA_BROADCAST_PORT": str(self.broadcast_port),
        }
        server = Server(providers=[provider], conf=conf, useenv=False)
        effective = server.conf()
        # pvxs moves a server whose TCP port is taken to another one with only a warning, and
        # clients then see two servers of the same PVs: an explicit (or, on restart, a
        # previously bound) port must be the one bound. The UDP search port is not checked:
        # pvxs binds it with SO_REUSEADDR so that several servers on one host share it (as
        # EPICS IOCs share 5076), and it reports the asked port whether shared or not.
        wanted = conf["EPICS_PVAS_SERVER_PORT"]
        if wanted != "0" and effective["EPICS_PVAS_SERVER_PORT"] != wanted:
            server.stop()
            raise PortInUseError(
                f"soft IOC: TCP port {wanted} on {self.host} is in use by another server "
                f"(pvxs fell back to {effective['EPICS_PVAS_SERVER_PORT']}); stop it or choose another port"
            )
        self._server, self.effective = server, effective
        # keep the ports actually bound, so restart() and the next start() come back where clients look
        self._bound = {k: v for k, v in effective.items() if k.startswith("EPICS_PVAS_")}

    def take_down(self) -> None:
        """Stop the server (its PVs vanish from the network); bring_back() serves them again."""
        with self._lock:
            self.close()

    def bring_back(self, provider: Any) -> None:
        """Serve again on the same ports unless already up; a port taken meanwhile is logged."""
        with self._lock:
            if self._server is None:
                try:
                    self.serve(provider)
                except PortInUseError:
                    _log.exception("soft IOC cannot serve again on its port; it stays down")
                    return
                _log.warning("soft IOC server back on %s", self.describe())

    def close(self) -> None:
        """Stop the server if it runs (the ports stay chosen for the next serve)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client_conf(self) -> dict[str, str]:
        """The client configuration reaching this server (its search port and TCP port)."""
        conf = self.effective
        return {
            "EPICS_PVA_ADDR_LIST": f"{self.host}:{conf['EPICS_PVAS_BROADCAST_PORT']}",
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_SERVER_PORT": conf["EPICS_PVAS_SERVER_PORT"],
            "EPICS_PVA_BROADCAST_PORT": conf["EPICS_PVAS_BROADCAST_PORT"],
        }  # no EPICS_PVA_NAME_SERVERS: its TCP reconnect backs off ~7 s after a restart, UDP search doesn't

    def describe(self) -> str:
        """Host, TCP and UDP ports being served, for logs."""
        conf = self.effective
        return f"{self.host} tcp:{conf.get('EPICS_PVAS_SERVER_PORT')} udp:{conf.get('EPICS_PVAS_BROADCAST_PORT')}"
