"""Benchmarks of epics_pva: the Interface against raw p4p and against the ideal, side by side.

    python -m devtools.bench [--quick] [--repeats N] [--json PATH] [--plot PATH]

Starts its own soft IOCs (softioc), measures get/set against raw p4p, validated sets against
the slowest readback's settle time, settle detection latency, retry cost and the soft IOC's
capacity (devtools.bench.capacity), then prints one table with the issue's targets met or missed.
"""

from .plot import PlotUnavailable, plot
from .report import format_table, write_json
from .run import Options, run_all

__all__ = ["Options", "PlotUnavailable", "format_table", "plot", "run_all", "write_json"]
