"""Commissioning dry run: mirror a Badger environment's PVs in a soft IOC.

From an environment class (its ``variables`` with their bounds, the readback PVs, offsets
and tolerances in the ``functools.partial`` validation configs of its ``_configs``, and its
``observables``) build a soft IOC config that serves the same PV names, so an operator can
rehearse a routine with the real names before the real machine:

    pva-dryrun path/to/environments/demo            # print the TOML
    pva-dryrun path/to/environments/demo --serve    # and serve it

The environment is read by ``epics_pva.tools.environment`` (duck typing, no Badger). The
simulator is never imported: ``--serve`` runs the soft IOC as a child process
(``python -m softioc FILE ...``), so the client and the simulator stay apart.

A plain class or module without Badger works as well: module-level (or class) ``variables``
{name: [low, high]}, ``observables`` [names] and a public ``configs`` mapping. ``--overlay
FILE.toml`` merges what an environment cannot say (alarm limits, units, expressions, initial
values) into the generated mirror, naming generated entries as the soft IOC config does.

``--calibration FILE`` (the JSON of ``pva-preflight --measure``/``--step``/``--from-journal``)
replaces the guesses by what was measured: each readback's lag model and parameter, offset,
dead time, noise and update rate, each observable's noise and update rate (the soft IOC
simulates a dead time in whole update steps). The header then compares, per pair, the
measured response with the mirror's and the uncalibrated guess's, each with its dead time,
computed from the lag models of ``epics_pva.tools.calibration`` (no network, no simulator).

One module per job, every name above importable from this package: `.mirror` (the config from
an environment), `.calibrate` (``--calibration``), `.toml_writer` and `.cli` (``pva-dryrun``,
``python -m epics_pva.badger.dryrun``).
"""

from ...tools.environment import load_environment, validation_keywords
from .calibrate import MAX_MIRROR_RATE as MAX_MIRROR_RATE
from .calibrate import STEPS_PER_POST as STEPS_PER_POST
from .calibrate import apply_calibration, load_calibration
from .calibrate import compare_responses as compare_responses
from .cli import build_parser as build_parser
from .cli import main
from .mirror import DryRunError, apply_overlay, config_from_environment
from .toml_writer import to_toml

__all__ = ["DryRunError", "apply_calibration", "apply_overlay", "config_from_environment", "load_calibration",
           "load_environment", "main", "to_toml", "validation_keywords"]
