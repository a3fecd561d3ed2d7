"""The picture: readback settle traces, timelines of validated sets and, when measured, the
three clients against EPICS base's softIoc side by side (matplotlib, optional)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

COLOURS = {"queued": "#d0d0d0", "put": "#1f77b4", "wait": "#ff7f0e", "posted": "black"}
CLIENT_COLOURS = {"pvxs": "#2ca02c", "raw": "#7f7f7f", "interface": "#1f77b4"}


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed: the picture cannot be drawn (the rest of the run stands)."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(
            "matplotlib is not installed; install it (pip install matplotlib, or the 'plot' extra)"
        ) from None
    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _traces(ax: Any, run: dict[str, Any], ideal_ms: float | None, tolerance: float) -> None:
    """Each readback's progress (0: where it was, 1: its target) against time since the call."""
    returned = {bar["pv"].replace(":SET", ":RBV"): bar["validated"] for bar in run["bars"]}
    for i, (readback, trace) in enumerate(sorted(run["traces"].items())):
        points = trace["points"]
        first, last = points[0][1], points[-1][1]
        span = (last - first) or 1.0
        xs = [p[0] * 1e3 for p in points]
        ys = [(p[1] - first) / span for p in points]
        colour = f"C{i % 10}"
        label = f"{readback.split(':')[-2]} (settles in {trace['designed_settle_s'] * 1e3:.0f} ms)"
        ax.step(xs, ys, where="post", color=colour, label=label)
        if readback in returned:
            ax.plot([returned[readback] * 1e3], [ys[-1]], marker="v", color=colour, markersize=9)
    if ideal_ms is not None:
        ax.axvline(ideal_ms, color="grey", linestyle="--", linewidth=1, label=f"ideal {ideal_ms:.0f} ms")
    ax.axhspan(1 - tolerance, 1 + tolerance, color="green", alpha=0.15, label="tolerance")
    ax.set_title(f"Readbacks during one validated set ({run['label']})\n"
                 "▼ = wait_for_readback returned")
    ax.set_xlabel("ms since set_values was called")
    ax.set_ylabel("readback progress (0 = start, 1 = target)")
    ax.legend(fontsize=7, loc="lower right")


def _timeline(ax: Any, run: dict[str, Any] | None, ideal_ms: float | None, title: str) -> None:
    """Bars per PV: waiting for a worker, the put, the wait for the readback; | = IOC post."""
    if run is None:
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"{title}\nnot measured in this run", ha="center", va="center")
        return
    bars = run["bars"]
    for row, bar in enumerate(bars):
        start, put_done, done = (bar[k] * 1e3 for k in ("start", "put_done", "validated"))
        ax.barh(row, start, left=0, color=COLOURS["queued"], height=0.7)
        ax.barh(row, put_done - start, left=start, color=COLOURS["put"], height=0.7)
        ax.barh(row, done - put_done, left=put_done, color=COLOURS["wait"], height=0.7)
        ax.plot([bar["posted"] * 1e3] * 2, [row - 0.4, row + 0.4], color=COLOURS["posted"], linewidth=1.2)
    if ideal_ms is not None:
        ax.axvline(ideal_ms, color="grey", linestyle="--", linewidth=1)
    ax.axvline(run["wall_s"] * 1e3, color="red", linestyle=":", linewidth=1)
    step = max(1, len(bars) // 12)
    ax.set_yticks(range(0, len(bars), step))
    ax.set_yticklabels([bars[i]["pv"].split(":")[-2] for i in range(0, len(bars), step)], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ms since set_values was called")
    ax.set_title(f"{run['label']}\nwall {run['wall_s'] * 1e3:.0f} ms (red), "
                 f"ideal {ideal_ms or 0:.0f} ms (grey)", fontsize=10)


def _latency(ax: Any, latency: dict[str, Any]) -> None:
    """Settle detection latency samples of both waiters, on a log axis."""
    names = {"wait_for_readback": "wait_for_readback", "poll_0.1s": "poll every 0.1 s",
             "parallel_sets": "wait_for_readback,\nparallel sets"}
    labels, data = [], []
    for key, label in names.items():
        samples = latency.get(key, {}).get("samples_ms")
        if samples:
            labels.append(label)
            data.append([max(s, 1e-3) for s in samples])
    if data:
        ax.boxplot(data, whis=(1, 99), showfliers=True)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms from IOC post (in tolerance) to return")
    ax.set_title("Settle detection latency (whiskers: p1-p99)")


def _anchor(ax: Any, anchor: dict[str, Any], op: str) -> None:
    """Median batch time of pvxs C++, raw p4p and ours per N, bars side by side on a log axis;
    raw p4p's and ours labelled with their ratio to pvxs."""
    ours = {"get": "get_values", "put": "set_values"}[op]
    labels = {"pvxs": "pvxs C++", "raw": "raw p4p", "interface": f"ours, {ours}"}
    rows = anchor.get(op, {}).get("rows", [])
    width = 0.27
    for k, client in enumerate(("pvxs", "raw", "interface")):
        xs = [i + (k - 1) * width for i, r in enumerate(rows) if r.get(f"{client}_ms") is not None]
        ys = [r[f"{client}_ms"] for r in rows if r.get(f"{client}_ms") is not None]
        if not xs:
            continue
        ax.bar(xs, ys, width, color=CLIENT_COLOURS[client], label=labels[client])
        if client != "pvxs":
            shown = [r for r in rows if r.get(f"{client}_ms") is not None]
            for x, y, r in zip(xs, ys, shown, strict=True):
                over = r.get(f"{client}_over_pvxs")
                if over is not None:
                    ax.text(x, y * 1.08, f"{over:.1f}x", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)), [f"N = {r['n']}" for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("median ms per batch")
    skipped = anchor.get("cpp", {}).get("skipped")
    what = "batch get" if op == "get" else "batch put, a value per PV"
    title = f"EPICS base softIoc, {what} of N ao records"
    title += f"\npvxs C++ skipped: {skipped}" if skipped else "\n(labels: times the pvxs C++ client's median)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")


def plot(results: dict[str, Any], path: str | Path) -> None:
    """Draw the picture of one run's results into a PNG at `path`; PlotUnavailable without matplotlib."""
    plt = _pyplot()
    traced = results.get("traced", {})
    ideal = results.get("validated_set", {}).get("ideal_ms")
    tolerance = results.get("validated_set", {}).get("tolerance", 0.0)
    large = [traced.get("parallel_large"), traced.get("wide_large")]
    anchor = results.get("pvxs_anchor")
    extra = 1 if anchor and anchor.get("get", {}).get("rows") else 0  # a row for section 7
    if any(run is not None for run in large):
        fig, grid = plt.subplots(2 + extra, 3, figsize=(18, 10.5 + 5.5 * extra), constrained_layout=True,
                                 squeeze=False)
        top, bottom = grid[0], grid[1]
    else:  # the large runs only happen when a set has more PVs than workers: one row then
        fig, grid = plt.subplots(1 + extra, 4, figsize=(24, 5.5 * (1 + extra)), constrained_layout=True,
                                 squeeze=False)
        top, bottom = grid[0][:3], grid[0][3:]
    spare = None
    if extra and anchor is not None:
        clients = grid[-1]
        _anchor(clients[0], anchor, "get")
        _anchor(clients[1], anchor, "put")
        for ax in clients[2:]:
            ax.set_axis_off()
        spare = clients[2]  # the timelines' legend goes there
    trace_run = traced.get("parallel_small") or next(iter(traced.values()), None)
    if trace_run is not None:
        _traces(top[0], trace_run, ideal, tolerance)
    _timeline(top[1], traced.get("serial_small"), ideal, "In order")
    _timeline(top[2], traced.get("parallel_small"), ideal, "Parallel")
    if len(bottom) == 3:
        _timeline(bottom[0], large[0], ideal, "Parallel, default workers")
        _timeline(bottom[1], large[1], ideal, "Parallel, one worker per PV")
    _latency(bottom[-1], results.get("settle_latency", {}))
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[k]) for k in ("queued", "put", "wait")]
    names = ["before its put (checks, waiting for a worker)", "put", "wait_for_readback"]
    if spare is not None:
        spare.legend(handles, names, loc="center", title="timelines above")
    else:
        fig.legend(handles, names, loc="lower center", ncol=3,
                   bbox_to_anchor=(0.5, -0.03 if len(bottom) == 3 else -0.1))
    title = ("epics_pva validated sets against the soft IOC (| = IOC posted the readback in "
             "tolerance)\none traced run each; a second context records every readback, so these "
             "runs are a little slower than the table's medians")
    if spare is not None:
        title += "\nbottom row: EPICS's C++ client pvxs, raw p4p and ours against EPICS base's softIoc (section 7)"
    fig.suptitle(title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
