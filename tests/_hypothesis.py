"""Hypothesis profiles for the property tests, and a helper that bounds each example in time.

"default": few examples, derandomized, so the normal run is quick and deterministic.
"fuzz" (HYPOTHESIS_PROFILE=fuzz, as `tox -e fuzz` sets): FUZZ_MAX_EXAMPLES examples per
property (10,000 unless set), random seeds, so a long run searches for new failures.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]

settings.register_profile(
    "default", max_examples=30, deadline=None, derandomize=True, suppress_health_check=_SLOW_OK,
    database=None,
)
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("FUZZ_MAX_EXAMPLES", "10000")), deadline=None,
    suppress_health_check=_SLOW_OK, print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# every example must finish within this many seconds, or the property fails as a hang
EXAMPLE_TIMEOUT = 10.0


def within(func: Callable[..., Any], *args: Any, timeout: float = EXAMPLE_TIMEOUT) -> tuple[str, Any]:
    """Run func(*args) in a thread; return ("value", result) or ("error", exception).

    Fails (AssertionError) if it has not returned within `timeout` s: a hang is a bug.
    """
    outcome: list[tuple[str, Any]] = []

    def run() -> None:
        try:
            outcome.append(("value", func(*args)))
        except BaseException as exc:  # noqa: BLE001 - handed to the property to judge
            outcome.append(("error", exc))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"{getattr(func, '__name__', func)}{args!r:.200} did not return within {timeout} s"
    return outcome[0]
