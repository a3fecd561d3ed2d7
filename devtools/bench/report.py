"""The results as a plain-text table (for the terminal and the README) and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _f(value: Any, fmt: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    return [line] + ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]


def _capacity(c: dict[str, Any]) -> list[str]:
    """Section 6 lines: devtools.bench.capacity's rows, or a note that it was skipped."""
    if not c["rows"]:
        return ["6. soft IOC capacity: skipped (--capacity given no sizes)"]
    lines = [f"6. soft IOC capacity (devtools.bench.capacity): noisy pairs updated at {c['rate_hz']:g} Hz, "
             f"{c['seconds']:g} s each"]
    lines += _table(["pairs", "late steps", "loop busy", "IOC CPU", "delivered", "keeps up"], [
        [str(row["pairs"]), str(row["late_steps"]), _f(row["update_loop_busy"] * 100, ".0f", "%"),
         _f(row["ioc_process_cpu"] * 100, ".0f", "%"),
         _f(None if row["delivered"] is None else row["delivered"] * 100, ".0f", "%"),
         "yes" if row["keeps_up"] else "NO"]
        for row in c["rows"]])
    lines.append(f"   largest size keeping up: {c['largest_keeping_up']} pairs")
    return lines


def format_anchor(a: dict[str, Any] | None) -> list[str]:
    """Section 7 lines: pvxs C++, raw p4p and ours against EPICS base's softIoc, or why skipped."""
    title = "7. get and put of N ao records of EPICS base's softIoc: EPICS's C++ client pvxs, raw p4p, ours"
    if a is None:
        return [f"{title}: skipped (--pvxs given no sizes)"]
    cpp = a.get("cpp", {})
    lines = [title]
    if cpp.get("skipped"):
        lines.append(f"   pvxs C++: skipped: {cpp['skipped']}")
    else:
        lines.append(f"   pvxs C++: pvxs_batch.cpp built by {cpp.get('compiler') or '?'}")
    header = ["N", "pvxs ms", "raw p4p ms", "raw/pvxs", "ours ms", "ours/pvxs", "ours/raw"]
    for op, ours in (("get", "get_values"), ("put", "set_values")):
        lines.append(f"   {op}: {'Context.get(list)' if op == 'get' else 'Context.put(list, values)'} "
                     f"vs {ours}(N)")
        rows = a.get(op, {}).get("rows", [])
        lines += _table(header, [
            [str(r["n"]), _f(r["pvxs_ms"], ".3f") if r["pvxs_ms"] is not None else "skipped",
             _f(r["raw_ms"], ".3f"), _f(r["raw_over_pvxs"], ".2f", "x"),
             _f(r["interface_ms"], ".3f"), _f(r["interface_over_pvxs"], ".2f", "x"),
             _f(r["interface_over_raw"], ".2f", "x")]
            for r in rows])
    for op, ours in (("get", "get_values"), ("put", "set_values")):
        for r in a.get(op, {}).get("rows", []):
            if r["interface_over_pvxs"] is not None:
                lines.append(f"   {ours}({r['n']}) {_f(r['interface_over_pvxs'], '.1f', 'x')} pvxs; "
                             f"raw p4p {_f(r['raw_over_pvxs'], '.1f', 'x')} pvxs")
    lines += ["   (every client with all of a batch's operations in flight at once, taking turns round",
              "    by round; ratios are of the medians; pvxs puts without a Get first, as ours does once",
              "    a PV's monitor gave its type, while raw p4p's put makes that Get; ours reads value,",
              "    alarm and time stamp, pvxs and raw p4p the whole structure)"]
    return lines


def format_table(results: dict[str, Any]) -> str:
    """Every section as aligned text, then the targets: met, or missed by how much."""
    meta = results["meta"]
    opts = meta["options"]
    out = [
        f"devtools.bench: soft IOC in {meta['ioc']}; {meta['cpus']} CPUs; load average "
        f"{meta['load_before'][0]} before, {meta.get('load_after', ['?'])[0]} after; "
        f"medians of {opts['repeats']} interleaved rounds after {opts['warmup']} warm-up",
        "",
        "1. get_values(N) vs raw p4p Context.get(list)",
    ]
    out += _table(["N", "raw ms", "interface ms", "ratio", "paired"], [
        [str(r["n"]), _f(r["raw_ms"], ".3f"), _f(r["interface_ms"], ".3f"), _f(r["interface_ratio"], ".2f", "x"),
         _f(r.get("interface_paired_ratio"), ".2f", "x")]
        for r in results["get_values"]["rows"]])
    out += ["", "2. set_values(N), no validation, vs raw p4p Context.put(list, values)"]
    out += _table(["N", "raw ms", "parallel ms", "ratio", "paired", "in order ms", "ratio", "naive ms",
                   "naive/ours"], [
        [str(r["n"]), _f(r["raw_ms"], ".3f"), _f(r["parallel_ms"], ".3f"), _f(r["parallel_ratio"], ".2f", "x"),
         _f(r.get("parallel_paired_ratio"), ".2f", "x"), _f(r["serial_ms"], ".3f"), _f(r["serial_ratio"], ".2f", "x"),
         _f(r.get("naive_ms"), ".3f"), _f(r.get("naive_over_parallel"), ".1f", "x")]
        for r in results["set_values"]["rows"]])
    out += ["   (ratio: of the medians; paired: the median of each round's ratio, robust to drift on a",
            "    shared machine; the targets judge the ratio of the medians)",
            "   (parallel: the default settings, each input checked against its PV's monitor;",
            "    naive: written in the bench, a context per call and one put after another)"]
    for r in results["set_values"]["rows"]:
        if r["n"] == 100:
            out.append(f"   naive vs ours set_values(100): {_f(r.get('naive_over_parallel'), '.1f', 'x')}")
    v = results["validated_set"]
    out += ["", f"3. set_values(N) with wait_for_readback; ideal = {_f(v['ideal_ms'], '.1f')} ms "
                f"(slowest PV alone, raw put to in-tolerance post; designed {_f(v['slowest_designed_ms'], '.0f')} ms)"]
    out += _table(
        ["N", "naive ms", "raw p4p ms", "in order ms", "parallel ms", "par-raw ms", "par/ideal",
         "par-ideal ms", "1 worker/PV ms", "/ideal", "-ideal ms"],
        [[str(r["n"]), _f(r.get("naive_ms"), ".1f"), _f(r.get("raw_ms"), ".1f"), _f(r.get("serial_ms"), ".1f"),
          _f(r.get("parallel_ms"), ".1f"), _f(r.get("parallel_minus_raw_ms"), ".1f"),
          _f(r.get("parallel_over_ideal"), ".2f", "x"), _f(r.get("parallel_minus_ideal_ms"), ".1f"),
          _f(r.get("wide_ms"), ".1f"), _f(r.get("wide_over_ideal"), ".2f", "x"),
          _f(r.get("wide_minus_ideal_ms"), ".1f")]
         for r in v["rows"]])
    out.append("   (raw p4p: monitors on the readbacks, one Context.put(list), wait for all in tolerance;")
    out.append("    naive: a context per call, puts in turn, each readback polled every 0.1 s)")
    out.append(f"   (parallel: the default max_workers={v['parallel_workers']}, as Badger builds it; "
               f"'1 worker/PV': max_workers={v['wide_workers']}, run only when N > {v['parallel_workers']})")
    lat = results["settle_latency"]
    names = {"wait_for_readback": "wait_for_readback", "poll_0.1s": "poll every 0.1 s",
             "parallel_sets": "wait_for_readback in parallel sets"}
    out += ["", "4. settle detection latency: IOC posts a readback in tolerance -> the waiter returns"]
    out += _table(["waiter", "median ms", "p99 ms", "samples"], [
        [names.get(k, k), _f(s["median_ms"], ".2f"), _f(s["p99_ms"], ".2f"), str(s["samples"])]
        for k, s in lat.items()])
    r = results["retry"]
    out += ["", "5. retry: set_value with one injected put timeout",
            f"   one put {_f(r['one_put_ms'], '.1f')} ms; with one timeout {_f(r['measured_ms'], '.1f')} ms; "
            f"expected timeout {r['timeout_s']:g} s + retry_delay {r['retry_delay_s']:g} s + one put = "
            f"{_f(r['expected_ms'], '.1f')} ms; overhead {_f(r['overhead_ms'], '.1f')} ms ({_f(r['ratio'], '.3f', 'x')})"]
    out += ["", *_capacity(results["capacity"])]
    out += ["", *format_anchor(results.get("pvxs_anchor"))]
    out += ["", "Targets"]
    for t in results["targets"]:
        mark = {True: "met   ", False: "MISSED", None: "n/a   "}[t["met"]]
        out.append(f"  [{mark}] {t['name']} {t['goal']}: {t['note']}")
    return "\n".join(out)


def write_json(results: dict[str, Any], path: str | Path) -> None:
    """Write the results as indented JSON."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(results, fh, indent=1)
        fh.write("\n")
