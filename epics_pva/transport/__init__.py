"""The transport: everything of epics_pva that talks to p4p, and what it learns from the wire.

The rest of the package sees batches of reads and puts with per-PV outcomes (`get_many`,
`put_many`), one client context per Interface that is safe to close at any moment
(`ClientContext`, made by `Connection`), monitors that lose no update (`Monitor`), those that keep each
set PV's type and limits (`MetadataCache`, on the set of monitors the fresh reads share: `MonitorSet`), what a PV accepts and how a value is checked
against it (`PvInfo`, `normalize`, `coerce`), closing under a waiter (`mark_closed`), the
client settings as pvxs reads them, and the UDP name search that finds a PV's server.
"""

from ._batch import Wave, get_many, put_many, put_wave
from ._closing import check_open, closed_error, is_closed, mark_closed, watch
from ._connection import Connection
from ._entries import MonitorEntry, problem_of
from ._gate import live_operations, wait_released
from ._inputs import check_name, coerce, normalize
from ._monitor import CallerQueue, Monitor, live_monitors
from ._monitor_set import MonitorSet
from ._monitors import MetadataCache, settle
from ._p4p import ClientContext
from ._pvxs_settings import (
    auto_addr_list,
    client_settings,
    endpoint,
    entries,
    numeric_address,
    parse_bool,
)
from ._search import ServerAddress, find_servers, parse_response
from ._values import SERVER_ID_FIELD, PvInfo, describe, server_id_of, to_python

__all__ = [
    "SERVER_ID_FIELD", "CallerQueue", "ClientContext", "Connection", "MetadataCache", "Monitor", "MonitorEntry",
    "MonitorSet", "PvInfo",
    "ServerAddress", "Wave", "auto_addr_list", "check_name", "check_open", "client_settings", "closed_error",
    "coerce", "describe", "endpoint", "entries", "find_servers", "get_many", "is_closed", "live_monitors", "live_operations",
    "mark_closed", "normalize", "numeric_address", "parse_bool", "parse_response", "problem_of", "put_many", "put_wave",
    "server_id_of", "settle", "to_python", "wait_released", "watch",
]
