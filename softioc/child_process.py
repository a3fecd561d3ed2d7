"""Child processes: the one runner behind the machine's shards, EPICS base's softIoc and
devtools' soft IOC process, the command loop a child answers on, and the free ports it is given.

The runner starts a child with its output pumped (stdout lines into a queue, stderr into a
bounded tail, each line logged), reads every line before a deadline, and says in an error
which process, what was awaited, its exit status and its output. A command-answering child
prints `# ready`, then answers one JSON command per stdin line (`serve_commands` is its side).
Stopping asks, then closes stdin, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from .errors import ChildError

__all__ = ["READY", "ChildProcess", "end_process", "free_port", "parse_banner", "serve_commands"]

READY = "# ready"
_log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


SERVER_PORTS_FROM = 20000
"""The lowest port free_port gives; it gives none from the kernel's ephemeral range."""
_GIVEN_HOLD_S = 600.0
"""How long a port free_port gave is not given again by this process (its child may not have bound it yet)."""
_given: dict[int, float] = {}  # port -> when free_port gave it
_given_lock = threading.Lock()


def _new_given_lock() -> None:
    global _given_lock
    _given_lock = threading.Lock()  # a forked child: the thread holding the lock is not there


os.register_at_fork(after_in_child=_new_given_lock)


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's ip_local_port_range)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as text:
            return int(text.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152  # IANA's dynamic range, where most other systems start it


def free_port(host: str, *kinds: int) -> int:
    """A port free on `host` now for every socket kind in `kinds` (socket.SOCK_STREAM,
    socket.SOCK_DGRAM); the child binds it a moment later.

    Chosen below the kernel's ephemeral range: pvxs binds every UDP socket with SO_REUSEADDR,
    so a client's search socket, bound to port 0 in any process, could be given a server's
    UDP port while that server holds it, and take the searches sent to the server. (Where the
    ephemeral range starts too low to leave room, the kernel chooses, as before.) A port is
    not given twice within ten minutes by one process, so the ports of a machine's shards, or
    of EPICS base's IOC, differ even before their children bind them. Another process may
    take the port in between: a child given a TCP port checks that it bound it.
    OSError when no port is free for every kind after 100 tries.
    """
    low = _ephemeral_low()
    rng = random.SystemRandom()
    with _given_lock:
        now = time.monotonic()
        for stale in [p for p, when in _given.items() if now - when > _GIVEN_HOLD_S]:
            del _given[stale]
        for _ in range(100):
            port = rng.randrange(SERVER_PORTS_FROM, low) if low - SERVER_PORTS_FROM >= 1000 else 0
            if port in _given:  # given a moment ago, perhaps not bound yet (a machine's other shard)
                continue
            sockets: list[socket.socket] = []
            try:
                for kind in kinds:
                    sock = socket.socket(socket.AF_INET, kind)
                    sockets.append(sock)
                    sock.bind((host, port))
                    port = int(sock.getsockname()[1])  # port 0: the kernel's choice, for the other kinds too
            except OSError:
                continue
            finally:
                for sock in sockets:
                    sock.close()
            _given[port] = now
            return port
    raise OSError(f"found no free port on {host} for socket kinds {kinds}")


def end_process(proc: subprocess.Popen[Any], grace: float, log: logging.Logger = _log,
                label: str = "child process") -> None:
    """Close the command pipe (the child's cue), then SIGTERM, then SIGKILL; each wait bounded
    by `grace` seconds."""
    if proc.stdin is not None and not proc.stdin.closed:
        try:
            proc.stdin.close()
        except OSError:
            pass
    for action in (None, proc.terminate, proc.kill):
        if proc.poll() is not None:
            return
        if action is not None:
            log.warning("%s %d still running: %s", label, proc.pid, action.__name__)
            action()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass


def parse_banner(lines: Sequence[str], error: type[ChildError] = ChildError) -> dict[str, str]:
    """The client settings a child printed before `# ready`: its NAME=value lines (`export ` allowed)."""
    conf = {}
    for line in lines:
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise error(f"unexpected banner line {line!r} (expected NAME=value)")
        conf[name] = value
    return conf


def serve_commands(commands: Callable[[str, Any], Any], stop: threading.Event, infd: int = 0) -> bool:
    """The child's side: answer one JSON command per line of `infd` on stdout until `stop` or EOF
    (parent gone); `commands(name, argument)` gives each reply's result. Raw reads: no
    buffered-stdin lock. True when the parent asked to stop (the `stop` command)."""
    pending = b""
    while not stop.is_set():
        try:
            chunk = os.read(infd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            command = None
            try:
                request = json.loads(line)
                command, argument = request["command"], request.get("argument")
                reply: dict[str, Any] = {"ok": True, "result": None if command == "stop" else commands(command, argument)}
            except Exception as exc:  # noqa: BLE001 - sent to the parent, which raises it there
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(reply, default=str) + "\n")
            sys.stdout.flush()
            if command == "stop":
                stop.set()
                return True
    stop.set()
    return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ChildProcess:
    """Start a child, read its lines before deadlines, send it commands, end it.

    Subclasses set `error` (the exception raised), `logger`, `tail` (output lines kept),
    `output_level` (the level each output line is logged at), `stringify`, and `answers`
    (False for a child that takes no JSON commands, such as an IOC shell), and pass `label`
    ("shard 2", "soft IOC process") to name it in messages.
    """

    error: ClassVar[type[ChildError]] = ChildError
    logger: ClassVar[logging.Logger] = _log
    tail: ClassVar[int] = 20
    output_level: ClassVar[int] = logging.WARNING
    stringify: ClassVar[bool] = False  # send what JSON cannot encode as its str()
    answers: ClassVar[bool] = True  # past `# ready` its stdout carries replies to commands

    def __init__(self, label: str, reply_timeout: float) -> None:
        self.label, self.reply_timeout = label, reply_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._output: deque[str] = deque(maxlen=self.tail)
        self._lock = threading.Lock()  # one command in flight: replies come back in order
        self._pumps: list[threading.Thread] = []
        self._ready = False  # past `# ready`: stdout then carries only replies

    @property
    def proc(self) -> subprocess.Popen[str] | None:
        """The child's process (None before it was started)."""
        return self._proc

    @property
    def pid(self) -> int | None:
        """The child's process id (None before it was started)."""
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        """Whether the child is running and has said `# ready`."""
        return self._proc is not None and self._proc.poll() is None and self._ready

    def _shown_output(self) -> str:
        return " | ".join(self._output) or "(no output)"

    def _spawn(self, argv: Sequence[str], cwd: str | Path | None = None, env: Mapping[str, str] | None = None,
               *, merge_output: bool = False, die_with_parent: bool = False) -> subprocess.Popen[str]:
        """Start the child with its output pumped, without waiting for it to be ready.

        `merge_output`: its stderr joins its stdout (one stream, every line kept in the tail);
        `die_with_parent`: on Linux the kernel kills it when the thread starting it ends.
        """
        self._lines, self._output, self._ready = queue.Queue(), deque(maxlen=self.tail), False
        preexec = _die_with_parent if die_with_parent and sys.platform.startswith("linux") else None
        # a session of its own: a Ctrl-C reaches the parent only, which then stops the child
        self._proc = proc = subprocess.Popen(
            list(argv), cwd=cwd, env=None if env is None else dict(env), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
            text=True, errors="replace", bufsize=1, start_new_session=True, preexec_fn=preexec)
        weakref.finalize(self, end_process, proc, 2.0)  # at exit or collection: no orphan
        pumps = [(self._pump_stdout, "stdout")] + ([] if merge_output else [(self._pump_stderr, "stderr")])
        self._pumps = [threading.Thread(target=pump, args=(proc, merge_output), daemon=True,
                                        name=f"child-{proc.pid}-{name}") for pump, name in pumps]
        for thread in self._pumps:
            thread.start()
        return proc

    def _keep(self, proc: subprocess.Popen[str], line: str) -> None:
        self._output.append(line)
        self.logger.log(self.output_level, "%s (pid %d): %s", self.label, proc.pid, line)

    def _pump_stdout(self, proc: subprocess.Popen[str], merged: bool) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                line = line.rstrip("\n")
                if merged:
                    self._keep(proc, line)
                if self.answers or not self._ready:
                    self._lines.put(line)
        self._lines.put(None)  # EOF: the child has gone

    def _pump_stderr(self, proc: subprocess.Popen[str], merged: bool) -> None:
        assert proc.stderr is not None
        with proc.stderr:
            for line in proc.stderr:
                self._keep(proc, line.rstrip("\n"))

    def _next_line(self, deadline: float, what: str) -> str:
        """The child's next stdout line; `error` naming `what` if it exits or the deadline passes."""
        try:
            line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise self.error(f"{self.label}: no {what} within its timeout; "
                             f"output: {self._shown_output()}") from None
        if line is None:
            code = None
            if self._proc is not None:
                try:
                    code = self._proc.wait(5.0)
                except subprocess.TimeoutExpired:
                    pass
            for pump in self._pumps[1:]:  # its last stderr lines, read to their end (bounded)
                pump.join(2.0)
            raise self.error(f"{self.label} exited (status {code}) before {what}; "
                             f"output: {self._shown_output()}")
        return line

    def _is_ready(self, line: str) -> bool:
        """Whether `line` is the child's word that it is ready."""
        return line == READY

    def _await_ready(self, timeout: float, before: list[str] | None = None) -> None:
        """Read lines until the ready line (appending the others to `before`), at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while not self._is_ready(line := self._next_line(deadline, "'# ready'")):
            if before is not None:
                before.append(line)
        self._ready = True

    def call(self, command: str, argument: Any = None, timeout: float | None = None) -> Any:
        """Run `command` in the child and return its result; `error` if it is down or fails."""
        proc = self._proc
        if proc is None or not self._ready or proc.poll() is not None or proc.stdin is None:
            raise self.error(f"{self.label} is not running (command {command!r})")
        with self._lock:
            try:
                request = json.dumps({"command": command, "argument": argument},
                                     default=str if self.stringify else None)
                proc.stdin.write(request + "\n")
                proc.stdin.flush()
            except OSError as exc:
                raise self.error(f"{self.label}: cannot send {command!r}: {exc}") from None
            deadline = time.monotonic() + (self.reply_timeout if timeout is None else timeout)
            try:
                line = self._next_line(deadline, f"reply to {command!r}")
            except ChildError:
                self._ready = False  # a late reply would answer the next command: no more commands
                raise
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            raise self.error(f"{self.label}: {command!r}: not a reply: {line!r}") from None
        if not reply["ok"]:
            raise self.error(f"{self.label}: {command!r} failed: {reply['error']}")
        return reply["result"]

    def _ask_to_stop(self, grace: float) -> None:
        """The polite first step of stopping: the `stop` command, answered within `grace` s."""
        if self.alive and self.answers:
            try:
                self.call("stop", timeout=grace)
            except ChildError as exc:
                self.logger.warning("%s", exc)

    def _end(self, grace: float) -> None:
        """Ask the child to stop, then end_process it; each wait bounded by `grace` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._ask_to_stop(grace)
        self._ready = False
        end_process(proc, grace, self.logger, self.label)
        self._join_pumps(grace)

    def _join_pumps(self, timeout: float) -> None:
        for thread in self._pumps:  # they end at the streams' EOF, once the child has gone
            thread.join(timeout)
