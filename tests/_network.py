"""Network helpers the tests share: a private network to serve beyond loopback in.

A test marked `private_network` needs an address that is not loopback (to show that the soft
IOC serves there only when allowed, or that a search arriving there is not answered). It never
uses this machine's own interfaces: the test is run again, alone, in a new user and network
namespace (`unshare`), where the only interfaces are loopback and a veth pair carrying
PRIVATE_ADDRESS. Nothing served there can be reached from, or sends to, any other host.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# TEST-NET-2 (RFC 5737): documentation only, routed nowhere; here it exists in the namespace alone
PRIVATE_ADDRESS = "198.51.100.1"
PRIVATE_ADDRESS_VARIABLE = "PVA_TESTS_PRIVATE_ADDRESS"

# run in the new namespace before the test: loopback up, and one veth end with PRIVATE_ADDRESS
_SETUP = (
    "set -e; ip link set lo up; ip link add pvatest0 type veth peer name pvatest1; "
    f"ip address add {PRIVATE_ADDRESS}/24 dev pvatest0; ip link set pvatest0 up; ip link set pvatest1 up; "
    'exec "$@"'
)
_INNER_TIMEOUT_S = 40  # the inner pytest's per-test timeout
# the inner pytest process as a whole: its start-up (pytest, p4p, numpy, the conftest imports)
# and exit take seconds on a quiet machine and over 40 s on a loaded 2-core one, on top of the test
_INNER_PROCESS_TIMEOUT_S = _INNER_TIMEOUT_S + 80
# the outer test's own pytest-timeout: the inner process's bound plus the namespace's creation
OUTER_TIMEOUT_S = _INNER_PROCESS_TIMEOUT_S + 30


def other_address() -> str:
    """The non-loopback address of the private network this test runs in (marked tests only)."""
    address = os.environ.get(PRIVATE_ADDRESS_VARIABLE)
    if address is None:
        raise RuntimeError("other_address() is only for tests marked private_network, "
                           "which run inside their own network namespace")
    return address


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Outside its namespace a private_network test waits on a whole pytest process: give it
    the bound of that process (OUTER_TIMEOUT_S) instead of the default per-test timeout."""
    if PRIVATE_ADDRESS_VARIABLE in os.environ:
        return
    for item in items:
        if item.get_closest_marker("private_network") is not None:
            item.add_marker(pytest.mark.timeout(OUTER_TIMEOUT_S))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A test marked private_network runs in a network namespace of its own, not here (conftest imports it)."""
    if pyfuncitem.get_closest_marker("private_network") is None or PRIVATE_ADDRESS_VARIABLE in os.environ:
        return None
    run_in_private_network(pyfuncitem)
    return True


def _namespace_command(*command: str) -> list[str]:
    return ["unshare", "--user", "--map-root-user", "--net", "--", "sh", "-c", _SETUP, "sh", *command]


@functools.cache
def private_network_unavailable() -> str | None:
    """Why no private network namespace can be made here, or None when one can."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        return f"no {' or '.join(missing)} command to make a private network namespace"
    try:
        probe = subprocess.run(_namespace_command("true"), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot make a private network namespace: {error}"
    if probe.returncode != 0:
        return f"cannot make a private network namespace: {probe.stderr.strip()}"
    return None


def run_in_private_network(item: pytest.Item) -> None:
    """Run one test in a pytest of its own inside a new network namespace; fail with its output.

    Skipped, never run on this machine's interfaces, where no namespace can be made.
    """
    why = private_network_unavailable()
    marker = item.get_closest_marker("private_network")
    if why is None and marker is not None and marker.kwargs.get("hosts") and shutil.which("nsenter") is None:
        why = "no nsenter command to run a process on another private host"
    if why is not None:
        pytest.skip(f"{why}; a test never serves on this machine's own interfaces")
    root = Path(item.config.rootpath)
    env = dict(os.environ, **{PRIVATE_ADDRESS_VARIABLE: PRIVATE_ADDRESS})
    env.pop("PYTEST_XDIST_WORKER", None)
    # a test that starts several hosts' processes may ask for more: private_network(timeout=S),
    # with its own pytest.mark.timeout above S + 10
    inner = int(marker.kwargs.get("timeout", _INNER_TIMEOUT_S)) if marker is not None else _INNER_TIMEOUT_S
    command = _namespace_command(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 f"--timeout={inner}", item.nodeid)
    # its output goes to a file, not a pipe: a process the test started that outlives the inner
    # pytest must not keep this waiting for the end of a pipe it still holds open
    with tempfile.TemporaryFile("w+") as out:
        try:
            done = subprocess.run(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                                  timeout=inner + (_INNER_PROCESS_TIMEOUT_S - _INNER_TIMEOUT_S))
        except subprocess.TimeoutExpired as error:
            out.seek(0)
            pytest.fail(f"{item.nodeid} in its network namespace did not end within {error.timeout} s:\n"
                        f"{out.read()}", pytrace=False)
        out.seek(0)
        done.stdout, done.stderr = out.read(), ""
    if done.returncode != 0:
        pytest.fail(f"{item.nodeid} failed in its network namespace (pytest exit status {done.returncode}):\n"
                    f"{done.stdout}{done.stderr}", pytrace=False)
    if not re.search(r"\b1 passed\b", done.stdout) or re.search(r"\b(skipped|xfailed|deselected)\b", done.stdout):
        pytest.fail(f"{item.nodeid} did not pass in its network namespace:\n{done.stdout}", pytrace=False)


# TEST-NET-3 (RFC 5737): the hosts of PrivateHosts; this namespace (the client's host) is .1
HOSTS_NETWORK = "203.0.113"


class PrivateHosts:
    """`count` hosts on one bridge, for a test marked `private_network(hosts=...)`.

    Each host is a network namespace of its own (held by a `sleep`), joined by a veth pair to
    the bridge `pvahosts0` in this test's namespace, which carries HOSTS_NETWORK.1: this
    namespace is the client's host, host k is HOSTS_NETWORK.(k+2). `command(k, argv)` runs
    argv on host k (nsenter). Nothing here reaches beyond the test's private network.
    """

    def __init__(self, count: int) -> None:
        other_address()  # only inside the private network
        self.count = count
        self._holders: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> PrivateHosts:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client_address(self) -> str:
        return f"{HOSTS_NETWORK}.1"

    def address(self, k: int) -> str:
        return f"{HOSTS_NETWORK}.{k + 2}"

    def _start(self) -> None:
        def ip(*args: str) -> None:
            subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

        ip("link", "add", "pvahosts0", "type", "bridge")
        ip("address", "add", f"{self.client_address}/24", "dev", "pvahosts0")
        ip("link", "set", "pvahosts0", "up")
        ours = os.readlink("/proc/self/ns/net")
        for k in range(self.count):
            holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "3600"])
            self._holders.append(holder)
            deadline = time.monotonic() + 10.0
            while os.readlink(f"/proc/{holder.pid}/ns/net") == ours:  # until unshare made the namespace
                if holder.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"host {k}: unshare --net did not make a network namespace")
                time.sleep(0.01)
            ip("link", "add", f"pvah{k}", "type", "veth", "peer", "name", f"pvah{k}p")
            ip("link", "set", f"pvah{k}p", "netns", str(holder.pid))
            ip("link", "set", f"pvah{k}", "master", "pvahosts0", "up")
            subprocess.run(self.command(k, ["sh", "-c", f"set -e; ip link set lo up; ip address add "
                                                        f"{self.address(k)}/24 dev pvah{k}p; ip link set pvah{k}p up"]),
                           check=True, capture_output=True, timeout=10)

    def command(self, k: int, argv: list[str]) -> list[str]:
        """argv run in host k's network namespace."""
        return ["nsenter", "-t", str(self._holders[k].pid), "--net", "--", *argv]

    def close(self) -> None:
        for holder in self._holders:
            holder.kill()
            holder.wait(10)
        self._holders = []
