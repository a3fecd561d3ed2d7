"""A simulated EPICS PVAccess machine: setpoints with lagging, noisy readbacks, and faults on demand."""

from __future__ import annotations

import ast
import importlib
from importlib import metadata as _metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

__project__ = "badger-epics-pva"  # checked by softioc._guard: proves this is our `softioc`

try:  # the one version string is pyproject.toml's, read from the installed distribution
    __version__ = _metadata.version(__project__)
except _metadata.PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"

# The public names, each written once: as an import here, which type checkers read. At run
# time these lines are not run; each name is imported from its sub-package on first use
# (PEP 562, the map read from these same lines), so importing softioc (as pytest does for
# the plugin in every session) loads neither p4p nor numpy.
if TYPE_CHECKING:  # `name as name`: a re-export, to type checkers and linters alike
    from .config import IOCConfig as IOCConfig
    from .config import load_config as load_config
    from .errors import AuditFileError as AuditFileError
    from .errors import ConfigError as ConfigError
    from .errors import NetworkRefused as NetworkRefused
    from .errors import PortInUseError as PortInUseError
    from .errors import PutRefused as PutRefused
    from .errors import SoftIOCError as SoftIOCError
    from .errors import UpdateLoopError as UpdateLoopError
    from .faults import Alarm as Alarm
    from .faults import Fault as Fault
    from .faults import ForcedValue as ForcedValue
    from .faults import Outage as Outage
    from .faults import PutEffect as PutEffect
    from .faults import PutReject as PutReject
    from .faults import PutTimeout as PutTimeout
    from .faults import ReadbackBias as ReadbackBias
    from .faults import ReadbackEffect as ReadbackEffect
    from .faults import SlowReadback as SlowReadback
    from .faults import StuckReadback as StuckReadback
    from .machine import Machine as Machine
    from .machine import serve as serve
    from .server import FaultRecord as FaultRecord
    from .server import PutRecord as PutRecord
    from .server import SoftIOC as SoftIOC
    from .server import read_audit_file as read_audit_file
    from .testing import EpicsBaseIOC as EpicsBaseIOC

def _exports() -> dict[str, str]:
    """{public name: the module it is imported from}, read from the imports under TYPE_CHECKING above."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    (block,) = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    return {alias.asname or alias.name: "." * node.level + (node.module or "")
            for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}


_EXPORTS = _exports()
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access and cache the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
