"""The operator's live view: rows for every device, faults and outages shown, redrawn in place."""

from __future__ import annotations

import io
import threading

from softioc import Outage, StuckReadback
from softioc.view import render, run_view


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render_lists_every_device_with_distance_and_faults(soft_ioc, pva_client):
    pva_client.put("DEMO:Q1:SET", 1.0, timeout=5)
    soft_ioc.faults.arm("DEMO:Q1:SET", StuckReadback())
    soft_ioc.faults.arm("DEMO:Q2:SET", Outage(duration=30))
    lines = render(soft_ioc)
    q1 = next(line for line in lines if line.startswith("DEMO:Q1:SET"))
    q2 = next(line for line in lines if line.startswith("DEMO:Q2:SET"))
    assert "DEMO:Q1:RBV" in q1 and "stuck_readback" in q1
    assert "OFFLINE" in q2 and "outage" in q2
    assert any("DEMO:OBJ" in line for line in lines)
    assert "puts=1" in lines[-1]


def test_run_view_redraws_in_place_on_a_terminal(soft_ioc):
    out = _Terminal()
    run_view(soft_ioc, threading.Event(), duration=0.25, out=out, interval=0.1)
    text = out.getvalue()
    assert text.count("DEMO:Q1:SET") >= 2  # drawn more than once
    assert "\x1b[" in text and "F" in text  # cursor moved back up to redraw


def test_run_view_prints_plain_blocks_when_not_a_terminal(soft_ioc):
    out = io.StringIO()
    stop = threading.Event()
    stop.set()
    run_view(soft_ioc, stop, out=out, interval=0.1)
    assert "\x1b[" not in out.getvalue()
    assert out.getvalue().count("DEMO:Q1:SET") == 1
