"""Sections 1 and 2: get_values and set_values (no validation) against raw p4p, same PVs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from p4p.client.thread import Context

from epics_pva import Interface

from .machine import rw_names
from .naive import naive_set
from .timing import interleaved, median, ms, ratio

_log = logging.getLogger(__name__)

TIMEOUT = 10.0
"""Seconds allowed for any one network operation of these sections."""


def repeats_for(n: int, repeats: int) -> int:
    """Fewer rounds for the largest sizes, which take longest and vary least."""
    return repeats if n < 1000 else max(3, repeats // 2)


def _row(n: int, samples: Mapping[str, Sequence[float]], base: str) -> dict[str, Any]:
    """One table row: each case's median (ms) and its ratio to `base`, ratio of medians."""
    row: dict[str, Any] = {"n": n, "repeats": len(samples[base])}
    for name, values in samples.items():
        row[f"{name}_ms"] = ms(median(values))
    for name, values in samples.items():
        if name != base:
            row[f"{name}_ratio"] = ratio(median(values), median(samples[base]))
            # per-round ratios: robust to slow drift that the round shares
            paired = [a / b for a, b in zip(values, samples[base], strict=True) if b > 0]
            row[f"{name}_paired_ratio"] = round(median(paired), 3) if paired else None
    return row


def measure_get(conf: Mapping[str, str], sizes: Sequence[int], repeats: int, warmup: int) -> dict[str, Any]:
    """Median time of Interface.get_values(N names) vs raw Context.get(list), interleaved."""
    rows = []
    with Context("pva", conf=dict(conf), useenv=False) as ctx, Interface(conf=conf, timeout=TIMEOUT) as itf:
        for n in sizes:
            names = rw_names(n)
            cases: dict[str, Callable[[int], Any]] = {
                "raw": lambda _r, names=names: ctx.get(names, timeout=TIMEOUT),
                "interface": lambda _r, names=names: itf.get_values(names),
            }
            samples = interleaved(cases, repeats_for(n, repeats), warmup)
            rows.append(_row(n, samples, "raw"))
            _log.info("get_values %d PVs: %s", n, rows[-1])
    return {"rows": rows}


def measure_set(
    conf: Mapping[str, str], sizes: Sequence[int], repeats: int, warmup: int,
    between: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Median time of Interface.set_values (parallel, in order) and the naive reference vs raw
    Context.put(list, values), interleaved; all with default settings and no validation."""
    rows = []
    with (
        Context("pva", conf=dict(conf), useenv=False) as ctx,
        Interface(conf=conf, timeout=TIMEOUT, parallel=True) as parallel,
        Interface(conf=conf, timeout=TIMEOUT, parallel=False) as serial,
    ):
        for n in sizes:
            names = rw_names(n)

            def values(round_: int, n: int = n) -> list[float]:
                return [float(round_ % 50) + 0.5] * n  # a new value every round

            def inputs(round_: int, names: list[str] = names) -> dict[str, float]:
                return dict(zip(names, values(round_, len(names)), strict=True))

            cases: dict[str, Callable[[int], Any]] = {
                "raw": lambda r, names=names, values=values: ctx.put(names, values(r), timeout=TIMEOUT),
                "parallel": lambda r, inputs=inputs: parallel.set_values(inputs(r)),
                "serial": lambda r, inputs=inputs: serial.set_values(inputs(r)),
                "naive": lambda r, inputs=inputs: naive_set(conf, inputs(r), TIMEOUT),
            }
            samples = interleaved(cases, repeats_for(n, repeats), warmup, between)
            row = _row(n, samples, "raw")
            row["naive_over_parallel"] = ratio(median(samples["naive"]), median(samples["parallel"]))
            rows.append(row)
            _log.info("set_values %d PVs: %s", n, rows[-1])
    return {"rows": rows}
