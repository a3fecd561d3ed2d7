"""How long a large config takes to load, and to build its model: the loader's cost per PV.

    python -m devtools.bench.load [--observables 20000] [--pairs 100000]

Row 1 loads N observables whose input is a setpoint, and N whose input is a readback (the
loader checks every input against the served names; the two must cost alike). Row 2 loads
`pairs` noisy setpoint/readback pairs (2 x pairs PVs) and builds their model, and reports the
process's peak memory. No server is started.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Sequence
from typing import Any

from softioc import load_config
from softioc.model import VectorSimulation


def observables_of(count: int, end: str) -> dict[str, Any]:
    """`count` setpoints with readbacks, and as many observables reading each one's SET or RBV."""
    return {
        "setpoint_range": [{"name": "SP:{i}:SET", "readback": "SP:{i}:RBV", "count": count}],
        "observable_range": [{"name": "OB:{i}", "expression": "2 * x", "inputs": {"x": "SP:{i}:" + end},
                              "count": count}],
    }


def _timed(work: Any, *args: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = work(*args)
    return time.perf_counter() - began, result


def measure(observables: int, pairs: int) -> dict[str, Any]:
    """The seconds each load took, and the pairs' model build and peak memory (MB)."""
    of_setpoints, _ = _timed(load_config, observables_of(observables, "SET"))
    of_readbacks, _ = _timed(load_config, observables_of(observables, "RBV"))
    config = {"setpoint_range": [{"name": "M:{i:06d}:SET", "readback": "M:{i:06d}:RBV", "count": pairs,
                                  "lag": "first_order", "noise": 0.01}]}
    loaded, big = _timed(load_config, config)
    built, _ = _timed(VectorSimulation, big)
    return {"observables": observables, "of_setpoints_s": round(of_setpoints, 3),
            "of_readbacks_s": round(of_readbacks, 3), "pvs": len(big.pv_names()), "load_s": round(loaded, 3),
            "model_s": round(built, 3), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--observables", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    row = measure(args.observables, args.pairs)
    if args.json:
        print(json.dumps(row))
    else:
        print(f"{row['observables']:,} observables of setpoints: {row['of_setpoints_s']:.2f} s, "
              f"of readbacks: {row['of_readbacks_s']:.2f} s")
        print(f"{row['pvs']:,} PVs: loaded in {row['load_s']:.2f} s, model built in {row['model_s']:.2f} s, "
              f"peak {row['peak_mb']:,} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
