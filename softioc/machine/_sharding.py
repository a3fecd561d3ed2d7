"""Which shard of a machine serves which PV: pure functions of the config and the shard count.

Setpoint number j (in config order, ranges expanded) goes to shard j mod N, with its readback:
the same config and N always give the same assignment, and the shards get equal shares. An
observable goes to the shard serving its first input (so most observables read local values);
one with no inputs is dealt round-robin.
"""

from __future__ import annotations

import dataclasses

from ..config import IOCConfig
from ..faults import SERVER

__all__ = ["assign", "links_of", "share", "shard_prefix"]


def shard_prefix(prefix: str, shard: int) -> str:
    """The control prefix of one shard's own control PVs (the machine's are under `prefix`)."""
    return f"{prefix}SHARD{shard}:"


def assign(config: IOCConfig, processes: int) -> dict[str, int]:
    """{PV name: shard index} for every simulated PV; deterministic in (config, processes)."""
    where: dict[str, int] = {}
    for j, sp in enumerate(config.setpoints):
        where[sp.name] = j % processes
        if sp.readback:
            where[sp.readback] = j % processes
    dealt = 0
    for ob in config.observables:
        first = next(iter(ob.inputs.values()), None)
        if first is not None and first in where:
            where[ob.name] = where[first]
        else:
            where[ob.name] = dealt % processes
            dealt += 1
    return where


def share(config: IOCConfig, processes: int, shard: int) -> IOCConfig:
    """The config of one shard: its devices, observables and faults, its own control prefix."""
    if not 0 <= shard < processes:
        raise ValueError(f"shard must be within [0, {processes - 1}], got {shard}")
    where = assign(config, processes)

    def mine(name: str) -> bool:
        return where.get(name) == shard

    faults = tuple(f for f in config.faults if f.pv == SERVER or mine(f.pv))
    settings = dataclasses.replace(
        config.ioc, processes=1, control_prefix=shard_prefix(config.ioc.control_prefix, shard))
    return IOCConfig(
        settings, tuple(sp for sp in config.setpoints if mine(sp.name)),
        tuple(ob for ob in config.observables if mine(ob.name)), faults,
        f"{config.source} (shard {shard} of {processes})",
    )


def links_of(config: IOCConfig) -> list[str]:
    """The input PVs of `config`'s observables that it does not serve itself."""
    served = set(config.pv_names())
    return sorted({pv for ob in config.observables for pv in ob.inputs.values() if pv not in served})
