"""Capacity benchmark (section 6): how many setpoint/readback pairs one IOC process keeps updating.

    python -m devtools.bench.capacity [--pairs 100 500 1000 2000 5000] [--rate 10] [--seconds 3]

Every readback carries noise, so each one is posted on every step (the worst case). The soft
IOC runs in its own process (devtools.ioc_process); a subscriber in another process monitors
every readback and counts what arrives. A size keeps up when no step started late, no step
was missed and the update loop stayed below 80 % busy.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import time
from collections.abc import Sequence
from typing import Any

from ..ioc_process import IOCProcess

_log = logging.getLogger(__name__)


def pairs_config(pairs: int, rate: float) -> dict[str, Any]:
    """A machine of `pairs` noisy first-order magnets updating at `rate` Hz."""
    return {
        "ioc": {"seed": 1, "update_rate": rate},
        "setpoint": [
            {"name": f"BENCH:{i:05d}:SET", "readback": f"BENCH:{i:05d}:RBV", "lag": "first_order",
             "tau": 0.5, "noise": 0.01}
            for i in range(pairs)
        ],
    }


def _subscriber(conf: dict[str, str], names: list[str], ready, stop, result) -> None:
    """Monitor every name; count updates between `ready` (set here) and `stop` (set by the parent)."""
    from p4p.client.thread import Context

    counts = {"n": 0}

    def on_update(_value: Any) -> None:
        counts["n"] += 1

    ctx = Context("pva", conf=conf, useenv=False)
    ctx.get(names, timeout=30.0)  # connect everything first
    subs = [ctx.monitor(name, on_update, notify_disconnect=False) for name in names]
    time.sleep(0.5)
    counts["n"] = 0
    ready.set()
    stop.wait(600)
    result.put(counts["n"])  # report before tearing down: closing under load is slow
    for sub in subs:
        sub.close()
    ctx.close()


def end_child(proc: Any, stop: Any) -> None:
    """Ask a measuring child to stop (its `stop` event), then join it, killing it after 30 s."""
    stop.set()
    proc.join(30)
    if proc.is_alive():
        proc.kill()
        proc.join(5)


def measure(pairs: int, rate: float, seconds: float) -> dict[str, Any]:
    """Run one size; returns steps, late steps, CPU share and delivery figures."""
    mp = multiprocessing.get_context("spawn")  # never fork a process holding p4p state
    with IOCProcess(pairs_config(pairs, rate)) as ioc:
        names = [f"BENCH:{i:05d}:RBV" for i in range(pairs)]
        ready, stop, result = mp.Event(), mp.Event(), mp.Queue()
        proc = mp.Process(target=_subscriber, args=(ioc.client_conf, names, ready, stop, result))
        proc.start()
        try:
            if not ready.wait(120):
                raise RuntimeError("subscriber did not connect within 120 s")
            before = ioc.call("stats", "reset_lateness")
            wall0 = time.monotonic()
            time.sleep(seconds)
            after = ioc.call("stats")
            wall = time.monotonic() - wall0
            time.sleep(0.2)  # let the last posts of the window arrive before the count is taken
            sent = ioc.call("stats")["posts"] - before["posts"]  # over the subscriber's window
            stop.set()
            received = result.get(timeout=60)
        finally:
            end_child(proc, stop)
    steps, late = after["steps"] - before["steps"], after["late_steps"] - before["late_steps"]
    busy, posts = after["busy_s"] - before["busy_s"], after["posts"] - before["posts"]
    cpu, max_late = after["cpu_s"] - before["cpu_s"], after["max_lateness_s"]
    expected_steps = wall * rate
    return {
        "pairs": pairs,
        "rate_hz": rate,
        "steps": steps,
        "expected_steps": round(expected_steps, 1),
        "late_steps": late,
        "max_lateness_ms": round(max_late * 1e3, 2),
        "update_loop_busy": round(busy / wall, 3),
        "ioc_process_cpu": round(cpu / wall, 3),
        "posts": posts,
        "received_by_subscriber": received,
        "delivered": round(received / sent, 3) if sent else None,
        "keeps_up": late == 0 and steps >= expected_steps - 2 and busy / wall < 0.8,
    }


def measure_capacity(pairs: Sequence[int], rate: float, seconds: float) -> dict[str, Any]:
    """Measure each size in turn; the rows and the largest size keeping up."""
    rows = []
    for count in pairs:
        rows.append(measure(count, rate, seconds))
        _log.info("capacity %d pairs: %s", count, rows[-1])
    best = max((r["pairs"] for r in rows if r["keeps_up"]), default=0)
    return {"rate_hz": rate, "seconds": seconds, "rows": rows, "largest_keeping_up": best}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[100, 500, 1000, 2000, 5000])
    parser.add_argument("--rate", type=float, default=10.0, help="readback update rate, Hz")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per size")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    print(f"{'pairs':>6} {'steps':>7} {'late':>5} {'max late ms':>11} {'loop busy':>9} "
          f"{'IOC CPU':>8} {'delivered':>9}  keeps up at {args.rate:g} Hz")
    for pairs in args.pairs:
        r = measure(pairs, args.rate, args.seconds)
        results.append(r)
        print(f"{r['pairs']:>6} {r['steps']:>7} {r['late_steps']:>5} {r['max_lateness_ms']:>11} "
              f"{r['update_loop_busy']:>9.1%} {r['ioc_process_cpu']:>8.1%} {r['delivered']:>9.1%}  "
              f"{'yes' if r['keeps_up'] else 'NO'}", flush=True)
    best = max((r["pairs"] for r in results if r["keeps_up"]), default=0)
    print(f"largest size that keeps up: {best} pairs at {args.rate:g} Hz")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"capacity": results, "largest_keeping_up": best}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
