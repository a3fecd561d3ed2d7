"""Smoke test of the benchmark command: every section runs and reports sane figures.

Tiny sizes and few repeats (`--quick`), so it stays in the default test run. Speed is never
asserted here: the targets are judged by the benchmark itself, on a quiet machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.bench.__main__ import main
from devtools.bench.plot import PlotUnavailable, plot
from devtools.bench.targets import TARGETS, evaluate
from devtools.bench.timing import interleaved, percentile

# the first test also runs the module's `--quick` benchmark (its fixture): about 20 s on a
# quiet machine, several times that on a loaded 2-core one
pytestmark = pytest.mark.timeout(300)

SECTIONS = ("meta", "get_values", "set_values", "validated_set", "settle_latency", "traced",
            "retry", "ioc_health", "capacity", "pvxs_anchor", "targets")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    """One `python -m devtools.bench --quick` run: its JSON, its printed table and its PNG path."""
    out = tmp_path_factory.mktemp("bench")
    levels = {name: logging.getLogger(name).level for name in ("devtools.bench", "epics_pva")}
    table = io.StringIO()
    try:
        with contextlib.redirect_stdout(table):
            assert main(["--quick", "--json", str(out / "bench.json"), "--plot", str(out / "bench.png")]) == 0
    finally:
        for name, level in levels.items():  # main() configures logging for a terminal
            logging.getLogger(name).setLevel(level)
    return json.loads((out / "bench.json").read_text()), table.getvalue(), out / "bench.png"


def child_commands() -> list[bytes]:
    """Command lines of this process's live children (Linux /proc; empty elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                found.append((stat.parent / "cmdline").read_bytes())
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_leaves_no_process_or_worker_thread(quick_run: tuple[dict, str, Path]) -> None:
    assert multiprocessing.active_children() == []  # the capacity section's subscriber
    assert [c for c in child_commands() if b"devtools.ioc_process" in c] == []  # the soft IOCs
    # section 7: EPICS base's softIoc and the pvxs C++ client
    assert [c for c in child_commands() if b"pvxslibs.ioc" in c or b"pvxs_batch" in c] == []
    deadline = time.monotonic() + 10.0
    while any(t.name.startswith(("epics_pva", "ioc-")) for t in threading.enumerate()):
        assert time.monotonic() < deadline, [t.name for t in threading.enumerate()]
        time.sleep(0.05)


def test_json_has_every_section(quick_run: tuple[dict, str, Path]) -> None:
    results, _, _ = quick_run
    assert set(SECTIONS) <= set(results)
    assert results["get_values"]["rows"] and results["set_values"]["rows"]
    assert [r["n"] for r in results["validated_set"]["rows"]] == [1, 4]
    assert {"wait_for_readback", "poll_0.1s"} <= set(results["settle_latency"])
    assert results["capacity"]["rows"][0]["pairs"] == 20
    anchor = results["pvxs_anchor"]
    assert [r["n"] for r in anchor["get"]["rows"]] == [r["n"] for r in anchor["put"]["rows"]] == [10]
    assert anchor["cpp"]["skipped"] or anchor["get"]["rows"][0]["pvxs_ms"] > 0  # measured, or why not
    assert [t["name"] for t in results["targets"]] == [t.name for t in TARGETS]


def test_ratios_and_times_are_sane(quick_run: tuple[dict, str, Path]) -> None:
    results, _, _ = quick_run
    for row in results["get_values"]["rows"]:
        assert row["raw_ms"] > 0 and row["interface_ratio"] > 0
    for row in results["set_values"]["rows"]:
        assert row["parallel_ratio"] > 0 and row["serial_ratio"] > 0 and row["naive_over_parallel"] > 0
    validated = results["validated_set"]
    assert validated["ideal_ms"] > 0
    for row in validated["rows"]:
        assert row["raw_ms"] > 0 and row["serial_over_ideal"] > 0 and row["parallel_over_ideal"] > 0
    for waiter in ("wait_for_readback", "poll_0.1s"):
        summary = results["settle_latency"][waiter]
        assert summary["samples"] > 0 and summary["median_ms"] > 0
    assert results["retry"]["ratio"] > 0 and results["retry"]["measured_ms"] > 0
    for run in results["traced"].values():
        for bar in run["bars"]:
            assert 0 <= bar["start"] <= bar["put_done"] <= bar["validated"] <= run["wall_s"]


def test_table_and_picture(quick_run: tuple[dict, str, Path]) -> None:
    _, table, png = quick_run
    for heading in ("1. get_values", "2. set_values", "3. set_values", "4. settle detection",
                    "5. retry", "6. soft IOC capacity", "7. get and put", "Targets"):
        assert heading in table
    if png.exists():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # only when matplotlib is missing
        pytest.importorskip("matplotlib", reason="no matplotlib: the picture is skipped")
        pytest.fail("matplotlib is installed but no picture was drawn")


def test_plot_without_matplotlib_says_so(quick_run: tuple[dict, str, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(PlotUnavailable, match="matplotlib is not installed"):
        plot(quick_run[0], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_targets_say_met_missed_or_not_measured() -> None:
    results = {
        "get_values": {"rows": [{"n": 100, "interface_ratio": 1.1}]},
        "set_values": {"rows": [{"n": 100, "parallel_ratio": 1.05, "naive_over_parallel": 30.0}]},
        "validated_set": {"rows": [{"n": 50, "parallel_minus_raw_ms": 2.0}]},
        "settle_latency": {"wait_for_readback": {"median_ms": 6.0}},
    }
    notes = {t["name"]: (t["met"], t["note"]) for t in evaluate(results)}
    unmeasured = (None, "not measured in this run (sizes too small)")
    assert notes == {
        "get_values(10) vs raw p4p": unmeasured,
        "get_values(100) vs raw p4p": (False, "1.10x: missed by 0.05x"),
        "get_values(1000) vs raw p4p": unmeasured,
        "set_values(10), no validation, default settings, vs raw p4p": unmeasured,
        "set_values(100), no validation, default settings, vs raw p4p": (True, "1.05x: met"),
        "set_values(1000), no validation, default settings, vs raw p4p": unmeasured,
        "validated parallel set of 50 minus raw p4p doing the same with monitors": (True, "2.00 ms: met"),
        "validated parallel set of 50 minus the ideal": unmeasured,
        "naive vs ours set_values(100)": (False, "30.00x: missed by 10.00x"),
        "settle detection median latency": (False, "6.00 ms: missed by 1.00 ms"),
    }


def test_interleaved_alternates_order_and_skips_warmup() -> None:
    calls: list[tuple[str, int]] = []
    samples = interleaved({"a": lambda r: calls.append(("a", r)), "b": lambda r: calls.append(("b", r))},
                          repeats=2, warmup=1)
    assert calls == [("b", -1), ("a", -1), ("a", 0), ("b", 0), ("b", 1), ("a", 1)]
    assert {k: len(v) for k, v in samples.items()} == {"a": 2, "b": 2}
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
