"""Reading the interface journal back, streaming: a time window costs about what it holds.

A line is an entry only when it is whole, its final newline included: a last line without
one (a writer killed, or its write failed, before the newline) and a line that a later writer
marked ``truncated`` are skipped with a warning, even when what is there parses. Any other
line that cannot be read (not UTF-8, not JSON, nested too deeply, a time out of range, a
field of the wrong type) is a `BadLine`: reported by line number and skipped.

Asked for a window [since, until], the reader keeps the calls whose first line is in it and
holds nothing else. It relies on what the writer guarantees, that the file is in `time`
order (each line is stamped under the file lock):

- the window's first line is found by a binary search on the lines' times: the lines before
  it are not read (only counted, at the speed of reading bytes, when a line number is due);
- the lines from there to the first line after `until` are read and checked one by one;
- after `until`, only the lines of the window's calls still open are read: found by their
  call id, a search of bytes, and only until every such call has written its ``end`` line;
- a call seen at the window's start may have begun before it: its id's time (new ids carry
  the epoch ms they were made, before the call's first line) bounds how far back to look
  for it, again by a search of bytes. An id without a time (journals written before ids
  carried one) is looked for in everything before the window.

Lines outside the window are not parsed, so a bad line there goes unreported; every line
within it (and every line after it that names one of its calls) is checked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import JournalError
from ._file import JournalBytes
from ._format import END, TRUNCATED
from ._lines import MARKER, BadLine, Entry, id_time, needle_of, parse_line, time_of
from ._restore import CallGrouper, CallRecord

__all__ = ["BadLine", "Entry", "Scan", "latest_entries", "read_journal", "scan_calls", "scan_journal"]

_log = logging.getLogger("epics_pva.journal")  # the journal's one logger, as operators name it


@dataclass
class Scan:
    """What a window of a journal holds: its calls' entries in file order, and its bad lines."""

    path: Path
    entries: list[Entry]
    bad: list[BadLine]


class _Window:
    """The calls of one window, gathered as the file is read."""

    def __init__(self, reader: JournalBytes, since: float | None, until: float | None,
                 add: Callable[[Entry], None], numbered: bool = True) -> None:
        self.reader, self.since, self.until = reader, since, until
        self.add = add  # where the window's entries go, in file order
        # whether entries carry their line numbers (else 0: the lines before the window are
        # then counted only if a bad line or a cut-off one must be named)
        self.numbered = numbered
        self.bad: list[BadLine] = []
        self.first_time: dict[str, float] = {}  # the window's calls, by id: their first line's time
        self.excluded: set[str] = set()  # calls begun before the window
        self.ended: set[str] = set()
        self._first_number: int | None = None  # the number of the region's first line
        self.start = 0

    def first_number(self) -> int:
        """The number (from 1) of the region's first line: the lines before it counted once,
        only when a line of the window needs its number."""
        if self._first_number is None:
            self._first_number = self.reader.newlines_before(self.start) + 1
        return self._first_number

    def number(self, offset: int) -> int:
        """The number (from 1) of the line beginning at `offset`, at or after the region's start."""
        self.first_number()  # the count before the region, then on from there
        return self.reader.newlines_before(offset) + 1

    def take(self, item: Entry) -> None:
        """A whole line of the region (or after it, of one of its calls)."""
        call = item.call
        if item.event == END:
            if call in self.first_time:
                self.ended.add(call)
            return
        if call in self.excluded:
            return
        if call not in self.first_time:
            if self.since is not None and item.time < self.since:  # its clock says before the window
                self.excluded.add(call)
                return
            self.first_time[call] = item.time
        self.add(item)

    def cut_off(self, number: int) -> None:
        _log.warning("journal %s line %d was cut off (its writer died or failed mid-line); skipped",
                     self.reader.path, number)

    def incomplete(self, number: int) -> None:
        _log.warning("journal %s: last line %d is incomplete (no final newline: its writer was "
                     "killed, or its write failed); skipped", self.reader.path, number)

    # -- the region: every line from the window's start to the first line after `until`

    def read_region(self) -> int | None:
        """Read the region line by line; the offset of the first line after `until` (None: none)."""
        until, take, numbered = self.until, self.take, self.numbered
        base = -1  # the number of the region's first line, when counted
        pending: Entry | str | None = None  # held one line: a writer's mark may follow it
        pending_k = 0  # its index in the region

        def commit() -> None:
            if isinstance(pending, str):
                self.bad.append(BadLine(self.first_number() + pending_k, pending))
            elif pending is not None:
                take(pending)

        for k, (offset, raw) in enumerate(self.reader.lines(self.start)):
            if raw[-1:] != b"\n":
                commit()
                self.incomplete(self.first_number() + k)
                return None
            if raw.isspace():
                continue
            if numbered and base < 0:
                base = self.first_number()
            item = parse_line(raw, base + k if numbered else 0)
            if until is not None:
                when = item.time if isinstance(item, Entry) else time_of(raw)
                if when is not None and when > until:
                    if pending is not None and MARKER.search(raw):
                        self.cut_off(self.first_number() + pending_k)
                    else:
                        commit()
                    return offset
            if isinstance(item, Entry) and item.event == TRUNCATED:
                if pending is not None:
                    self.cut_off(self.first_number() + pending_k)
                pending = None
                continue
            commit()
            pending, pending_k = item, k
        commit()
        return None

    # -- calls seen at the window's start that began before it

    def drop_calls_begun_before(self) -> None:
        if self.since is None or self.start == 0 or not self.first_time:
            return
        suspects = {c: id_time(c) for c in self.first_time if c not in self.excluded}
        suspects = {c: t for c, t in suspects.items() if t is None or t < self.since}
        if not suspects:
            return
        earliest = min((t for t in suspects.values() if t is not None), default=None)
        low = 0 if None in suspects.values() or earliest is None else self.reader.start_of(earliest)
        needles = {needle_of(c): c for c in suspects}
        wanted = set(needles)
        for _offset, line, needle in self.reader.mentioning(low, self.start, wanted):
            item = parse_line(line.rstrip(b"\n"))
            call = needles[needle]
            if isinstance(item, Entry) and item.call == call:
                self.excluded.add(call)
                wanted.discard(needle)
        # the caller drops self.excluded's calls from what it was given

    # -- after `until`: the lines of the window's calls still open

    def read_after(self, offset: int) -> None:
        reader = self.reader
        needles = {needle_of(c): c for c in self.first_time if c not in self.ended and c not in self.excluded}
        wanted = set(needles)
        for line_start, line, needle in reader.mentioning(offset, reader.size, wanted):
            if not line.endswith(b"\n"):
                self.incomplete(self.number(line_start))
                return
            item = parse_line(line[:-1], self.number(line_start) if self.numbered else 0)
            if isinstance(item, Entry) and item.call != needles[needle]:
                continue  # the id appears in another call's line (a reason, a value)
            if reader.is_marker_at(line_start + len(line)):
                self.cut_off(self.number(line_start))
                continue
            if isinstance(item, str):
                self.bad.append(BadLine(self.number(line_start), item))
                continue
            self.take(item)
            if item.event == END:
                wanted.discard(needle)


def scan_journal(path: str | os.PathLike[str], since: float | None = None,
                 until: float | None = None) -> Scan:
    """The entries of the calls whose first line is in [since, until] (epoch s; None: open),
    in file order, and the window's lines that could not be read (reported, then skipped).

    Streams: it holds the window's entries only, and reads little beyond the window (see the
    module's docstring). Cut-off lines are skipped with a WARNING. JournalError if the file
    cannot be opened or read.
    """
    entries: list[Entry] = []
    window = _read_window(Path(path), since, until, entries.append)
    return Scan(Path(path), [e for e in entries if e.call not in window.excluded], window.bad)


def scan_calls(path: str | os.PathLike[str], since: float | None = None,
               until: float | None = None) -> tuple[list[CallRecord], list[BadLine]]:
    """The calls whose first line is in [since, until], as scan_journal finds them, grouped as
    they are read (only the calls are held, not every line), and the window's bad lines.

    The entries the calls keep (validation, interruption) carry no line number (0): lines are
    counted only to name a bad or cut-off line."""
    grouper = CallGrouper()
    window = _read_window(Path(path), since, until, grouper.add, numbered=False)
    grouper.discard(window.excluded)
    return grouper.calls(), window.bad


def _read_window(path: Path, since: float | None, until: float | None,
                 add: Callable[[Entry], None], numbered: bool = True) -> _Window:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise JournalError(path, f"cannot read: {exc.strerror}", exc.errno) from None
    try:
        with fh:
            reader = JournalBytes(path, fh, os.fstat(fh.fileno()).st_size)
            window = _Window(reader, since, until, add, numbered)
            if since is not None and until is not None and since > until:
                return window
            window.start = reader.start_of(since) if since is not None else 0
            after = window.read_region()
            window.drop_calls_begun_before()
            if after is not None:
                window.read_after(after)
    except OSError as exc:
        raise JournalError(path, f"cannot read: {exc.strerror}", exc.errno) from None
    return window


def read_journal(
    path: str | os.PathLike[str], since: float | None = None, until: float | None = None
) -> list[Entry]:
    """Every entry of the journal at `path`, in file order, of the calls that began in [since, until].

    A call is kept or dropped whole, by the time of its first line (epoch s). A last line
    without its final newline (what a SIGKILL or a failed write leaves) is skipped with a
    WARNING, even if it parses, as is a line a later writer marked as cut off; any other
    unreadable line in the window raises JournalError naming the file and line number
    (`scan_journal` reports them all instead, and goes on).
    """
    scan = scan_journal(path, since, until)
    if scan.bad:
        first = scan.bad[0]
        raise JournalError(scan.path, f"line {first.line} is corrupt: {first.reason}")
    return scan.entries


def latest_entries(path: str | os.PathLike[str], pvs: set[str], accept: Callable[[Entry], bool],
                   holding: bytes = b"") -> dict[str, Entry]:
    """{pv: the latest line of the whole journal naming it that `accept` takes}, for each of
    `pvs` that has one: read from the end backwards, by a search of bytes, until each is found.

    Only lines holding the bytes `holding` are parsed (a cheap first sieve: b'"readback"' for
    validation lines that name a readback). Lines that cannot be read are passed over (they
    are reported when a window holds them).
    """
    path = Path(path)
    found: dict[str, Entry] = {}
    try:
        with open(path, "rb") as fh:
            reader = JournalBytes(path, fh, os.fstat(fh.fileno()).st_size)
            needles = {needle_of(pv): pv for pv in pvs}
            wanted = set(needles)
            for _offset, line, needle in reader.mentioning(0, reader.size, wanted, backward=True):
                if not line.endswith(b"\n") or holding not in line:
                    continue
                item = parse_line(line[:-1])
                pv = needles[needle]
                if isinstance(item, Entry) and item.pv == pv and pv not in found and accept(item):
                    found[pv] = item
                    wanted.discard(needle)
    except OSError as exc:
        raise JournalError(path, f"cannot read: {exc.strerror}", exc.errno) from None
    return found
