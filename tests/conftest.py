"""Shared helpers for the tests. The soft IOC fixtures (`soft_ioc`, `pva_client`,
`softioc_factory`, `softioc_config`) come from softioc.pytest_plugin, registered by the
package's pytest11 entry point."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import _hypothesis  # noqa: F401 - registers and loads the Hypothesis profiles
import pytest
from _network import (  # noqa: F401 - run private_network tests in their namespace, with its time bound
    pytest_collection_modifyitems,
    pytest_pyfunc_call,
)
from p4p.client.thread import Context, Disconnected

from epics_pva.transport import Monitor


def pytest_configure(config: pytest.Config) -> None:
    """Under `coverage run` (tox), measure the processes that run tests and no others.

    pyproject's `patch = subprocess` puts COVERAGE_PROCESS_CONFIG in the environment so that
    coverage starts in each pytest-xdist worker at interpreter start-up. The Python processes
    the tests themselves start (command lines, docs examples, soft IOC children) are left
    unmeasured, as in a run without workers: measuring them nearly doubles their start-up CPU.
    The xdist controller keeps it: it starts the workers (and replaces a crashed one).
    """
    if os.environ.get("PYTEST_XDIST_WORKER") or getattr(config.option, "dist", "no") == "no":
        os.environ.pop("COVERAGE_PROCESS_CONFIG", None)


class Recorder:
    """Collects a PV's monitor updates (and disconnects) and lets a test wait on them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.events: list[Any] = []  # values and Disconnected exceptions, in arrival order

    def __call__(self, value: Any) -> None:
        with self._cond:
            self.events.append(value)
            self._cond.notify_all()

    @property
    def values(self) -> list[Any]:
        with self._cond:
            return [e for e in self.events if not isinstance(e, Exception)]

    @property
    def disconnects(self) -> int:
        with self._cond:
            return sum(isinstance(e, Disconnected) for e in self.events)

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 5.0) -> list[Any]:
        """Wait until predicate(events so far) holds; return the events; fail after `timeout` s."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(list(self.events)), timeout):
                raise AssertionError(f"condition not met within {timeout} s; events: {self.events[-10:]!r}")
            return list(self.events)

    def wait_value(self, predicate: Callable[[Any], bool], timeout: float = 5.0, after: int = 0) -> Any:
        """Wait for an update (from event number `after` on) that satisfies predicate; return it."""
        def found(events: list[Any]) -> bool:
            return any(not isinstance(e, Exception) and predicate(e) for e in events[after:])

        events = self.wait_for(found, timeout)
        return next(e for e in events[after:] if not isinstance(e, Exception) and predicate(e))

    def wait_disconnect(self, after: int, timeout: float = 5.0) -> None:
        """Wait for a disconnect notification from event number `after` on."""
        self.wait_for(lambda events: any(isinstance(e, Disconnected) for e in events[after:]), timeout)

    def mark(self) -> int:
        """The number of events so far, to look only at what arrives later."""
        with self._cond:
            return len(self.events)

    def since(self, mark: int) -> list[Any]:
        with self._cond:
            return list(self.events[mark:])


@pytest.fixture
def client_for() -> Iterator[Callable[..., Context]]:
    """`client_for(ioc)`: a p4p client Context for that IOC only; closed after the test."""
    contexts: list[Context] = []

    def make(ioc: Any) -> Context:
        ctx = Context("pva", conf=ioc.client_conf(), useenv=False)
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()


# a deep queue: p4p's default squashes updates whenever the callback falls behind
NO_SQUASH = "record[queueSize=1000]"


@pytest.fixture
def monitor() -> Iterator[Callable[[Context, str], Recorder]]:
    """`monitor(ctx, pv)`: a Recorder of every update of `pv`; the subscription closes after the test."""
    subscriptions = []

    def make(ctx: Context, pv: str) -> Recorder:
        recorder = Recorder()
        # epics_pva's own monitor: p4p 4.3's thread-level one can drop a first update and stall
        subscriptions.append(Monitor(ctx, pv, recorder, request=NO_SQUASH, unwrap=True))
        return recorder

    yield make
    for sub in subscriptions:
        sub.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll an in-process condition (simulated time, audit) until true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.005)


@pytest.fixture
def until() -> Callable[..., None]:
    """The `wait_until` helper as a fixture, so test modules need not import conftest."""
    return wait_until
