"""The child-process runner the shards and devtools' soft IOC share: its errors name the process."""

from __future__ import annotations

import socket
import sys

import pytest

from devtools.ioc_process import IOCProcessError
from softioc.child_process import SERVER_PORTS_FROM, free_port
from softioc.errors import ChildError, SoftIOCError
from softioc.machine import ShardError, ShardProcess

# prints `# ready`, then answers each command line; `garble` gets a line that is not JSON
ECHO = """
import json, sys
print("# ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if request["command"] == "garble":
        print("not json", flush=True)
        continue
    ok = request["command"] != "fail"
    reply = {"ok": ok, "result": request["argument"], "error": "ValueError: asked to fail"}
    print(json.dumps(reply), flush=True)
    if request["command"] == "stop":
        break
"""


def shard(code: str, start_timeout: float = 30.0) -> ShardProcess:
    return ShardProcess(3, [sys.executable, "-c", code], "127.0.0.1", 0, 0, start_timeout, 30.0)


def test_the_errors_share_one_base() -> None:
    for cls in (ShardError, IOCProcessError):
        assert issubclass(cls, ChildError) and issubclass(cls, SoftIOCError)
        assert issubclass(cls, RuntimeError)


@pytest.mark.parametrize(("code", "start_timeout", "message"), [
    ("import sys; sys.stderr.write('cannot bind\\n'); sys.exit(3)", 30.0,
     r"^shard 3 exited \(status 3\) before '# ready'; output: cannot bind$"),
    ("import time; time.sleep(60)", 0.2,
     r"^shard 3: no '# ready' within its timeout; output: \(no output\)$"),
], ids=["exits", "silent"])
def test_a_shard_that_does_not_start_is_named_with_its_status_and_stderr(
        code: str, start_timeout: float, message: str) -> None:
    s = shard(code, start_timeout)
    s.spawn()
    try:
        with pytest.raises(ShardError, match=message):
            s.wait_ready()
    finally:
        s.stop(grace=2.0)
    assert not s.alive and s.stopping
    assert s.proc is not None and s.proc.poll() is not None  # ended, not left behind


def test_a_shard_answers_commands_and_names_a_failed_or_garbled_one() -> None:
    s = shard(ECHO)
    with pytest.raises(ShardError, match=r"^shard 3 is not running \(command 'echo'\)$"):
        s.call("echo", 1)
    s.spawn()
    try:
        s.wait_ready()
        assert s.alive
        assert s.call("echo", {"x": [1, 2]}) == {"x": [1, 2]}
        assert s.call("echo", ValueError("sent as text")) == "sent as text"  # the shards stringify
        with pytest.raises(ShardError, match=r"^shard 3: 'fail' failed: ValueError: asked to fail$"):
            s.call("fail")
        with pytest.raises(ShardError, match=r"^shard 3: 'garble': not a reply: 'not json'$"):
            s.call("garble")
        assert s.call("echo", 2) == 2  # a garbled reply does not stop the commands
    finally:
        s.stop(grace=2.0)
    assert s.proc is not None and s.proc.wait(5.0) == 0  # it stopped when asked
    assert not s.alive


def test_free_port_never_gives_one_port_twice_though_none_was_bound() -> None:
    """A machine's shards get their search ports before any shard binds one: they must differ.

    1,000 random choices from the ~12,000 ports below the ephemeral range would repeat one
    (almost surely) if each were chosen alone.
    """
    ports = [free_port("127.0.0.1", socket.SOCK_DGRAM) for _ in range(500)]
    ports += [free_port("127.0.0.1", socket.SOCK_STREAM, socket.SOCK_DGRAM) for _ in range(500)]
    assert len(set(ports)) == len(ports)
    assert all(SERVER_PORTS_FROM <= port for port in ports)


def test_free_port_skips_a_port_a_socket_holds() -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        holder.bind(("127.0.0.1", 0))
        held = holder.getsockname()[1]
        assert held not in {free_port("127.0.0.1", socket.SOCK_DGRAM) for _ in range(200)}
    finally:
        holder.close()
