"""A live terminal view of a running soft IOC (or machine), for operators watching a dry run."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from .server import SoftIOC

if TYPE_CHECKING:
    from .machine import Machine


def _fmt(value: Any, width: int = 12) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, float):
        return f"{value:{width}.5g}"
    text = str(value)
    return (text if len(text) <= width else text[: width - 1] + "~").rjust(width)


def render(ioc: SoftIOC | Machine) -> list[str]:
    """The view as lines: one row per setpoint and observable, plus a status line."""
    rows = ioc.snapshot()
    name_width = max([len(r["setpoint_pv"] or "") for r in rows] + [len(r["readback_pv"] or "") for r in rows] + [8])
    head = (f"{'setpoint':<{name_width}} {'value':>12}  {'readback':<{name_width}} {'value':>12} "
            f"{'distance':>12}  faults")
    lines = [head, "-" * len(head)]
    for r in rows:
        faults = ",".join(r["faults"]) or ("" if r["online"] else "OFFLINE")
        if not r["online"] and r["faults"]:
            faults += ",OFFLINE"
        lines.append(
            f"{(r['setpoint_pv'] or ''):<{name_width}} {_fmt(r['setpoint'])}  {(r['readback_pv'] or ''):<{name_width}} "
            f"{_fmt(r['readback'])} {_fmt(r['distance'])}  {faults}"
        )
    server = ioc.faults.active("*")
    status = (f"t_sim={ioc.sim_time:9.2f} s  puts={len(ioc.audit.puts())}  "
              f"rejected={len(ioc.audit.puts(outcome='rejected'))}  timed_out={len(ioc.audit.puts(outcome='timed_out'))}  "
              f"faults fired={len(ioc.audit.faults())}{'  SERVER OUTAGE' if server else ''}")
    lines.append(status)
    width = shutil.get_terminal_size((120, 20)).columns
    return [line[:width] for line in lines]


def run_view(ioc: SoftIOC | Machine, stop: threading.Event, duration: float | None = None,
             out: TextIO = sys.stdout, interval: float = 0.5) -> None:
    """Redraw the view every `interval` s until `stop` is set or `duration` s have passed.

    On a terminal the table is redrawn in place; otherwise it is printed once per interval.
    """
    end = None if duration is None else time.monotonic() + duration
    in_place = out.isatty()
    drawn = 0
    while True:
        lines = render(ioc)
        if in_place and drawn:
            out.write(f"\x1b[{drawn}F")  # back to the first line of the last drawing
        for line in lines:
            out.write(line + ("\x1b[K\n" if in_place else "\n"))
        if not in_place:
            out.write("\n")
        out.flush()
        drawn = len(lines)
        remaining = interval if end is None else min(interval, end - time.monotonic())
        if remaining <= 0 or stop.wait(remaining):
            break
