"""Smoke test of `python -m devtools.bench.journal`: a small journal, every row measured.

Speed is never asserted here (docs/performance.md quotes the full-size run); this checks that
the generated journal is one the reader takes whole, and that the command reports each row.
"""

from __future__ import annotations

import contextlib
import io
import json

from devtools.bench.journal import HOUR, main, write_journal
from epics_pva.journal import group_calls, scan_journal


def test_the_generated_journal_reads_as_calls_of_four_pvs(tmp_path):
    path = tmp_path / "j.jsonl"
    first, last = write_journal(path, 17 * 30, interval=5.0)
    scan = scan_journal(path)
    calls = group_calls(scan.entries)
    assert scan.bad == [] and len(calls) == 30 and all(len(c.pvs) == 4 for c in calls)
    assert (first, last) == (calls[0].time, max(e.time for e in scan.entries) + 0.001)  # its end line last
    window = scan_journal(path, since=first + 5.0 * 10, until=first + 5.0 * 19)
    assert {e.call for e in window.entries} == {c.call for c in calls[10:20]}


def test_the_command_reports_every_row(tmp_path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--lines", "25500", "--interval", "5", "--repeats", "1",
                     "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["lines"] == 25500 and result["interval"] == 5.0
    assert set(result["show"]) == {"middle hour", "last hour", "no calls in the window"}
    assert all(row["code"] == 0 and row["maxrss_mb"] > 0 for row in result["show"].values())
    assert result["last"] - result["first"] > 2 * HOUR
    assert "targets: show <= 2x the read" in out.getvalue()
