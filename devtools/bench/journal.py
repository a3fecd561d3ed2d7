"""`python -m devtools.bench.journal`: reading a long journal for a one-hour window.

    python -m devtools.bench.journal [--lines N] [--interval S] [--journal PATH] [--repeats N]
                                     [--json PATH]

Writes (or reuses, with --journal) a journal of N lines (default 2,000,000) as the
Interface writes them: one set_values call every S seconds (default 5: an optimiser's step,
with its readbacks' settling, its observables and its next proposal, seldom takes less),
each setting four PVs with a validation (before, put, outcome and validation lines per PV,
then the call's end line: 17 lines a call). Then it times, each in a fresh child process and
as the median of --repeats runs (default 3):

- `read`: reading the file line by line and doing nothing else (the floor for any reader);
- `pva-journal show` for one hour in the middle of the file, for the last hour, and for an
  hour after the last line (no calls in the window), its output thrown away.

Each child reports its own wall time, its CPU time and its peak resident memory
(resource.getrusage of itself: ru_utime + ru_stime, ru_maxrss). `command` is the whole
child from its first line (its imports included; its CPU time includes the interpreter's
start too, for the read as for show); `main` the reading and printing alone, as
pva-journal's main() runs them. The targets: a window's show within 2x
the time to read the file, and below 100 MB of memory. On a loaded machine compare the CPU
ratios: wall times there measure the other processes too.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

START = 1_790_000_000.0  # the first call's time (epoch s), 2026-09-21
PVS = 4  # PVs per call
INTERVAL = 5.0  # seconds between calls
HOUR = 3600.0
TIME_TARGET = 2.0  # show / read
MEMORY_TARGET_MB = 100.0

_READ = r"""
import json, resource, sys, time
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
t0, c0 = time.perf_counter(), cpu()
n = 0
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        n += 1
t1, c1 = time.perf_counter(), cpu()
print(json.dumps({"command": t1 - t0, "main": t1 - t0, "command_cpu": c1, "main_cpu": c1 - c0,
                  "lines": n, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_SHOW = r"""
import json, os, resource, sys, time
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
t0 = time.perf_counter()  # the interpreter's own start is not counted (nor is it for the read)
from epics_pva.tools.journal_cli import main
t1, c1 = time.perf_counter(), cpu()
real = sys.stdout
with open(os.devnull, "w") as out:
    sys.stdout = out
    code = main(sys.argv[1:])
    sys.stdout = real
t2, c2 = time.perf_counter(), cpu()
print(json.dumps({"command": t2 - t0, "main": t2 - t1, "command_cpu": c2, "main_cpu": c2 - c1,
                  "code": code, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_journal(path: Path, lines: int, interval: float = INTERVAL, seed: int = 1) -> tuple[float, float]:
    """Write a journal of `lines` lines as the Interface writes them, a call every `interval`
    seconds; (first, last) line time."""
    rnd = random.Random(seed)
    pid = 4242
    wire = ',"prefix":"","rehearsal":false,"rehearsal_id":""'
    written = 0
    when = START
    call_number = 0
    with open(path, "w", encoding="ascii") as fh:
        while written < lines:
            call_number += 1
            start = START + call_number * interval
            call = f"{pid}-{call_number}-{rnd.getrandbits(32):08x}-{int(start * 1000)}"
            names = [f"BENCH:Q{n}:SET" for n in range(PVS)]
            body: list[str] = []
            body += [f'"event":"before","call":"{call}","pv":"{pv}","value":{rnd.uniform(-5, 5)!r}{wire}'
                     for pv in names]
            for pv in names:
                body.append(f'"event":"put","call":"{call}","pv":"{pv}","value":{rnd.uniform(-5, 5)!r},'
                            '"attempt":1')
            for pv in names:
                body.append(f'"event":"outcome","call":"{call}","pv":"{pv}","attempt":1,'
                            '"outcome":"accepted","reason":null')
            for pv in names:
                body.append(f'"event":"validation","call":"{call}","pv":"{pv}","result":{rnd.uniform(-5, 5)!r}')
            body.append(f'"event":"end","call":"{call}"')
            for k, text in enumerate(body):
                if written == lines:
                    break
                when = start + 0.001 * k
                fh.write(f'{{"time":{when!r},"pid":{pid},{text}}}\n')
                written += 1
    return START + interval, when


def _child(code: str, argv: Sequence[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _median_run(code: str, argv: Sequence[str], repeats: int) -> dict[str, Any]:
    runs = [_child(code, argv) for _ in range(repeats)]
    medians = {key: statistics.median(r[key] for r in runs) for key in ("command", "main", "command_cpu", "main_cpu")}
    return {**medians, "maxrss_mb": max(r["maxrss_mb"] for r in runs), "code": runs[-1].get("code"), "runs": runs}


def run(path: Path, repeats: int) -> dict[str, Any]:
    """Measure the read and the three windows on the journal at `path`."""
    first, last = _span(path)
    middle = (first + last) / 2
    windows = {
        "middle hour": (middle, middle + HOUR),
        "last hour": (last - HOUR, last),
        "no calls in the window": (last + HOUR, last + 2 * HOUR),
    }
    _child(_READ, [str(path)])  # into the page cache: every run reads it from memory
    read = _median_run(_READ, [str(path)], repeats)
    rows = {}
    for name, (since, until) in windows.items():
        argv = ["show", str(path), "--since", repr(since), "--until", repr(until)]
        rows[name] = _median_run(_SHOW, argv, repeats)
    return {"path": str(path), "bytes": path.stat().st_size, "lines": read["runs"][0]["lines"],
            "first": first, "last": last, "read": read, "show": rows}


def _interval(path: Path) -> float:
    """The seconds between the first two calls of the journal at `path`."""
    starts: dict[str, float] = {}
    with open(path, "rb") as fh:
        for line in fh:
            entry = json.loads(line)
            starts.setdefault(entry["call"], entry["time"])
            if len(starts) == 2:
                first, second = starts.values()
                return round(second - first, 6)
    return 0.0


def _span(path: Path) -> tuple[float, float]:
    with open(path, "rb") as fh:
        first = json.loads(fh.readline())["time"]
        fh.seek(max(0, path.stat().st_size - 4096))
        last = json.loads(fh.read().splitlines()[-1])["time"]
    return float(first), float(last)


def format_table(result: dict[str, Any]) -> str:
    read = result["read"]
    lines = [
        f"journal: {result['lines']:,} lines, {result['bytes'] / 1e6:.0f} MB, "
        f"{(result['last'] - result['first']) / HOUR:.1f} h, a call every {result['interval']:g} s",
        f"read the file line by line: {read['command']:.2f} s ({read['command_cpu']:.2f} s CPU), "
        f"peak {read['maxrss_mb']:.0f} MB",
        f"{'pva-journal show':<24} {'command s':>9} {'/read':>6} {'main s':>7} {'/read':>6} "
        f"{'CPU s':>6} {'/read':>6} {'main CPU':>8} {'/read':>6} {'peak MB':>8}",
    ]
    for name, row in result["show"].items():
        lines.append(
            f"{name:<24} {row['command']:9.2f} {row['command'] / read['command']:5.2f}x "
            f"{row['main']:7.2f} {row['main'] / read['command']:5.2f}x "
            f"{row['command_cpu']:6.2f} {row['command_cpu'] / read['command_cpu']:5.2f}x "
            f"{row['main_cpu']:8.2f} {row['main_cpu'] / read['command_cpu']:5.2f}x {row['maxrss_mb']:8.0f}")
    worst_time = max(row["command"] / read["command"] for row in result["show"].values())
    worst_cpu = max(row["command_cpu"] / read["command_cpu"] for row in result["show"].values())
    worst_memory = max(row["maxrss_mb"] for row in result["show"].values())
    lines.append(f"targets: show <= {TIME_TARGET:g}x the read: {worst_time:.2f}x wall, {worst_cpu:.2f}x CPU "
                 f"({'met' if max(worst_time, worst_cpu) <= TIME_TARGET else 'MISSED'}); "
                 f"peak < {MEMORY_TARGET_MB:g} MB: {worst_memory:.0f} MB "
                 f"({'met' if worst_memory < MEMORY_TARGET_MB else 'MISSED'})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.journal", description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000, help="lines of the journal (default 2,000,000)")
    parser.add_argument("--interval", type=float, default=INTERVAL,
                        help=f"seconds between calls in the journal written (default {INTERVAL:g})")
    parser.add_argument("--journal", type=Path, help="write the journal here and keep it (reused if it exists)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (median; default 3)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    if args.lines < 20 or args.repeats < 1 or not 0 < args.interval < HOUR:
        parser.error("--lines must be at least 20, --repeats at least 1, --interval within (0, 3600) s")
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as scratch:
        path = args.journal or Path(scratch) / "journal.jsonl"
        if not path.exists():
            began = time.perf_counter()
            write_journal(path, args.lines, args.interval)
            print(f"wrote {path} in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        result = {**run(path, args.repeats), "interval": _interval(path)}
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
