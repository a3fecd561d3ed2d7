"""The issue's targets, judged against one run's results: met, or missed by how much."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """A goal on one figure of the results: `find` digs the figure out (None if not measured)."""

    name: str
    goal: str
    limit: float
    unit: str
    find: Callable[[dict[str, Any]], float | None]
    strict: bool = False  # the figure must stay below the limit, not just reach it
    at_least: bool = False  # the figure must reach the limit from below (a speed-up)


def _row(section: str, n: int, key: str) -> Callable[[dict[str, Any]], float | None]:
    def find(results: dict[str, Any]) -> float | None:
        for row in results.get(section, {}).get("rows", []):
            if row["n"] == n:
                return row.get(key)
        return None
    return find


def _latency(results: dict[str, Any]) -> float | None:
    return results.get("settle_latency", {}).get("wait_for_readback", {}).get("median_ms")


TARGETS = (
    *(Target(f"get_values({n}) vs raw p4p", "<= 1.05x", 1.05, "x", _row("get_values", n, "interface_ratio"))
      for n in (10, 100, 1000)),
    *(Target(f"set_values({n}), no validation, default settings, vs raw p4p", f"<= {limit:.2f}x", limit,
             "x", _row("set_values", n, "parallel_ratio"))
      for n, limit in ((10, 1.15), (100, 1.10), (1000, 1.15))),
    Target("validated parallel set of 50 minus raw p4p doing the same with monitors", "<= 5 ms", 5.0,
           " ms", _row("validated_set", 50, "parallel_minus_raw_ms")),
    Target("validated parallel set of 50 minus the ideal", "<= 50 ms", 50.0, " ms",
           _row("validated_set", 50, "parallel_minus_ideal_ms")),
    Target("naive vs ours set_values(100)", ">= 40x", 40.0, "x",
           _row("set_values", 100, "naive_over_parallel"), at_least=True),
    Target("settle detection median latency", "< 5 ms", 5.0, " ms", _latency, strict=True),
)


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured figure, met (True/False, None if not measured) and a note."""
    out = []
    for target in TARGETS:
        value = target.find(results)
        if value is None:
            met, note = None, "not measured in this run (sizes too small)"
        else:
            if target.at_least:
                met = value >= target.limit
            else:
                met = value < target.limit if target.strict else value <= target.limit
            fmt = f"{value:.2f}{target.unit}"
            short = abs(value - target.limit)
            note = f"{fmt}: met" if met else f"{fmt}: missed by {short:.2f}{target.unit}"
        out.append({"name": target.name, "goal": target.goal, "measured": value, "met": met, "note": note})
    return out
