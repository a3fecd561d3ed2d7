"""pva-journal: read an interface journal, and put PVs back to where a run found them.

    pva-journal show FILE [--since T] [--until T]
    pva-journal restore FILE [--since T] [--until T] [--write] [--timeout S] [--validate]
                        [--rehearsal-id ID] [--journal PATH]

`show` prints one block per set_values call: when, which process, the prefix and rehearsal
it was made with, and for each PV its value before -> the value requested, every attempt's
outcome and the validation; a call broken off says so. `restore` puts every PV whose put in
the window may have reached the machine back to its value before the window's first such
change, the newest change undone first; puts refused before sending or rejected by the
server are left out, and a put that timed out is kept, marked as such. Without --write it
only prints that plan. With --write it is a set like any other: through
epics_pva.Interface(parallel=False, timeout=S, prefix=<the journal's>, rehearsal=...,
rehearsal_id=..., journal=<FILE, or --journal PATH>) with the client settings of the
environment (EPICS_PVA_*), one PV after the other, stopping at the first failure; its own
call goes into the journal, so a later restore can undo it. A journal written in rehearsal
is restored only in rehearsal against the same soft IOC (--rehearsal-id, or
EPICS_PVA_INTERFACE_REHEARSAL_ID); --rehearsal-id on a journal of the real machine
rehearses the restore against that soft IOC. Calls in the window made with different
prefixes or rehearsals are refused. --validate waits after each put for the readback the
journal's validation lines name, within their tolerance (wait_for_readback).
T is epoch seconds or an ISO 8601 time (local time unless it names an offset); a call is in
the window when its first line is. The journal is read as a stream: the window is found by
its times and only its calls are held, so a window costs about what it holds, not the
file. Every line of the window that cannot be read is reported on stderr by its number and
skipped; `show` prints the rest, `restore` sends nothing then (its plan could miss what the
line recorded). Exit status: 0 done, 1 something not restored (refused, failed, not
validated in time, read-only), 2 bad arguments, an unreadable journal, or a line in the
window that could not be read.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import reprlib
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from ..errors import (
    InvalidInputError,
    JournalError,
    RehearsalError,
    SetValuesError,
    ValidationError,
)
from ..journal import (
    BadLine,
    CallRecord,
    PvRecord,
    ReadbackCheck,
    RestoreStep,
    Wire,
    latest_entries,
    readback_check_of,
    restore_plan,
    scan_calls,
    wire_of,
)
from ..results import SetResult, Status

_log = logging.getLogger(__name__)

REHEARSAL_ID_VARIABLE = "EPICS_PVA_INTERFACE_REHEARSAL_ID"

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


_printable = reprlib.Repr()
_printable.maxlevel, _printable.maxlist, _printable.maxstring, _printable.maxother = 3, 8, 60, 60


def _show(value: Any) -> str:
    """A value, short: a repr cut to 60 characters (lists to their first elements)."""
    if type(value) in (float, int, bool, type(None)):  # the usual value, at C speed
        return repr(value)
    try:
        text = _printable.repr(value.tolist() if hasattr(value, "tolist") else value)
    except Exception:  # noqa: BLE001 - decoded JSON always has a repr; be sure anyway
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _clean(value: Any) -> str:
    """Text from the journal as it may be printed: control characters (a terminal's escape
    sequences among them) and lone surrogates shown escaped, never sent to the terminal."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _pv_line(rec: PvRecord) -> str:
    if rec.read_only:
        return f"  {rec.pv}: read-only, would set {_show(rec.requested)}"
    before = _show(rec.before) if rec.has_before else f"? ({_clean(rec.before_error or 'not recorded')})"
    requested = _show(rec.requested) if rec.was_put else "(no put)"
    parts = [f"  {rec.pv}: {before} -> {requested}"]
    if rec.attempts:
        outcomes = []
        for attempt, outcome, reason in rec.attempts:
            text = f"#{attempt} {_clean(outcome or 'no outcome (interrupted?)')}"
            outcomes.append(f"{text} ({_clean(reason)})" if reason else text)
        parts.append("attempts: " + ", ".join(outcomes))
    if rec.validation is not None:
        v = rec.validation
        parts.append(f"validation failed: {_clean(v.error)}" if v.error is not None
                     else f"validation: {_show(v.result)}")
    return "; ".join(parts)


def _wire_text(wire: Wire | None) -> str:
    if wire is None:
        return ""
    parts = [f"prefix {wire.prefix!r}"] if wire.prefix else []
    if wire.rehearsal:
        parts.append(f"rehearsal against soft IOC {_clean(wire.rehearsal_id)}")
    return "".join(f", {p}" for p in parts)


def format_call(call: CallRecord) -> str:
    """A readable block for one call: a header line, then one line per PV (and the interruption)."""
    kind = "read-only" if call.read_only else "set"
    lines = [f"{_when(call.time)}  pid {call.pid}  call {_clean(call.call)}  "
             f"({kind}, {len(call.pvs)} PV(s){_wire_text(call.wire)})"]
    lines += [_pv_line(rec) for rec in call.pvs.values()]
    if call.interrupted is not None:
        fields = call.interrupted.fields
        sent, not_sent = fields.get("sent") or [], fields.get("not_sent") or []
        lines.append(f"  interrupted ({_clean(fields.get('reason') or 'no reason recorded')}) after sending "
                     f"{len(sent)} PV(s){': ' + ', '.join(sent) if sent else ''}"
                     f"{'; not sent: ' + ', '.join(not_sent) if not_sent else ''}")
    return "\n".join(lines)


def _show_command(calls: list[CallRecord]) -> int:
    if not calls:
        print("no calls in the journal window")
        return 0
    for k, call in enumerate(calls):  # one block at a time: a long window is never one string
        print(("\n" if k else "") + format_call(call))
    return 0


def _rehearsal(wire: Wire, given: str | None, environ: Mapping[str, str]) -> tuple[bool, str, str | None]:
    """(rehearsal, rehearsal_id, why the restore is refused or None) for a journal of `wire`.

    A journal written in rehearsal is restored in rehearsal against the same soft IOC only:
    the current id comes from --rehearsal-id (`given`) or EPICS_PVA_INTERFACE_REHEARSAL_ID.
    --rehearsal-id on a journal of the real machine rehearses the restore against that id.
    """
    current = given if given is not None else (environ.get(REHEARSAL_ID_VARIABLE) or "").strip()
    if wire.rehearsal:
        if not current:
            return True, wire.rehearsal_id, (
                f"the journal was written in rehearsal against soft IOC {wire.rehearsal_id}: it is "
                f"restored only in rehearsal against that soft IOC (--rehearsal-id {wire.rehearsal_id} "
                f"or {REHEARSAL_ID_VARIABLE}={wire.rehearsal_id})")
        if current != wire.rehearsal_id:
            return True, wire.rehearsal_id, (
                f"the journal was written in rehearsal against soft IOC {wire.rehearsal_id}, but the "
                f"current rehearsal is against soft IOC {current}: its PVs are not this soft IOC's")
        return True, current, None
    if given:
        return True, given, None
    return False, "", None


def _plan_line(step: RestoreStep, checks: Mapping[str, ReadbackCheck] | None) -> str:
    text = f"  {step.pv} = {_show(step.value)}  (last changed {_when(step.last_put)})"
    if step.note:
        text += f" ({step.note})"
    if checks is not None:
        check = checks.get(step.pv)
        text += f"; validate: {check.describe()}" if check is not None else "; no readback known"
    return text


def _readback_checks(path: str, pvs: set[str]) -> dict[str, ReadbackCheck]:
    """{pv: its ReadbackCheck} from the latest validation line anywhere in the journal that
    names a readback with its tolerance, for each of `pvs` that has one (searched backwards)."""
    def names_a_readback(entry: Any) -> bool:
        return entry.event == "validation" and readback_check_of(entry) is not None

    found = latest_entries(path, pvs, names_a_readback, holding=b'"readback"')
    return {pv: check for pv, entry in found.items() if (check := readback_check_of(entry)) is not None}


def _restore_command(calls: list[CallRecord], bad: list[BadLine], args: argparse.Namespace) -> int:
    steps, unrestorable = restore_plan(calls)
    if not steps and not unrestorable:
        print("nothing to restore: no put in the journal window may have reached the machine")
        return 2 if bad else 0
    wire, mixed = wire_of(calls)
    rehearsal, rehearsal_id, refusal = _rehearsal(wire, args.rehearsal_id, os.environ)
    refusal = mixed or refusal
    if bad:
        refusal = (f"{len(bad)} line(s) of the journal window could not be read (listed on stderr): "
                   "the plan may miss what they recorded")
    checks = _readback_checks(args.file, {s.pv for s in steps}) if args.validate else None
    where = f"{'prefix ' + repr(wire.prefix) if wire.prefix else 'no prefix'}, " + (
        f"in rehearsal against soft IOC {rehearsal_id}" if rehearsal else "not in rehearsal")
    verb = "restoring" if args.write else "would restore (dry run; --write sends it)"
    print(f"{verb} {len(steps)} PV(s) ({where}), newest change first:")
    for step in steps:
        print(_plan_line(step, checks))
    if unrestorable:
        print(f"not restorable ({len(unrestorable)} PV(s)):")
        for pv, why in unrestorable.items():
            print(f"  {pv}: {why}")
    if refusal is not None:
        print(("refused, nothing was sent: " if args.write else "--write would be refused: ") + refusal)
        return 2 if bad else 1
    if not args.write or not steps:
        return 1 if args.write and unrestorable else 0
    return _send(steps, checks, args, wire.prefix, rehearsal, rehearsal_id) or (1 if unrestorable else 0)


def _send(steps: list[RestoreStep], checks: Mapping[str, ReadbackCheck] | None, args: argparse.Namespace,
          prefix: str, rehearsal: bool, rehearsal_id: str) -> int:
    """Set the plan's values through an Interface (its call journaled); 0 if every PV was set."""
    from ..core import (
        Interface,  # only now: show and the dry run need no p4p client
        wait_for_readback,
    )

    inputs = {step.pv: step.value for step in steps}
    configs = {pv: partial(wait_for_readback, readback_pv=c.readback_pv, tolerance=c.tolerance,
                           offset=c.offset, count_down=c.count_down)
               for pv, c in (checks or {}).items() if pv in inputs}
    try:
        interface = Interface(parallel=False, timeout=args.timeout, prefix=prefix, rehearsal=rehearsal,
                              rehearsal_id=rehearsal_id, journal=args.journal or args.file)
    except ValueError as error:
        print(f"refused, nothing was sent: cannot build the interface: {error}")
        return 1
    try:
        with interface:
            results = interface.set_values(inputs, configs)
    except RehearsalError as error:
        print("refused by rehearsal, nothing was sent:")
        for why in error.problems.values():
            print(f"  {why}")
        return 1
    except InvalidInputError as error:  # NotConnectedError too
        print("refused, nothing was sent:")
        for pv, why in error.problems.items():
            print(f"  {pv}: {why}")
        return 1
    except JournalError as error:
        print(f"refused, nothing was sent: {error}")
        return 1
    except SetValuesError as error:
        results = error.results
    failed = False
    print("outcome:")
    for pv, result in results.items():
        failed |= not result.ok or result.status == Status.READ_ONLY
        print(f"  {pv} = {_show(result.value)}: {_outcome(result, (checks or {}).get(pv), checks is not None)}")
    return 1 if failed else 0


def _outcome(result: SetResult, check: ReadbackCheck | None, validating: bool) -> str:
    """What the report says of one PV: "set" only when its readback confirmed it."""
    if result.status == Status.READ_ONLY:
        return "read-only: not sent"
    if result.status == Status.SET:
        if check is not None:
            return f"set (readback {check.readback_pv} = {_show(result.validation_result)}, " \
                   f"within {check.tolerance:g})"
        return "set, not validated" + (" (the journal records no readback for it)" if validating else "")
    if result.status == Status.NOT_ATTEMPTED:
        return "not_attempted: not sent, as an earlier PV failed" if not result.reason or \
            result.reason.startswith("sequential") else f"not_attempted: {result.reason}"
    error = result.error
    if isinstance(error, ValidationError) and check is not None:
        return (f"failed: put accepted, but readback {check.readback_pv} did not confirm it within "
                f"tolerance {check.tolerance:g} in {check.count_down:g} s: {error.cause}")
    return f"failed: {error}" if error is not None else "failed"


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
            sub.add_argument("--validate", action="store_true",
                             help="after each put, wait for the readback the journal's validation "
                                  "lines name, within their tolerance")
            sub.add_argument("--rehearsal-id", type=_rehearsal_id, metavar="ID",
                             help="restore in rehearsal against the soft IOC with this id (default: "
                                  f"{REHEARSAL_ID_VARIABLE}, used for a journal written in rehearsal)")
            sub.add_argument("--journal", metavar="PATH",
                             help="journal the restore's own call here (default: FILE itself)")
    return parser


def _rehearsal_id(text: str) -> str:
    word = text.strip()
    if not word or any(c.isspace() for c in word):
        raise argparse.ArgumentTypeError(f"{text!r:.60} is not a soft IOC id (one word, as its banner prints it)")
    return word


def _seconds(text: str) -> float:
    from .arguments import MAX_SECONDS  # here: its module loads the transport (and p4p)

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
    for stream in (sys.stdout, sys.stderr):  # a journal's text never stops the output
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        calls, bad_lines = scan_calls(args.file, args.since, args.until)
    except JournalError as error:
        print(f"pva-journal: {error}", file=sys.stderr)
        return 2
    for bad in bad_lines:
        print(f"pva-journal: {args.file}: line {bad.line} skipped: {_clean(bad.reason)}", file=sys.stderr)
    if args.command == "show":
        code = _show_command(calls)
        if bad_lines:
            print(f"pva-journal: {len(bad_lines)} line(s) of the window could not be read", file=sys.stderr)
            return 2
        return code
    return _restore_command(calls, bad_lines, args)


if __name__ == "__main__":
    sys.exit(main())
