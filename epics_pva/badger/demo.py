"""The demo environment plugin, shipped in the package so ``pva-badger setup`` needs no checkout.

The files are those of ``examples/badger/environments/demo`` in the source tree, byte for byte
(tests/test_badger_setup.py compares them): an environment for the soft IOC's demo machine
(``softioc/examples/demo.toml``), whose ``get_bounds`` reads each setpoint's range from the
machine (``epics_pva.badger.bounds_from_limits``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_FILES", "write_demo_environment"]

DEMO_FILES: dict[str, str] = {
    "__init__.py": '''"""Example Badger environment plugin for epics_pva, written the way plugin users write theirs.

Two quadrupole setpoints and one objective PV. Copy this folder to
``$BADGER_PLUGIN_ROOT/environments/demo`` (or let ``pva-badger setup`` or ``pva-badger install
--environment`` do it); its ``configs.yaml`` selects the ``epics_pva`` interface.
"""

from functools import partial
from typing import ClassVar, Dict

from badger import environment

from epics_pva import first_after, wait_for_readback
from epics_pva.badger import bounds_from_limits


class Environment(environment.Environment):
    name = "demo"
    # the variables Badger offers; get_bounds reads their ranges from the machine (these are
    # the ranges a soft IOC mirroring this environment serves: pva-dryrun)
    variables = {"DEMO:Q1:SET": [-2.0, 2.0], "DEMO:Q2:SET": [-2.0, 2.0]}
    observables = ["DEMO:OBJ"]
    # every variable validated: a set returns once its readback is within tolerance, so the
    # objective is read after the machine responded. 0.01 A is 5 sigma of Q1's readback noise
    # (0.002 A) and Q2's is noiseless; both are far below a step of the optimiser (about 0.1 A
    # and up). count_down: the slowest full-range step settles within it (Q2 ramps at 2 A/s).
    _configs: ClassVar[Dict[str, partial]] = {
        "DEMO:Q1:SET": partial(wait_for_readback, readback_pv="DEMO:Q1:RBV",
                               tolerance=0.01, count_down=15, offset=0),
        "DEMO:Q2:SET": partial(wait_for_readback, readback_pv="DEMO:Q2:RBV",
                               tolerance=0.01, count_down=15, offset=0),
    }
    # the objective: the first update the machine posts after the set and its validations
    _read_configs: ClassVar[Dict[str, partial]] = {"DEMO:OBJ": partial(first_after, seconds=0)}

    def get_bounds(self, variable_names):
        # each setpoint's control (drive) limits, as its PV publishes them
        return bounds_from_limits(self.interface, variable_names)

    def set_variables(self, variable_inputs):
        self.interface.set_values(variable_inputs, configs=self._configs)

    def get_observables(self, observable_names):
        return self.interface.get_values(observable_names, configs=self._read_configs)

    def get_info(self, variable_names):
        # the Info dialog then shows each setpoint's readback and tolerance before any set
        return self.interface.get_info(variable_names, configs=self._configs)
''',
    "configs.yaml": '''---
name: demo
description: "Two quadrupoles and an objective PV, served over PVAccess (epics_pva example)"
version: "0.1"
dependencies:
  - badger-opt
  - badger-epics-pva
interface:
  - epics_pva
''',
}


def write_demo_environment(folder: str | Path) -> Path:
    """Write the demo environment plugin's files into `folder` (created); return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DEMO_FILES.items():
        (folder / name).write_text(text)
    return folder
