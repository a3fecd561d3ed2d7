"""Badger integration: epics_pva as a Badger interface plugin, its installer and a headless runner.

Needs the optional extra (``pip install badger-epics-pva[badger]``): importing the plugin class
imports Badger, so nothing else in ``epics_pva`` imports this package.

- ``epics_pva.badger.Interface`` *is* a ``badger.interface.Interface`` and behaves exactly
  like ``epics_pva.Interface``, to which it delegates.
- ``python -m epics_pva.badger install ROOT`` installs it as ``ROOT/interfaces/epics_pva``.
- ``python -m epics_pva.badger run ENV --plugin-root ROOT`` runs a Badger routine headless.
- ``python -m epics_pva.badger setup ROOT`` prepares Badger's GUI in one step (plugin, demo
  environment, settings file, folders) and prints the command that starts it.
- Errors the plugin raises lead with ``epics_pva.badger.PvFailure``, a one-line summary per
  PV, so Badger's Retry/Stop dialog shows the PV and the cause first (see ``summary``).
- ``epics_pva.badger.bounds_from_limits(interface, names)`` gives an environment's
  ``get_bounds`` each variable's range from its PV's control limits.

Because Badger builds its interface with no arguments, these environment variables give the
settings an operator must control without code (see ``ENVIRONMENT_VARIABLES``).
``EPICS_PVA_INTERFACE_READ_ONLY`` set true forces read-only whatever else says otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bounds import BoundsError, bounds_from_limits
from .settings import ENVIRONMENT_VARIABLES, READ_ONLY_VARIABLE, read_only_forced
from .summary import PvFailure

if TYPE_CHECKING:
    from ._interface import Interface

__all__ = ["ENVIRONMENT_VARIABLES", "READ_ONLY_VARIABLE", "BoundsError", "Interface", "PvFailure",
           "bounds_from_limits", "read_only_forced"]


def __getattr__(name: str) -> Any:
    # Import Badger only when the plugin class is asked for: the installer needs no Badger.
    if name == "Interface":
        try:
            from ._interface import Interface
        except ImportError as exc:
            if exc.name is not None and exc.name.split(".")[0] in ("badger", "pydantic"):
                raise ImportError(
                    f"epics_pva.badger.Interface needs Badger ({exc}); install it with "
                    "`pip install badger-epics-pva[badger]`"
                ) from exc
            raise
        return Interface
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
