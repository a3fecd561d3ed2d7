"""Developer tools run from a checkout, never installed: the benchmark and the soak.

    python -m devtools.bench ...     the interface against raw p4p and the ideal
    python -m devtools.soak ...      validated sets and reads under seeded random faults

Both serve their simulated machines from child processes started by devtools.ioc_process.
"""
