"""pva-journal: read an interface journal, and put PVs back to where a run found them.

    pva-journal show FILE [--since T] [--until T]
    pva-journal restore FILE [--since T] [--until T] [--write] [--timeout S]

`show` prints one block per set_values call: when, which process, and for each PV its value
before -> the value requested, every attempt's outcome and the validation. `restore` puts
every PV set in the window back to its value before the window's first change to it, the
newest change undone first; without --write it only prints that plan. With --write it sets
through epics_pva.Interface (every input check, retries), with the client settings of the
environment (EPICS_PVA_*), one PV after the other, stopping at the first failure.
T is epoch seconds or an ISO 8601 time (local time unless it names an offset); a call is in
the window when its first line is. Exit status: 0 done, 1 something not restored, 2 bad
arguments or an unreadable journal.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ._cli import MAX_SECONDS
from .errors import InvalidInputError, JournalError, SetValuesError
from .journal import CallRecord, PvRecord, group_calls, read_journal, restore_plan

_log = logging.getLogger(__name__)


# the last second of the year 9999 (UTC), the latest time datetime can show
_LAST_TIME = 253402300799.0


def parse_time(text: str) -> float:
    """Epoch seconds from "1764654601.5" or an ISO 8601 time ("2026-12-02T05:50", local if naive)."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not 0 <= value <= _LAST_TIME:  # NaN, inf, before 1970 or after the year 9999
            raise argparse.ArgumentTypeError(f"{text!r:.60} is not a time within [0, {_LAST_TIME:.0f}] epoch s")
        return value
    iso = text.strip()
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"  # Python 3.10's fromisoformat does not read Z
    try:
        when = datetime.fromisoformat(iso).timestamp()  # a naive time is taken as local time
    except (ValueError, OverflowError, OSError):
        raise argparse.ArgumentTypeError(
            f"{text!r:.60} is neither epoch seconds nor an ISO 8601 time (e.g. 2026-12-02T05:50:00)"
        ) from None
    if not 0 <= when <= _LAST_TIME:
        raise argparse.ArgumentTypeError(f"{text!r:.60} is before 1970 or after the year 9999")
    return when


def _when(t: float) -> str:
    return datetime.fromtimestamp(t).isoformat(sep=" ", timespec="milliseconds")


def _show(value: Any) -> str:
    text = repr(value.tolist() if hasattr(value, "tolist") else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pv_line(rec: PvRecord) -> str:
    if rec.read_only:
        return f"  {rec.pv}: read-only, would set {_show(rec.requested)}"
    before = _show(rec.before) if rec.has_before else f"? ({rec.before_error or 'not recorded'})"
    requested = _show(rec.requested) if rec.was_put else "(no put)"
    parts = [f"  {rec.pv}: {before} -> {requested}"]
    if rec.attempts:
        outcomes = []
        for attempt, outcome, reason in rec.attempts:
            text = f"#{attempt} {outcome or 'no outcome (interrupted?)'}"
            outcomes.append(f"{text} ({reason})" if reason else text)
        parts.append("attempts: " + ", ".join(outcomes))
    if rec.validation is not None:
        v = rec.validation
        parts.append(f"validation failed: {v.error}" if v.error is not None
                     else f"validation: {_show(v.result)}")
    return "; ".join(parts)


def format_call(call: CallRecord) -> str:
    """A readable block for one call: a header line, then one line per PV."""
    kind = "read-only" if call.read_only else "set"
    lines = [f"{_when(call.time)}  pid {call.pid}  call {call.call}  ({kind}, {len(call.pvs)} PV(s))"]
    lines += [_pv_line(rec) for rec in call.pvs.values()]
    return "\n".join(lines)


def _show_command(calls: list[CallRecord]) -> int:
    if not calls:
        print("no calls in the journal window")
        return 0
    print("\n\n".join(format_call(c) for c in calls))
    return 0


def _restore_command(calls: list[CallRecord], write: bool, timeout: float) -> int:
    steps, unrestorable = restore_plan(calls)
    if not steps and not unrestorable:
        print("nothing to restore: no put in the journal window")
        return 0
    verb = "restoring" if write else "would restore (dry run; --write sends it)"
    print(f"{verb} {len(steps)} PV(s), newest change first:")
    for step in steps:
        print(f"  {step.pv} = {_show(step.value)}  (last changed {_when(step.last_put)})")
    if unrestorable:
        print(f"not restorable ({len(unrestorable)} PV(s)):")
        for pv, why in unrestorable.items():
            print(f"  {pv}: {why}")
    if not write or not steps:
        return 1 if write and unrestorable else 0
    from .interface import Interface  # only now: show and the dry run need no p4p client

    inputs = {step.pv: step.value for step in steps}
    try:
        with Interface(parallel=False, timeout=timeout) as interface:
            results = interface.set_values(inputs)
    except InvalidInputError as error:
        print("refused, nothing was sent:")
        for pv, why in error.problems.items():
            print(f"  {pv}: {why}")
        return 1
    except SetValuesError as error:
        results = error.results
    failed = False
    print("outcome:")
    for pv, result in results.items():
        failed |= not result.ok
        detail = f": {result.error}" if result.error is not None else ""
        if result.status == "not_attempted":
            detail = ": not sent, as an earlier PV failed"
        print(f"  {pv} = {_show(result.value)}: {result.status}{detail}")
    return 1 if failed or unrestorable else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pva-journal", description="Show an interface journal, or put PVs back as it found them.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("show", "print the history, one block per set_values call"),
                       ("restore", "put each PV back to its value before the window's first change")):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("file", help="the journal (JSON Lines)")
        sub.add_argument("--since", type=parse_time, metavar="T",
                         help="only calls from T on (epoch s or ISO 8601 local time)")
        sub.add_argument("--until", type=parse_time, metavar="T",
                         help="only calls up to T (epoch s or ISO 8601 local time)")
        if name == "restore":
            sub.add_argument("--write", action="store_true",
                             help="send the puts (without it, only print the plan)")
            sub.add_argument("--timeout", type=_seconds, default=5.0, metavar="S",
                             help="seconds per network operation (default 5)")
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or not value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r:.60} is not a number of seconds > 0 and <= {MAX_SECONDS:g}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run pva-journal with `argv` (default: the command line); returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.since is not None and args.until is not None and args.since > args.until:
        print(f"pva-journal: --since ({_when(args.since)}) is after --until ({_when(args.until)})",
              file=sys.stderr)
        return 2
    try:
        calls = group_calls(read_journal(args.file, since=args.since, until=args.until))
    except JournalError as error:
        print(f"pva-journal: {error}", file=sys.stderr)
        return 2
    if args.command == "show":
        return _show_command(calls)
    return _restore_command(calls, write=args.write, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
