"""Section 7: EPICS's own C++ client (pvxs) as the anchor, beside raw p4p and ours.

    python -m devtools.bench.anchor [--sizes 10 100 1000] [--repeats 20] [--json PATH]

One EPICS base softIoc (softioc.epics_base.EpicsBaseIOC: C records served by QSRV2, on
loopback) serves N `ao` records; three clients read and write the same records in one run:

- pvxs C++: pvxs_batch.cpp built here (devtools.bench.cpp), a batch get of N PVs with every
  operation in flight at once, then a batch put of a value per PV likewise (no Get before
  the put); the program times each batch itself, so the pipe that drives it is left out;
- raw p4p: `p4p.client.thread.Context.get(list)` and `.put(list, values)`, its defaults;
- ours: `epics_pva.Interface(conf=...).get_values(names)` and `set_values` in parallel mode
  without validation, the default settings.

The clients take turns round by round (the order reversed every other round) after warm-up,
so load on the machine hits them alike. Each row gives the medians and the ratios of the
medians to pvxs (e.g. get_values 2.1x pvxs) and of ours to raw p4p. Without a C++ compiler
or pvxs's headers the pvxs column says why it was skipped and the other two still run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from p4p.client.thread import Context

from epics_pva import Interface
from epics_pva.transport import settle
from softioc.epics_base import EpicsBaseIOC

from .cpp import BuildSkipped, PvxsBatch, build, find_toolchain, put_values
from .readwrite import TIMEOUT, repeats_for
from .report import format_anchor
from .timing import interleaved, median, ms, ratio

_log = logging.getLogger(__name__)

CLIENTS = ("pvxs", "raw", "interface")
"""The clients of each row, in the order of the first round; "pvxs" is the anchor."""


def record_names(n: int) -> list[str]:
    """The `ao` records served: BENCH:AO:0000 ..."""
    return [f"BENCH:AO:{i:04d}" for i in range(n)]


def ao_database(names: Sequence[str]) -> str:
    """A .db of one `ao` per name, processed at init (so no record reads UDF), no drive limits."""
    return "".join(f'record(ao, "{name}") {{\n    field(PINI, "YES")\n    field(VAL, "1.5")\n}}\n'
                   for name in names)


def _row(n: int, samples: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Medians (ms) of each client, and ratios of the medians: to pvxs and ours to raw p4p."""
    medians = {name: median(values) for name, values in samples.items()}
    row: dict[str, Any] = {"n": n, "repeats": len(samples["raw"])}
    for name in CLIENTS:
        row[f"{name}_ms"] = ms(medians[name]) if name in medians else None
    for name in ("raw", "interface"):
        anchor = samples.get("pvxs")
        row[f"{name}_over_pvxs"] = ratio(medians[name], medians["pvxs"]) if anchor else None
        # per-round ratios: robust to slow drift that the round shares
        paired = [a / b for a, b in zip(samples[name], anchor, strict=True) if b > 0] if anchor else []
        row[f"{name}_paired_over_pvxs"] = round(median(paired), 3) if paired else None
    row["interface_over_raw"] = ratio(medians["interface"], medians["raw"])
    return row


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _start_cpp(conf: Mapping[str, str], names: Sequence[str], stack: ExitStack) -> tuple[PvxsBatch | None, dict[str, Any]]:
    """The built pvxs client serving `names`, or None and why it was skipped."""
    about: dict[str, Any] = {"compiler": None, "program": None, "skipped": None,
                             "pvxslibs": _version("pvxslibs"), "epicscorelibs": _version("epicscorelibs")}
    try:
        toolchain = find_toolchain()
        about["compiler"] = toolchain.version()
        program = build(toolchain=toolchain)
        about["program"] = program.name
        client = stack.enter_context(PvxsBatch(program, names, conf, TIMEOUT))
    except BuildSkipped as exc:
        about["skipped"] = str(exc)
        _log.warning("pvxs C++ client skipped: %s", exc)
        return None, about
    return client, about


Cases = dict[str, Callable[[int], Any]]


def _quiet() -> None:
    """Before every timed call: ours has done the housekeeping of its last call (releasing its
    completed operations, taking the monitor updates its puts caused: both after the call
    returns, in background threads), so that work overlaps no client's timing."""
    settle(10.0)


def _cases(part: list[str], ctx: Context, ours: Interface, cpp: PvxsBatch | None) -> tuple[Cases, Cases]:
    """The batch get and the batch put of each client on the PVs `part`, called with a round."""
    n = len(part)

    def raw_get(_round: int) -> Any:
        return ctx.get(part, timeout=TIMEOUT)

    def raw_put(round_: int) -> Any:
        return ctx.put(part, put_values(round_, n), timeout=TIMEOUT)

    def our_get(_round: int) -> Any:
        return ours.get_values(part)

    def our_put(round_: int) -> Any:
        return ours.set_values(dict(zip(part, put_values(round_, n), strict=True)))

    gets: Cases = {"raw": raw_get, "interface": our_get}
    puts: Cases = {"raw": raw_put, "interface": our_put}
    if cpp is not None:  # first in the first round; self-timed: returns its own seconds
        gets = {"pvxs": lambda _round: cpp.get(n), **gets}
        puts = {"pvxs": lambda round_: cpp.put(n, round_), **puts}
    return gets, puts


def measure_anchor(sizes: Sequence[int], repeats: int, warmup: int) -> dict[str, Any]:
    """Batch get and put of N `ao` records of EPICS base's softIoc by pvxs, raw p4p and ours."""
    names = record_names(max(sizes))
    result: dict[str, Any] = {
        "server": "EPICS base softIoc with QSRV2 (python -m pvxslibs.ioc), ao records, loopback",
        "clients": {
            "pvxs": "pvxs C++ (pvxs_batch.cpp): every operation in flight at once; put without a Get first",
            "raw": "p4p.client.thread.Context.get(list) / .put(list, values), defaults",
            "interface": "epics_pva.Interface.get_values / set_values (parallel, no validation), defaults",
        },
    }
    get_rows: list[dict[str, Any]] = []
    put_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-anchor-") as folder, ExitStack() as stack:
        db = Path(folder) / "ao.db"
        db.write_text(ao_database(names))
        ioc = stack.enter_context(EpicsBaseIOC(db=db, ready_pv=names[-1]))
        conf = ioc.client_conf()
        cpp, result["cpp"] = _start_cpp(conf, names, stack)
        ctx = stack.enter_context(Context("pva", conf=dict(conf), useenv=False))
        ours = stack.enter_context(Interface(conf=conf, timeout=TIMEOUT, parallel=True))
        for n in sizes:
            gets, puts = _cases(names[:n], ctx, ours, cpp)
            rounds = repeats_for(n, repeats)
            get_rows.append(_row(n, interleaved(gets, rounds, warmup, _quiet, self_timed=("pvxs",))))
            _log.info("pvxs anchor get %d PVs: %s", n, get_rows[-1])
            put_rows.append(_row(n, interleaved(puts, rounds, warmup, _quiet, self_timed=("pvxs",))))
            _log.info("pvxs anchor put %d PVs: %s", n, put_rows[-1])
    result["get"] = {"rows": get_rows}
    result["put"] = {"rows": put_rows}
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.anchor",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000], metavar="N",
                        help="numbers of records per batch (default 10 100 1000)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="interleaved rounds per size (default 20; half for N >= 1000)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or min(args.sizes) < 1:
        build_parser().error("--repeats and every size must be at least 1, --warmup at least 0")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("epics_pva").setLevel(logging.ERROR)
    meta: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "p4p": _version("p4p"), "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "options": {"sizes": args.sizes, "repeats": args.repeats, "warmup": args.warmup},
    }
    section = measure_anchor(args.sizes, args.repeats, args.warmup)
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"devtools.bench.anchor: {meta['cpus']} CPUs; load average {meta['load_before'][0]} before, "
          f"{meta['load_after'][0]} after; medians of {args.repeats} interleaved rounds after "
          f"{args.warmup} warm-up (half the rounds at N >= 1000)\n")
    print("\n".join(format_anchor(section)))
    if args.json:  # the shape of python -m devtools.bench --json, with this section only
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "pvxs_anchor": section}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
