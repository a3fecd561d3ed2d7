"""One soft IOC process on p4p: the simulated machine served over PVAccess.

`SoftIOC` (`_ioc`) runs the life cycle and the update loop and owns its parts: its endpoint
(the p4p server and its ports), its fault control (faults at the wire: held puts, PVs that
vanish), its audit, and for each run the channels (`_channels`: PV types onto p4p), the
control PVs, the put path (`_puts`: access, faults, the model, the audit) and the views
(alarms, the live view). Serving beyond loopback needs `allow_network`.
"""

from ._access import AccessRule, is_loopback, owner, peer_of
from ._audit import ACCEPTED, REJECTED, TIMED_OUT, Audit, FaultRecord, PutRecord, read_audit_file
from ._channels import IDENTITY, IDENTITY_FIELD, Channel, PostBatch, plain
from ._control import (
           CONTROL_PVS,
           ReadOnly,
           WriteHandler,
           audit_refusal,
           check_text,
           control_pvs,
           parse_fault_spec,
)
from ._fault_control import ABANDON_AFTER, FaultControl
from ._ioc import SoftIOC
from ._stats import Stats

__all__ = ["ABANDON_AFTER", "ACCEPTED", "CONTROL_PVS", "IDENTITY", "IDENTITY_FIELD", "REJECTED", "TIMED_OUT",
           "AccessRule", "Audit", "Channel", "FaultControl", "FaultRecord", "PostBatch", "PutRecord", "ReadOnly",
           "SoftIOC", "Stats", "WriteHandler", "audit_refusal", "check_text", "control_pvs", "is_loopback", "owner", "parse_fault_spec",
           "peer_of", "plain", "read_audit_file"]
