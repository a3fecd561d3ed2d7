"""Soak test of epics_pva against the soft IOC: a long loop of validated sets and reads under
seeded random faults, proving that every injected fault surfaces as a reported outcome and
that nothing leaks.

    python -m devtools.soak --cycles 10000 --json results/soak.json
"""

from .ledger import CycleMatch, PvMatch, expected_puts, match_cycle
from .runner import SoakSettings, run_soak, verdict

__all__ = [
    "CycleMatch",
    "PvMatch",
    "SoakSettings",
    "expected_puts",
    "match_cycle",
    "run_soak",
    "verdict",
]
