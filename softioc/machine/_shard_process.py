"""One shard's child process, seen from the parent: start it, send it commands, end it.

The child is a fresh interpreter running `_shard.child_main` (`_machine` builds its
command line); it prints `# ready`, then answers one JSON command per stdin line, and stops
when stdin closes. The running of it is softioc.child_process's, shared with devtools'
child-process soft IOC; this module adds the shard's index, ports and address.
"""

from __future__ import annotations

import logging

from ..child_process import ChildProcess, parse_banner
from ..errors import ShardError

__all__ = ["ShardProcess"]

_log = logging.getLogger(__name__)


class ShardProcess(ChildProcess):
    """One shard's child process: start it, send it commands, see whether it is alive."""

    error = ShardError
    logger = _log
    tail = 20
    stringify = True

    def __init__(self, index: int, argv: list[str], host: str, port: int, broadcast_port: int,
                 start_timeout: float, reply_timeout: float) -> None:
        """`argv` starts the child without its ports: `spawn` adds --port and --broadcast-port.

        `port` 0 lets the child bind any free TCP port (clients find it by UDP search); the
        port it bound, read from its banner, is kept, so a restart comes back on it.
        """
        super().__init__(f"shard {index}", reply_timeout)
        self.index, self.argv, self.host = index, argv, host
        self.port, self.broadcast_port = port, broadcast_port
        self.start_timeout = start_timeout
        self.stopping = False

    @property
    def address(self) -> str:
        """The UDP search address clients list in EPICS_PVA_ADDR_LIST."""
        return f"{self.host}:{self.broadcast_port}"

    def spawn(self) -> None:
        """Start the child without waiting (start several, then `wait_ready` each)."""
        self.stopping = False
        self._spawn([*self.argv, "--port", str(self.port), "--broadcast-port", str(self.broadcast_port)])

    def wait_ready(self) -> None:
        """Block until the child printed `# ready` (ShardError on exit or timeout); keep its TCP port."""
        banner: list[str] = []
        self._await_ready(self.start_timeout, banner)
        self.port = int(parse_banner(banner, ShardError).get("EPICS_PVA_SERVER_PORT", self.port))

    def stop(self, grace: float = 5.0) -> None:
        """Ask the child to stop, then SIGTERM, then SIGKILL."""
        self.stopping = True
        self._end(grace)
