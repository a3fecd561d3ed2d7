"""A whole machine: one soft IOC config served by N processes (shards), found by PVA search.

`Machine` (`_machine`) starts a shard process per share of the PVs (`_sharding`: which shard
serves which PV, `_shard`: the child, a SoftIOC whose observables may read other shards'
PVs, `_shard_process`: the child as the parent sees it), serves the machine's control PVs
(`_surface`) and routes its audit and faults to the shards (`_views`). `serve(config)` gives
one SoftIOC or a Machine, as the config asks.
"""

from ..errors import ShardError
from ._machine import Machine, MachineStats, serve
from ._shard import LinkedSimulation, ShardCommands, ShardIOC, child_main
from ._shard_process import ShardProcess
from ._sharding import assign, links_of, shard_prefix, share
from ._surface import ControlSurface
from ._views import MachineAudit, MachineFaults

__all__ = ["ControlSurface", "LinkedSimulation", "Machine", "MachineAudit", "MachineFaults", "MachineStats",
           "ShardCommands", "ShardError", "ShardIOC", "ShardProcess", "assign", "child_main", "links_of", "serve",
           "share", "shard_prefix"]
