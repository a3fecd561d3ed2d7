"""Section 6: soft IOC capacity, as measured by softioc.bench (pairs kept at a rate, CPU)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from softioc.bench import measure

_log = logging.getLogger(__name__)


def measure_capacity(pairs: Sequence[int], rate: float, seconds: float) -> dict[str, Any]:
    """Run softioc.bench's measurement for each size; the rows and the largest size keeping up."""
    rows = []
    for count in pairs:
        rows.append(measure(count, rate, seconds))
        _log.info("capacity %d pairs: %s", count, rows[-1])
    best = max((r["pairs"] for r in rows if r["keeps_up"]), default=0)
    return {"rate_hz": rate, "seconds": seconds, "rows": rows, "largest_keeping_up": best}
