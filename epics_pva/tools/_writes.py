"""The writes of the command-line tools (preflight --write-test, the step test of --step).

They go through Interface.set_values, as Badger's do, so every check and guard of a set
applies to them too: the inputs are checked against each PV's monitor, the journal (if set)
records them, read-only mode sends nothing, and rehearsal mode proves the soft IOC before
each put. The tools' own reads stay on their p4p contexts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, JournalError, RehearsalError, SetValuesError
from ..results import SetResult, Status

if TYPE_CHECKING:
    from ..core import Interface

__all__ = ["open_interface", "put_failure", "write"]


def open_interface(conf: Mapping[str, str] | None, prefix: str, timeout: float) -> Interface:
    """The Interface a tool writes through: the tool's client settings (`conf`, None for the
    EPICS_PVA_* environment), name prefix and timeout; one attempt per put, as the tools made."""
    from ..core import Interface  # here: the Interface's own modules import the measure package

    return Interface(conf=dict(conf) if conf is not None else None, prefix=prefix, timeout=timeout,
                     put_attempts=1)


def write(interface: Interface, values: Mapping[str, Any]) -> dict[str, SetResult]:
    """Set `values` (no validation) and return every PV's outcome; never raises for a PV.

    A refused call (InvalidInputError, NotConnectedError, JournalError) gives each PV as
    not_attempted with its reason; a call rehearsal refused says so in each reason, with the
    setting or PV that was refused.
    """
    try:
        return interface.set_values(dict(values))
    except RehearsalError as exc:
        found = "; ".join(exc.problems.values())
        return {pv: SetResult(pv, value, Status.NOT_ATTEMPTED,
                              reason=f"rehearsal refused it: {exc.problems.get(pv, found)}")
                for pv, value in values.items()}
    except (SetValuesError, InvalidInputError, JournalError) as exc:
        results = dict(exc.results)
        for pv, value in values.items():
            if pv not in results:
                results[pv] = SetResult(pv, value, Status.NOT_ATTEMPTED, reason=str(exc))
        return results


def put_failure(result: SetResult) -> str:
    """What became of a put that did not go through, in words: "failed: why", "not sent: why"
    or "not written: read-only"."""
    if result.status == Status.READ_ONLY:
        return "not written: read-only (the interface sends no put)"
    if result.status == Status.NOT_ATTEMPTED:
        return f"not sent: {result.reason}"
    error = result.error
    return f"failed: {getattr(error, 'reason', None) or error or 'no reason given'}"
