"""Measure a live system over PVAccess for calibration: read-only, unless a step test is asked for.

`measure` monitors each readback and observable for some seconds (every update counted, with
its server timestamp and alarm) and reads each setpoint once, then reports per readback the
update rate (Hz), noise sigma, mean, alarm state and, per setpoint/readback pair, the offset
at rest; it flags every ``wait_for_readback`` config that cannot work with what it measured.
It never puts. `step_test` is the one writer: it moves each setpoint by a step and back,
within the PV's control limits, and only when called with ``write_test=True``; it fits the
readback's lag model, dead time and offset to what it recorded. `main_measure` is the command
line (``--measure SECONDS``, ``--pair SET=RBV``, ``--pv NAME``, ``--env SPEC``, ``--json FILE``,
``--step SIZE``, ``--write-test``, ``--from-journal FILE``); the JSON it writes is
``{"readbacks": {RBV: {...}}, "pairs": {SET: {...}}, "warnings": [...]}``. `fit_from_journal`
fits the same pair entries, with no network at all, from an interface journal whose
validation lines carry readback traces (see `epics_pva.core.recording_traces`).

Each job is one module of this package, and every name above is importable from it:
`epics_pva.tools.measure.recording` (monitors and reads), `.at_rest` (`measure`, the result types),
`.steps` (`step_test`), `.from_journal` (`fit_from_journal`) and `.cli` (the command line,
``python -m epics_pva.tools.measure``).
"""

from .at_rest import Calibration, MeasureTargets, WaitConfig, measure, wait_configs
from .cli import EnvLoader as EnvLoader
from .cli import add_measure_arguments, build_measure_parser, main_measure, run_measure
from .from_journal import fit_from_journal
from .recording import QUEUE_SIZE as QUEUE_SIZE
from .recording import Sample, record
from .steps import step_test

__all__ = [
    "Calibration",
    "MeasureTargets",
    "Sample",
    "WaitConfig",
    "add_measure_arguments",
    "build_measure_parser",
    "fit_from_journal",
    "main_measure",
    "measure",
    "record",
    "run_measure",
    "step_test",
    "wait_configs",
]
