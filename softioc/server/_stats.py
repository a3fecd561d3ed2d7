"""Update-loop health, as one soft IOC counts it and a machine sums it over its shards."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Stats"]


@dataclass
class Stats:
    """Update-loop health: steps run, steps started late, busy time (wall s), its CPU time (s), posts.

    `cpu` is the update thread's own CPU time in its steps: unlike `busy`, other work on the
    machine does not inflate it, so cpu / posts is the cost of a post.
    """

    steps: int = 0
    late_steps: int = 0
    max_lateness: float = 0.0
    busy: float = 0.0
    posts: int = 0
    cpu: float = 0.0
