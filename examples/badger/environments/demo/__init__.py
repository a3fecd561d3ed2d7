"""Example Badger environment plugin for epics_pva, written the way plugin users write theirs.

Two quadrupole setpoints and one objective PV. Copy this folder to
``$BADGER_PLUGIN_ROOT/environments/demo`` (or let ``python -m epics_pva.badger install
--environment`` do it); its ``configs.yaml`` selects the ``epics_pva`` interface.
"""

from functools import partial
from typing import ClassVar, Dict

from badger import environment

from epics_pva import wait_for_readback


class Environment(environment.Environment):
    name = "demo"
    variables = {"DEMO:Q1:SET": [-2.0, 2.0], "DEMO:Q2:SET": [-2.0, 2.0]}
    observables = ["DEMO:OBJ"]
    _configs: ClassVar[Dict[str, partial]] = {
        "DEMO:Q1:SET": partial(wait_for_readback, readback_pv="DEMO:Q1:RBV",
                               tolerance=0.05, count_down=15, offset=0),
    }

    def set_variables(self, variable_inputs):
        self.interface.set_values(variable_inputs, configs=self._configs)

    def get_info(self, variable_names):
        # the Info dialog then shows each setpoint's readback and tolerance before any set
        return self.interface.get_info(variable_names, configs=self._configs)
