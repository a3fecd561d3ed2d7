"""Soft IOC configuration: TOML or dicts in, validated frozen objects out.

Every error is a ConfigError naming the source (file or '<dict>') and the key that is wrong,
because the person reading it is editing that file. `load_config` reads a file, a dict or
passes an IOCConfig through; the keys are in docs/softioc.md. The PV types, lag models and
expressions a config may name are the model's (softioc.model), the fault kinds softioc.faults'.
"""

from ..errors import ConfigError
from ..model import LAGS, LIMIT_ACTIONS, PV_TYPES, ObservableConfig, SetpointConfig
from ._bounds import BOUNDS, MAX_PV_STEPS, Bound
from ._load import config_from_dict, load_config
from ._overrides import with_overrides
from ._ranges import MAX_NAME_BYTES, MAX_PVS, MAX_RANGE, expand_ranges, format_pattern
from ._reader import MAX_LENGTH, MAX_NAME, MAX_PRECISION, MAX_TEXT, check_entries
from ._tables import check_load
from ._types import MAX_PROCESSES, FaultConfig, IOCConfig, IOCSettings

__all__ = ["BOUNDS", "LAGS", "LIMIT_ACTIONS", "MAX_LENGTH", "MAX_NAME", "MAX_NAME_BYTES", "MAX_PRECISION", "MAX_PROCESSES",
           "MAX_PVS", "MAX_PV_STEPS", "MAX_RANGE",
           "MAX_TEXT", "PV_TYPES", "Bound", "ConfigError", "FaultConfig", "IOCConfig", "IOCSettings", "ObservableConfig",
           "SetpointConfig", "check_entries", "check_load", "config_from_dict", "expand_ranges", "format_pattern",
           "load_config", "with_overrides"]
