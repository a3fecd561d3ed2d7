"""Update-loop health, as one soft IOC counts it and a machine sums it over its shards."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Stats"]


@dataclass
class Stats:
    """Update-loop health: steps run, steps started late, and busy time (s)."""

    steps: int = 0
    late_steps: int = 0
    max_lateness: float = 0.0
    busy: float = 0.0
    posts: int = 0
