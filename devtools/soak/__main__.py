"""`python -m devtools.soak`: run a soak, print its figures, write its JSON report.

Exit status: 0 when every check passed, 1 when any failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .runner import MAX_LISTED, SoakSettings, run_soak

SHOWN = 5  # unexplained failures and unexpected errors printed; the JSON report keeps more


def build_parser() -> argparse.ArgumentParser:
    d = SoakSettings()
    p = argparse.ArgumentParser(
        prog="python -m devtools.soak",
        description="Validated set_values/get_values in a loop against a soft IOC with seeded "
                    "random faults; checks that every fault surfaced and nothing leaked.")
    p.add_argument("--cycles", type=int, default=None,
                   help=f"cycles to run (default {d.cycles} unless --duration is given)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to run (with --cycles: whichever comes first)")
    p.add_argument("--json", type=Path, default=None, help="write the full report to this file")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of values, outages and IOC faults")
    p.add_argument("--pvs", type=int, default=d.pvs, help="setpoints per call")
    p.add_argument("--sequential", action="store_true", help="parallel=False (default: parallel)")
    p.add_argument("--timeout", type=float, default=d.timeout, help="Interface timeout, s")
    p.add_argument("--put-attempts", type=int, default=d.put_attempts)
    p.add_argument("--retry-delay", type=float, default=d.retry_delay, help="s")
    p.add_argument("--count-down", type=float, default=d.count_down, help="wait_for_readback limit, s")
    p.add_argument("--update-rate", type=float, default=d.update_rate, help="IOC readback rate, Hz")
    p.add_argument("--p-timeout", type=float, default=d.p_timeout, help="probability a put times out")
    p.add_argument("--p-reject", type=float, default=d.p_reject, help="probability a put is rejected")
    p.add_argument("--p-outage", type=float, default=d.p_outage, help="probability per cycle of an outage")
    p.add_argument("--outage-every", type=int, default=None,
                   help="instead of --p-outage: an outage every N cycles, a PV's and the server's in turn")
    p.add_argument("--outage-duration", type=float, default=d.outage_duration, help="s")
    p.add_argument("--server-outage-share", type=float, default=d.server_outage_share,
                   help="share of outages that take the whole server down")
    p.add_argument("--warmup", type=int, default=d.warmup, help="cycles before the resource baseline")
    p.add_argument("--max-rss-growth-mb", type=float, default=d.max_rss_growth_mb)
    p.add_argument("--progress-every", type=int, default=0, help="log progress every N cycles")
    p.add_argument("--journal", default=None, metavar="FILE",
                   help="keep the interface's journal in FILE (with --audit: cross-checked at the end)")
    p.add_argument("--audit", default=None, metavar="FILE",
                   help="keep the soft IOC's audit file in FILE (with --journal: cross-checked)")
    p.add_argument("--processes", type=int, default=d.processes,
                   help="soft IOC processes serving the PVs (default 1; N > 1: a machine of N shards)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the verdict")
    return p


def summary(report: dict[str, Any]) -> list[str]:
    """The report's figures, one per line, for a terminal."""
    f, o = report["faults"], report["outcomes"]
    lines = [
        f"cycles {report['cycles']} in {report['duration_s']} s ({report['cycles_per_s']}/s), "
        f"after {report['connect_s']} s connecting",
        f"calls {o['calls']}  PV outcomes {o['pvs']}  errors {o['errors']}  reads {o['reads']}",
        f"audit {report['audit']}",
        f"injected {f['injected']}; faulted puts {f['puts_faulted']}, surfaced {f['surfaced']}, "
        f"lost {f['lost']}, invented {f['invented']}, false timeouts {f['false_timeouts']}",
        f"recovery after outages (s) {report['recovery_s']}",
        f"set_values latency (s) {report['set_values_latency_s']}",
    ]
    lines += [f"{'ok  ' if c['ok'] else 'FAIL'} {name}: {c['detail']}" for name, c in report["checks"].items()]
    lines += [f"  unexplained, cycle {u['cycle']}: {u['pv']}: {u['why']}" for u in report["unexplained"][:SHOWN]]
    lines += [f"  unexpected: {text}" for text in report["unexpected_errors"][:SHOWN]]
    if max(report["unexplained_failures"], len(report["unexpected_errors"])) > SHOWN:
        lines.append(f"  (the JSON report lists up to {MAX_LISTED} of each)")
    lines.append("PASSED" if report["passed"] else "FAILED")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # retries and validation failures are expected by the thousand here; the report counts them
    logging.getLogger("epics_pva").setLevel(logging.ERROR)
    cycles = args.cycles if args.cycles is not None or args.duration is not None else SoakSettings().cycles
    try:
        settings = SoakSettings(
            cycles=cycles, duration=args.duration, seed=args.seed, pvs=args.pvs,
            parallel=not args.sequential, timeout=args.timeout, put_attempts=args.put_attempts,
            retry_delay=args.retry_delay, count_down=args.count_down, update_rate=args.update_rate,
            p_timeout=args.p_timeout, p_reject=args.p_reject, p_outage=args.p_outage,
            outage_every=args.outage_every, outage_duration=args.outage_duration, server_outage_share=args.server_outage_share,
            warmup=args.warmup, max_rss_growth_mb=args.max_rss_growth_mb,
            progress_every=args.progress_every, journal=args.journal, audit=args.audit,
            processes=args.processes,
        )
        report = run_soak(settings)
    except (ValueError, TimeoutError) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    for line in summary(report) if not args.quiet else ["PASSED" if report["passed"] else "FAILED"]:
        print(line)
    return 0 if report["passed"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
