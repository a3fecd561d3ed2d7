"""A child process that prints `# ready`, then answers one JSON command per stdin line.

The one runner behind the machine's shards (softioc.shard_process) and devtools' child-process
soft IOC: stdout lines are pumped into a queue and stderr into a bounded tail (each line logged),
every read of a line has a deadline, and an error says which process, what was awaited, its exit
status and its stderr tail. Stopping asks, then closes stdin, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from .errors import ChildError

__all__ = ["READY", "ChildProcess", "end_process", "parse_banner"]

READY = "# ready"
_machine_log = logging.getLogger("softioc.machine")  # end_process's messages, as before


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
            _machine_log.warning("child process %d still running: %s", proc.pid, action.__name__)
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

class ChildProcess:
    """Start a command-answering child, read its lines before deadlines, send it commands, end it.

    Subclasses set `error` (the exception raised), `logger`, `tail` (stderr lines kept) and
    `stringify`, and pass `label` ("shard 2", "soft IOC process") to name it in messages.
    """

    error: ClassVar[type[ChildError]] = ChildError
    logger: ClassVar[logging.Logger] = logging.getLogger(__name__)
    tail: ClassVar[int] = 20
    stringify: ClassVar[bool] = False  # send what JSON cannot encode as its str()

    def __init__(self, label: str, reply_timeout: float) -> None:
        self.label, self.reply_timeout = label, reply_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=self.tail)
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

    def _output(self) -> str:
        return " | ".join(self._stderr) or "(no output)"

    def _spawn(self, argv: Sequence[str], cwd: str | Path | None = None) -> subprocess.Popen[str]:
        """Start the child with its stdout and stderr pumped, without waiting for `# ready`."""
        self._lines, self._stderr, self._ready = queue.Queue(), deque(maxlen=self.tail), False
        # a session of its own: a Ctrl-C reaches the parent only, which then stops the child
        self._proc = proc = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                             bufsize=1, start_new_session=True)
        weakref.finalize(self, end_process, proc, 2.0)  # at exit or collection: no orphan
        self._pumps = [threading.Thread(target=pump, args=(proc,), daemon=True,
                                        name=f"child-{proc.pid}-{name}")
                       for pump, name in ((self._pump_stdout, "stdout"), (self._pump_stderr, "stderr"))]
        for thread in self._pumps:
            thread.start()
        return proc

    def _pump_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # EOF: the child has gone

    def _pump_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        with proc.stderr:
            for line in proc.stderr:
                line = line.rstrip("\n")
                self._stderr.append(line)
                self.logger.warning("%s (pid %d): %s", self.label, proc.pid, line)

    def _next_line(self, deadline: float, what: str) -> str:
        """The child's next stdout line; `error` naming `what` if it exits or the deadline passes."""
        try:
            line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise self.error(f"{self.label}: no {what} within its timeout; "
                             f"output: {self._output()}") from None
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
                             f"output: {self._output()}")
        return line

    def _await_ready(self, timeout: float, before: list[str] | None = None) -> None:
        """Read lines until `# ready` (appending the others to `before`), at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while (line := self._next_line(deadline, "'# ready'")) != READY:
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

    def _end(self, grace: float) -> None:
        """Ask the child to stop, then end_process it; each wait bounded by `grace` seconds."""
        proc = self._proc
        if proc is None:
            return
        if self.alive:
            try:
                self.call("stop", timeout=grace)
            except ChildError as exc:
                self.logger.warning("%s", exc)
        self._ready = False
        end_process(proc, grace)
        for thread in self._pumps:  # they end at the streams' EOF, now the child has gone
            thread.join(grace)
