"""One shard's child process, seen from the parent: start it, send it commands, end it.

The child is a fresh interpreter running softioc.shard.child_main (softioc.machine builds its
command line); it prints `# ready`, then answers one JSON command per stdin line, and stops
when stdin closes. `end_process` is shared with devtools' child-process soft IOC.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import subprocess
import threading
import time
import weakref
from collections import deque
from typing import Any

from .errors import SoftIOCError

__all__ = ["READY", "ShardError", "ShardProcess", "end_process", "free_port"]

_log = logging.getLogger("softioc.machine")  # the machine's messages, wherever their code lives
READY = "# ready"


class ShardError(SoftIOCError, RuntimeError):
    """A shard process did not start, answer or stop as asked; says which shard and why."""


def free_port(host: str, kind: int) -> int:
    """A port free on `host` now (TCP or UDP); the shard binds it a moment later."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def end_process(proc: subprocess.Popen[Any], grace: float) -> None:
    """Close the command pipe (the child's cue), then SIGTERM, then SIGKILL; each wait bounded
    by `grace` seconds. Shared by the shards and devtools' child-process soft IOC."""
    if proc.stdin is not None and not proc.stdin.closed:
        try:
            proc.stdin.close()
        except OSError:
            pass
    for action in (None, proc.terminate, proc.kill):
        if proc.poll() is not None:
            return
        if action is not None:
            _log.warning("child process %d still running: %s", proc.pid, action.__name__)
            action()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass


class ShardProcess:
    """One shard's child process: start it, send it commands, see whether it is alive."""

    def __init__(self, index: int, argv: list[str], host: str, port: int, broadcast_port: int,
                 start_timeout: float, reply_timeout: float) -> None:
        self.index, self.argv, self.host = index, argv, host
        self.port, self.broadcast_port = port, broadcast_port
        self.start_timeout, self.reply_timeout = start_timeout, reply_timeout
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=20)
        self._lock = threading.Lock()
        self._ready = False
        self.stopping = False

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self._ready

    @property
    def address(self) -> str:
        """The UDP search address clients list in EPICS_PVA_ADDR_LIST."""
        return f"{self.host}:{self.broadcast_port}"

    def spawn(self) -> None:
        """Start the child without waiting (start several, then `wait_ready` each)."""
        self._lines, self._stderr, self._ready, self.stopping = queue.Queue(), deque(maxlen=20), False, False
        self.proc = proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1, start_new_session=True)  # a Ctrl-C reaches the parent, which stops every shard
        weakref.finalize(self, end_process, proc, 2.0)
        for pump, name in ((self._pump_stdout, "out"), (self._pump_stderr, "err")):
            threading.Thread(target=pump, args=(proc,), daemon=True, name=f"shard{self.index}-{name}").start()

    def _pump_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _pump_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._stderr.append(line.rstrip("\n"))
            _log.warning("shard %d (pid %d): %s", self.index, proc.pid, line.rstrip("\n"))

    def _next(self, deadline: float, what: str) -> str:
        try:
            line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise ShardError(f"shard {self.index}: no {what} within its timeout; "
                             f"output: {' | '.join(self._stderr) or '(none)'}") from None
        if line is None:
            code = self.proc.poll() if self.proc else None
            raise ShardError(f"shard {self.index} exited (status {code}) before {what}; "
                             f"output: {' | '.join(self._stderr) or '(none)'}")
        return line

    def wait_ready(self) -> None:
        """Block until the child printed `# ready` (ShardError on exit or timeout)."""
        deadline = time.monotonic() + self.start_timeout
        while self._next(deadline, "'# ready'") != READY:
            pass
        self._ready = True

    def call(self, command: str, argument: Any = None, timeout: float | None = None) -> Any:
        """Run a command in the shard and return its result; ShardError if it is down or fails."""
        proc = self.proc
        if proc is None or not self._ready or proc.poll() is not None or proc.stdin is None:
            raise ShardError(f"shard {self.index} is not running (command {command!r})")
        with self._lock:
            try:
                proc.stdin.write(json.dumps({"command": command, "argument": argument}, default=str) + "\n")
                proc.stdin.flush()
            except OSError as exc:
                raise ShardError(f"shard {self.index}: cannot send {command!r}: {exc}") from None
            deadline = time.monotonic() + (self.reply_timeout if timeout is None else timeout)
            try:
                line = self._next(deadline, f"reply to {command!r}")
            except ShardError:
                self._ready = False  # a late reply would answer the next command
                raise
        reply = json.loads(line)
        if not reply["ok"]:
            raise ShardError(f"shard {self.index}: {command!r} failed: {reply['error']}")
        return reply["result"]

    def stop(self, grace: float = 5.0) -> None:
        """Ask the child to stop, then SIGTERM, then SIGKILL."""
        proc, self.stopping = self.proc, True
        if proc is None:
            return
        if self.alive:
            try:
                self.call("stop", timeout=grace)
            except ShardError as exc:
                _log.warning("%s", exc)
        self._ready = False
        end_process(proc, grace)
