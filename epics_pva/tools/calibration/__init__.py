"""Calibration numerics: what a recorded PV trace says about the machine (numpy only, no network).

A trace is a sequence of ``(server timestamp in s, value)``. From one taken at rest
`epics_pva.tools.calibration.traces` measures the update rate, the mean and the noise, and says which
``wait_for_readback`` settings cannot work with what was measured; from one around a setpoint
step `epics_pva.tools.calibration.fits` fits the readback's lag model, dead time and offset.
Everything here is a pure function returning dataclasses.

Lag models live in one table, ``LAG_MODELS`` (in `epics_pva.tools.calibration.fits`): adding one is
adding a row.
"""

from __future__ import annotations

from .fits import LAG_MODELS, ModelFit, StepFit, combine_step_fits, fit_response, fit_step
from .fits import LagModel as LagModel
from .traces import MIN_UPDATE_PERIODS as MIN_UPDATE_PERIODS
from .traces import NOISE_WINDOW as NOISE_WINDOW
from .traces import SETTLE_SIGMAS as SETTLE_SIGMAS
from .traces import (
    AlarmSummary,
    TraceStats,
    alarm_summary,
    check_wait_config,
    noise_sigma,
    trace_stats,
    update_rate,
)

__all__ = [
    "AlarmSummary",
    "LAG_MODELS",
    "ModelFit",
    "StepFit",
    "TraceStats",
    "alarm_summary",
    "check_wait_config",
    "combine_step_fits",
    "fit_response",
    "fit_step",
    "noise_sigma",
    "trace_stats",
    "update_rate",
]
