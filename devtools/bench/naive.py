"""The naive reference: how a first plugin would set PVs, written here to measure against.

A new client context per call (so every channel is searched for again), one put after
another, and each PV with a readback validated by reading it every 0.1 s until it is within
tolerance. No checks before the put and no parallelism: the style the interface replaces.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from p4p.client.thread import Context

POLL = 0.1
"""Seconds between two reads of a readback while validating."""


def naive_set(conf: Mapping[str, str], inputs: Mapping[str, float], timeout: float,
              readbacks: Mapping[str, str] | None = None, tolerance: float = 0.01,
              count_down: float = 5.0) -> None:
    """Put each input in turn through a fresh context; poll its readback (if any) every POLL s.

    Raises TimeoutError if a readback is not within `tolerance` of its setpoint after
    `count_down` seconds; `timeout` (s) bounds each network operation.
    """
    readbacks = readbacks or {}
    with Context("pva", conf=dict(conf), useenv=False) as ctx:
        for pv, value in inputs.items():
            ctx.put(pv, value, timeout=timeout)
            readback = readbacks.get(pv)
            if readback is None:
                continue
            deadline = time.monotonic() + count_down
            while abs(float(ctx.get(readback, timeout=timeout)) - value) > tolerance:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"naive: {readback} not within {tolerance} of {value}")
                time.sleep(POLL)
