"""The audit and the faults of a whole machine, routed to and merged from its shards.

`Machine.audit` is a MachineAudit and `Machine.faults` a MachineFaults: the same calls as one
soft IOC's `audit` and `faults`, each sent to the shard serving the PV (every shard for '*').
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..faults import SERVER, Fault, describe
from ..server import Audit, FaultRecord, PutRecord
from ._shard_process import ShardProcess

__all__ = ["MachineAudit", "MachineFaults"]


class Shards(Protocol):
    """What these views need of a machine (`_machine.Machine`): its shards, and whose a PV is."""

    shards: list[ShardProcess]
    control_audit: Audit  # the control writes the machine's own control PVs refused

    def shard_for(self, pv: str) -> ShardProcess: ...


def _wall(record: FaultRecord) -> float:
    return record.wall_time


class MachineAudit:
    """The audit of every shard, merged: puts of one PV in the order that PV's shard saw them."""

    def __init__(self, machine: Shards) -> None:
        self._machine = machine

    def puts(self, pv: str | None = None, outcome: str | None = None) -> list[PutRecord]:
        """Puts received by the running shards, and the control writes refused, oldest first (by wall time)."""
        own = self._machine.control_audit.puts(pv, outcome)
        if pv is not None and own:
            return own  # a machine control PV: no shard serves it
        shards = self._machine.shards if pv is None else [self._machine.shard_for(pv)]
        records = own + [PutRecord(**r) for s in shards if s.alive
                         for r in s.call("puts", {"pv": pv, "outcome": outcome})]
        return sorted(records, key=lambda r: r.wall_time)  # stable: one shard's order per PV kept

    def put_count(self) -> int:
        """Puts received by the running shards, and the control writes refused (PUTS)."""
        shards: int = sum(s.call("status")["puts"] for s in self._machine.shards if s.alive)
        return self._machine.control_audit.put_count() + shards

    def faults(self, pv: str | None = None, event: str | None = "fired") -> list[FaultRecord]:
        """Fault events of the running shards, oldest first; by default only those that fired.

        A whole-machine fault ('*') is armed on every shard, which each log it: its n-th event
        on every shard is one event of the machine, at the first shard's time (the last one's
        for an end: 'expired', 'cleared'), listed once every shard has logged it.
        """
        per_shard = [[FaultRecord(**r) for r in s.call("faults", {"pv": pv, "event": event})]
                     for s in self._machine.shards if s.alive]
        records = [r for rows in per_shard for r in rows if r.pv != SERVER]
        for same in zip(*([r for r in rows if r.pv == SERVER] for rows in per_shard), strict=False):
            ends = same[0].event in ("expired", "cleared")
            records.append(max(same, key=_wall) if ends else min(same, key=_wall))
        return sorted(records, key=_wall)

    def clear(self) -> None:
        """Forget everything the shards and the control PVs recorded so far."""
        self._machine.control_audit.clear()
        for s in self._machine.shards:
            if s.alive:
                s.call("clear_audit")


class MachineFaults:
    """Arm, list and clear faults on the whole machine; each goes to the shard serving its PV."""

    def __init__(self, machine: Shards) -> None:
        self._machine = machine

    def _targets(self, pv: str | None) -> list[ShardProcess]:
        if pv is None or pv == SERVER:
            return [s for s in self._machine.shards if s.alive]
        return [self._machine.shard_for(pv)]

    def arm_from_dict(self, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Arm {"pv": ..., "kind": ..., params} on its PV's shard ('*': every shard); the armed faults."""
        pv = spec.get("pv")
        if not isinstance(pv, str):
            raise ValueError(f"a fault needs a 'pv' naming a PV of this machine, got {pv!r}")
        return [s.call("arm", dict(spec)) for s in self._targets(pv)]

    def arm(self, pv: str, fault: Fault) -> list[dict[str, Any]]:
        """Arm a Fault object on `pv` ('*' for the whole machine)."""
        return self.arm_from_dict({"pv": pv, **describe(fault)})

    def clear(self, pv: str | None = None) -> int:
        """Disarm the faults on `pv` (every fault when None); returns how many."""
        return sum(s.call("clear", pv) for s in self._targets(pv))

    def active(self, pv: str | None = None) -> list[dict[str, Any]]:
        """The faults armed now, every shard's list merged (shard order, then arming order)."""
        return [a for s in self._targets(pv) for a in s.call("active", pv)]
