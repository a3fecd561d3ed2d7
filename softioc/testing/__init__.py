"""Helpers for tests, shipped in the package: the pytest fixtures (registered by the `pytest11`
entry point as softioc.pytest_plugin), waits bounded by a timeout for what a PV shows, and
EPICS base's own softIoc as a child process.

Importing this loads neither p4p nor numpy: pytest imports the plugin in every session of
an environment holding the package, and the fixtures import the soft IOC only when used.
"""

from ._epics_base import (
           READY_LINE,
           EpicsBaseError,
           EpicsBaseIOC,
           NotLoopbackError,
           shipped_db_path,
           sockets_of,
)
from ._plugin import (
           demo_config_path,
           epics_base_ioc,
           pva_client,
           pva_interface,
           soft_ioc,
           softioc_config,
           softioc_factory,
)
from ._wait import WaitTimeout, wait_for_severity, wait_for_updates, wait_for_value

__all__ = ["READY_LINE", "EpicsBaseError", "EpicsBaseIOC", "NotLoopbackError", "WaitTimeout", "demo_config_path",
           "epics_base_ioc", "pva_client", "pva_interface", "shipped_db_path", "soft_ioc", "sockets_of",
           "softioc_config", "softioc_factory", "wait_for_severity", "wait_for_updates", "wait_for_value"]
