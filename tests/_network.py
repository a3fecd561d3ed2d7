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
    if why is not None:
        pytest.skip(f"{why}; a test never serves on this machine's own interfaces")
    root = Path(item.config.rootpath)
    env = dict(os.environ, **{PRIVATE_ADDRESS_VARIABLE: PRIVATE_ADDRESS})
    env.pop("PYTEST_XDIST_WORKER", None)
    command = _namespace_command(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 f"--timeout={_INNER_TIMEOUT_S}", item.nodeid)
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                              timeout=_INNER_PROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{item.nodeid} in its network namespace did not end within {error.timeout} s:\n"
                    f"{error.stdout or ''}{error.stderr or ''}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"{item.nodeid} failed in its network namespace (pytest exit status {done.returncode}):\n"
                    f"{done.stdout}{done.stderr}", pytrace=False)
    if not re.search(r"\b1 passed\b", done.stdout) or re.search(r"\b(skipped|xfailed|deselected)\b", done.stdout):
        pytest.fail(f"{item.nodeid} did not pass in its network namespace:\n{done.stdout}", pytrace=False)
