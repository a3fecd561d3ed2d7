"""Concurrent puts over one p4p context, each PV's own outcome kept apart.

p4p's `Context.put(list, values, throw=False)` marks *every* PV as timed out when any one does
(a completed put's result is None, like a pending one's), and reads strings beginning with
'{' as JSON. This issues the same concurrent puts through p4p's raw client and records which
completed, so a timeout on one PV never hides the success of another.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Sequence
from typing import Any

from p4p.client.raw import Context as _RawContext
from p4p.client.thread import Context

__all__ = ["put_many"]


def put_many(context: Context, names: Sequence[str], values: Sequence[Any],
             timeout: float) -> list[BaseException | None]:
    """Put values[i] to names[i] concurrently; per PV: None (done) or the exception (TimeoutError...).

    Waits at most `timeout` seconds in all; puts still pending then are cancelled.
    """
    done: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
    results: list[BaseException | None] = [None] * len(names)
    pending = set(range(len(names)))
    ops: list[Any] = []
    try:
        for i, (name, value) in enumerate(zip(names, values, strict=True)):
            def completed(outcome: Any, i: int = i) -> None:
                done.put((i, outcome))

            try:
                ops.append(_RawContext.put(context, name, completed, builder=value))
            except Exception as exc:  # noqa: BLE001 - e.g. the context is closed: that PV's outcome
                results[i] = exc
                pending.discard(i)
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            try:
                i, outcome = done.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                break
            if i in pending:
                pending.discard(i)
                results[i] = outcome if isinstance(outcome, BaseException) else None
        for i in pending:
            results[i] = TimeoutError(names[i])
    finally:
        for op in ops:
            op.close()
    return results
