"""The bytes of a journal file: lines read one by one, a binary search by time, and lines found
by searching bytes for call ids or PV names without parsing them.

Reads never go past the size the file had when it was opened (a writer may be appending).
Random reads use pread, so the sequential reader's position is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ._lines import CALL_FIELD, HEAD, MARKER, time_of

__all__ = ["JournalBytes"]

CHUNK = 1 << 20  # bytes read at a time where lines are searched, not parsed
PROBE_SPAN = 1 << 16  # the binary search stops here and reads the rest line by line
PROBE_LINES = 64  # lines a probe of the binary search looks at for a readable time
MANY_NEEDLES = 16  # beyond this many call ids, a chunk is searched by one regex, not id by id


class JournalBytes:
    """One pass of a window over a journal file opened for reading; `size` fixed at open."""

    def __init__(self, path: Path, fh: IO[bytes], size: int) -> None:
        self.path, self.fh, self.size = path, fh, size
        self._counted: tuple[int, int] | None = None  # (offset, newlines before it)

    # -- bytes

    def _read(self, offset: int, count: int) -> bytes:
        """Bytes at `offset` (pread: the sequential reader's position is left alone)."""
        count = max(0, min(count, self.size - offset))
        data = os.pread(self.fh.fileno(), count, offset) if count else b""
        while 0 < len(data) < count:  # a short read: rare, but allowed
            more = os.pread(self.fh.fileno(), count - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data

    def _line_end(self, start: int) -> int:
        """The offset just after the line beginning at `start` (its newline), or `size`."""
        pos, step = start, 4096
        while pos < self.size:
            block = self._read(pos, step)
            cut = block.find(b"\n")
            if cut != -1:
                return pos + cut + 1
            pos += len(block)
            step = CHUNK  # a long line: read on in big blocks
        return self.size

    def _line_start_from(self, offset: int) -> int:
        """The first line start at or after `offset`."""
        if offset <= 0:
            return 0
        return self._line_end(offset - 1) if self._read(offset - 1, 1) != b"\n" else offset

    def newlines_before(self, offset: int) -> int:
        """How many lines end before `offset` (counted once, at the speed of reading bytes)."""
        start, count = (0, 0) if self._counted is None or self._counted[0] > offset else self._counted
        pos = start
        while pos < offset:
            block = self._read(pos, min(CHUNK, offset - pos))
            if not block:
                break
            count += block.count(b"\n")
            pos += len(block)
        self._counted = (offset, count)
        return count

    def head_time(self, start: int) -> tuple[float | None, int]:
        """(time of the line at `start` or None, the offset after it)."""
        head = self._read(start, 512)
        match = HEAD.match(head)
        end = self._line_end(start)
        if match is not None:
            return time_of(head[:match.end()]), end
        return time_of(self._read(start, end - start)), end

    def is_marker_at(self, start: int) -> bool:
        """Whether the next line from `start` that is not blank is a writer's mark that the
        line before it was cut off."""
        pos = start
        while pos < self.size:
            end = self._line_end(pos)
            line = self._read(pos, min(end - pos, 256))
            if line.strip():
                return MARKER.search(line.split(b"\n", 1)[0]) is not None
            pos = end
        return False

    # -- the window's start

    def start_of(self, when: float) -> int:
        """The offset just after the last line with a readable time before `when` (0 if none):
        a binary search on the lines' times, then a short walk line by line."""
        lo, hi = 0, self.size
        while hi - lo > PROBE_SPAN:
            mid = (lo + hi) // 2
            found = self._probe(mid, hi)
            if found is not None and found[0] < when:
                lo = found[1]
            else:
                hi = mid
        start = pos = lo
        while pos < self.size:
            when_here, end = self.head_time(pos)
            if when_here is not None:
                if when_here >= when:
                    break
                start = end
            pos = end
        return start

    def _probe(self, offset: int, limit: int) -> tuple[float, int] | None:
        """(time, line start) of the first line with a readable time beginning in [offset, limit)."""
        pos = self._line_start_from(offset)
        for _ in range(PROBE_LINES):
            if pos >= limit:
                return None
            when, end = self.head_time(pos)
            if when is not None:
                return when, pos
            pos = end
        return None

    # -- lines read one by one

    def lines(self, start: int) -> Iterator[tuple[int, bytes]]:
        """(offset, line with its newline if it has one) from `start` to `size`."""
        self.fh.seek(start)
        pos, size = start, self.size
        for raw in self.fh:
            if pos + len(raw) >= size:  # never past the size seen at open (a writer may be appending)
                if pos < size:
                    yield pos, raw[:size - pos]
                return
            yield pos, raw
            pos += len(raw)

    # -- lines found by searching bytes

    def mentioning(self, start: int, end: int, needles: set[bytes], backward: bool = False
                   ) -> Iterator[tuple[int, bytes, bytes]]:
        """(offset, line, the needle it holds) of each line in [start, end) holding one of
        `needles` (read again before each chunk: the caller may remove some), in file order or
        `backward`; a search of bytes, lines parsed only by the caller."""
        pos = end if backward else start
        while (pos > start if backward else pos < end) and needles:
            if backward:
                low = max(start, pos - CHUNK)
                chunk = self._read(low, pos - low)
                if low > start:
                    cut = chunk.find(b"\n", 0, len(chunk) - 1)  # a newline with a line after it
                    if cut == -1:  # a line longer than a chunk: take it whole
                        low = self._line_start_back(low, start)
                        chunk = self._read(low, pos - low)
                    else:
                        low, chunk = low + cut + 1, chunk[cut + 1:]
                base, pos = low, low
            else:
                chunk = self._read(pos, min(CHUNK, end - pos))
                if pos + len(chunk) < end:
                    cut = chunk.rfind(b"\n")
                    if cut == -1:
                        chunk = self._read(pos, self._line_end(pos) - pos)
                    else:
                        chunk = chunk[:cut + 1]
                base = pos
                pos += len(chunk)
            if not chunk:
                return
            found = sorted(self._hits(chunk, set(needles)), reverse=backward)
            for line_start, needle in found:
                line_end = chunk.find(b"\n", line_start)
                line = chunk[line_start:] if line_end == -1 else chunk[line_start:line_end + 1]
                yield base + line_start, line, needle

    def _line_start_back(self, offset: int, floor: int) -> int:
        """The start of the line holding `offset` (not before `floor`)."""
        pos = offset
        while pos > floor:
            low = max(floor, pos - CHUNK)
            cut = self._read(low, pos - low).rfind(b"\n")
            if cut != -1:
                return low + cut + 1
            pos = low
        return floor

    @staticmethod
    def _hits(chunk: bytes, needles: set[bytes]) -> set[tuple[int, bytes]]:
        """{(start of a line of `chunk` holding a needle, that needle)}."""
        if len(needles) > MANY_NEEDLES:  # which calls the chunk names, in one pass of a regex
            needles &= set(CALL_FIELD.findall(chunk))
        hits: set[tuple[int, bytes]] = set()
        for needle in needles:
            at = chunk.find(needle)
            while at != -1:
                line_start = chunk.rfind(b"\n", 0, at) + 1
                hits.add((line_start, needle))
                line_end = chunk.find(b"\n", at)
                if line_end == -1:
                    break
                at = chunk.find(needle, line_end)
        return hits


