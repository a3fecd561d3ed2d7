"""Interface settings from environment variables, for Badger's argument-less construction.

Precedence, highest first:

1. ``EPICS_PVA_INTERFACE_READ_ONLY`` set true forces read-only, whatever an argument, a saved
   routine or a later assignment says (a dry run on a live machine must not write);
   ``EPICS_PVA_INTERFACE_REHEARSAL`` set true forces rehearsal mode the same way;
2. arguments given to the constructor;
3. the other ``EPICS_PVA_INTERFACE_*`` variables;
4. the defaults of ``epics_pva.Interface``.

The PVAccess client itself reads the standard ``EPICS_PVA_*`` variables (address list,
ports) as usual. This module does not import Badger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core import environment_settings, read_switches, specs

#: setting name -> environment variable, for every setting an operator may set without code
ENVIRONMENT_VARIABLES: dict[str, str] = {
    name: spec.variable for name, spec in specs().items() if spec.variable is not None
}
READ_ONLY_VARIABLE = ENVIRONMENT_VARIABLES["read_only"]
REHEARSAL_VARIABLE = ENVIRONMENT_VARIABLES["rehearsal"]


def settings_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The interface settings given by ``EPICS_PVA_INTERFACE_*`` variables (empty ones ignored).

    Raises ValueError naming the variable when a value cannot be understood.
    """
    return environment_settings(environ, switches=True)


def read_only_forced(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``EPICS_PVA_INTERFACE_READ_ONLY`` is set to a true value.

    A value that is not a clear yes/no also counts as forcing read-only: when in doubt, do
    not write to the machine. (Construction still reports the bad value as an error.)
    """
    return read_switches(environ).read_only


def rehearsal_forced(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``EPICS_PVA_INTERFACE_REHEARSAL`` is set to a true value (or to anything unclear)."""
    return read_switches(environ).rehearsal
