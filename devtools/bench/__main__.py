"""`python -m devtools.bench`: the interface against raw p4p and the ideal, one table.

Starts its own soft IOCs (and EPICS base's softIoc for the pvxs C++ anchor), measures every
section side by side, prints the table and the targets, and optionally writes the JSON
(--json) and the picture (--plot, needs matplotlib).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .plot import PlotUnavailable, plot
from .report import format_table, write_json
from .run import Options, run_all

_log = logging.getLogger("devtools.bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and few repeats (seconds; what the smoke test runs)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved rounds of the get/set sections (default 20, quick 3); "
                             "the slower sections take fewer, in proportion")
    parser.add_argument("--capacity", type=int, nargs="*", metavar="PAIRS", default=None,
                        help="soft IOC capacity sizes in pairs (default 500 1000 2000 4000); "
                             "give none to skip the capacity section")
    parser.add_argument("--pvxs", type=int, nargs="*", metavar="N", default=None,
                        help="sizes of the section against EPICS base's softIoc with EPICS's C++ "
                             "client pvxs as the anchor (default 10 100 1000, quick 10); give none "
                             "to skip it")
    parser.add_argument("--ioc-in-process", action="store_true",
                        help="serve the soft IOCs in this process instead of a separate one "
                             "(they then share the client's GIL)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="draw readback traces and set timelines (PNG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every measurement")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:
        # the retry section provokes timeouts on purpose: their warnings are expected
        logging.getLogger("epics_pva").setLevel(logging.ERROR)
    changes = {"ioc_in_process": args.ioc_in_process}
    if args.repeats is not None:
        if args.repeats < 1:
            build_parser().error("--repeats must be at least 1")
        changes["repeats"] = args.repeats
    if args.capacity is not None:
        changes["capacity_pairs"] = tuple(args.capacity)
    if args.pvxs is not None:
        if any(n < 1 for n in args.pvxs):
            build_parser().error("--pvxs sizes must be at least 1")
        changes["pvxs_sizes"] = tuple(args.pvxs)
    options = Options.quick(**changes) if args.quick else Options(**changes)
    results = run_all(options)
    print(format_table(results))
    if args.json:
        write_json(results, args.json)
        _log.info("results written to %s", args.json)
    if args.plot:
        try:
            plot(results, args.plot)
            _log.info("picture written to %s", args.plot)
        except PlotUnavailable as exc:
            _log.warning("no picture: %s", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
