"""Benchmarks of epics_pva: the Interface against raw p4p and against the ideal, side by side.

    python -m devtools.bench [--quick] [--repeats N] [--json PATH] [--plot PATH]
    python -m devtools.bench.capacity [--pairs N ...]     section 6 alone
    python -m devtools.bench.anchor [--sizes N ...]       section 7 alone

Starts its own soft IOCs (softioc), measures get/set against raw p4p, validated sets against
the slowest readback's settle time, settle detection latency, retry cost, the soft IOC's
capacity (devtools.bench.capacity) and, against EPICS base's softIoc, EPICS's C++ client pvxs
beside raw p4p and ours (devtools.bench.anchor), then prints one table with the issue's
targets met or missed.
The modules are imported by path (devtools.bench.run, .report, .plot): this package imports
none of them, so `-m devtools.bench.capacity` (or `.anchor`) runs its module once.
"""
