"""The interface journal: an append-only JSON Lines record of every set_values call, read back.

One room, four jobs, each a module behind this one: the line vocabulary and value encoding
(`_format`), the writer (`_writer`, with its bounded lock waits in `_lock`), reading lines
back as a stream (`_reader`: a window of the file, over `_file`'s byte access and `_lines`'
checks of one line), grouping them into calls and a restore plan (`_restore`), and what one
set_values call writes (`_hook`, used by the Interface's set path). The file format is
described in `epics_pva.journal._writer`'s docstring and in docs/journal.md.
"""

from ._format import EVENTS, OUTCOMES, decode_value, encode_value
from ._hook import CallJournal, JournalFile, classify, refused_by_journal, start_or_refuse
from ._reader import BadLine, Entry, Scan, latest_entries, read_journal, scan_calls, scan_journal
from ._restore import (
    CallGrouper,
    CallRecord,
    PvRecord,
    ReadbackCheck,
    RestoreStep,
    Wire,
    group_calls,
    in_window,
    readback_check_of,
    readback_checks,
    restore_plan,
    wire_of,
)
from ._writer import Journal, LineWriteError

__all__ = [
    "EVENTS", "OUTCOMES", "BadLine", "CallGrouper", "CallJournal", "CallRecord", "Entry", "Journal", "JournalFile",
    "LineWriteError", "PvRecord", "ReadbackCheck", "RestoreStep", "Scan", "Wire", "classify", "decode_value",
    "encode_value", "group_calls", "in_window", "latest_entries", "read_journal", "readback_check_of",
    "readback_checks", "refused_by_journal", "restore_plan", "scan_calls", "scan_journal", "start_or_refuse", "wire_of",
]
