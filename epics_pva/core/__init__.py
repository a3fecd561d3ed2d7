"""The client core: the Interface, its settings and write guard, its read and set paths.

`Interface` owns the settings (`Settings`), the write guard that decides at every set
whether and how it may write (`decide`, the operator's switches), the read path
(`get_values`, `get_readings`, `get_info`) and the set path (checks, journal, puts with
retries, validations, per-PV results). It reaches the machine only through
`epics_pva.transport` and records its sets through `epics_pva.journal`.
"""

from ._fresh import ReadFunction, average_fresh, first_after
from ._guard import Switches, WriteMode, announce, decide, read_switches
from ._interface import Interface
from ._read_path import check_names
from ._readings import Alarm, AlarmMemory, Reading, alarm_of, read_failure, reading_of
from ._rehearsal import identity_problems, prove_on_the_wire, settings_problems
from ._settings import (
    SWITCHES,
    Settings,
    SettingSpec,
    defaults,
    environment_settings,
    parse_setting,
    specs,
)
from ._validation import (
    ReadbackTrace,
    ValidationFunction,
    WaitConfig,
    check_configs,
    recording_traces,
    wait_configs,
    wait_for_readback,
)

__all__ = [
    "ReadFunction", "average_fresh", "first_after",
    "SWITCHES", "Alarm", "AlarmMemory", "alarm_of", "check_names", "read_failure", "Interface", "ReadbackTrace", "Reading", "SettingSpec",
    "Settings", "Switches", "ValidationFunction", "WaitConfig", "WriteMode", "announce",
    "check_configs", "decide", "defaults", "environment_settings", "identity_problems",
    "parse_setting", "prove_on_the_wire", "read_switches", "reading_of", "recording_traces",
    "settings_problems", "specs", "wait_configs", "wait_for_readback",
]
