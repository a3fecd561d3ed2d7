"""The floor and ceiling of every time and rate a config may give, in one table.

A time or rate outside them is a ConfigError naming the key, the value and the bounds: a
rate of 1e-300 Hz would ask the update loop to wait longer than a thread can, 1e9 Hz to
step faster than a clock ticks; neither is a machine anyone simulates.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..faults import MAX_SECONDS

__all__ = ["BOUNDS", "MAX_PV_STEPS", "Bound"]


@dataclass(frozen=True)
class Bound:
    """A number's floor and ceiling (both allowed) and its unit, as an error shows them."""

    low: float
    high: float
    unit: str

    def shown(self) -> str:
        return f"[{self.low:g}, {self.high:g}] {self.unit}".rstrip()


# the update loop: from one step per 100 s to 1,000 a second (a thread's wait is good to ~0.1 ms)
UPDATE_RATE = Bound(0.01, 1000.0, "Hz")

BOUNDS: dict[str, Bound] = {
    "ioc.update_rate": UPDATE_RATE,
    "ioc.time_scale": Bound(0.001, 1000.0, "simulated s per wall s"),
    "setpoint.tau": Bound(1e-6, 1e6, "s"),  # a microsecond (instant at any step) to 11 days
    "setpoint.rate": Bound(1e-9, 1e15, "units/s"),
    "setpoint.dead_time": Bound(0.0, MAX_SECONDS, "s"),  # as long as a fault may last
    "setpoint.update_rate": Bound(0.001, UPDATE_RATE.high, "Hz"),
    "observable.update_rate": Bound(0.001, UPDATE_RATE.high, "Hz"),
    "observable.scan": Bound(0.01, MAX_SECONDS, "s"),  # a calc record's SCAN periods run from .1 to 10 s
}
"""{table.key: Bound} for every time and rate of a config (a fault's are the fault kind's)."""

MAX_PV_STEPS = 5_000_000
"""Most PV updates a second one process's update loop may be asked for (PVs x update_rate):
its cheapest step, where nothing changes, measured 0.07 us per PV (20,000 pairs, 2 cores),
so beyond this even a step that posts nothing outlasts its period on a loaded machine."""
