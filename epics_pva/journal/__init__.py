"""The interface journal: an append-only JSON Lines record of every set_values call, read back.

One room, four jobs, each a module behind this one: the line vocabulary and value encoding
(`_format`), the writer (`_writer`, with its bounded lock waits in `_lock`), reading lines
back (`_reader`), grouping them into calls and a restore plan (`_restore`), and what one
set_values call writes (`_hook`, used by the Interface's set path). The file format is
described in `epics_pva.journal._writer`'s docstring and in docs/journal.md.
"""

from ._format import EVENTS, OUTCOMES, decode_value, encode_value
from ._hook import CallJournal, JournalFile, classify, refused_by_journal, start_or_refuse
from ._reader import Entry, read_journal
from ._restore import (
    CallRecord,
    PvRecord,
    ReadbackCheck,
    RestoreStep,
    Wire,
    group_calls,
    in_window,
    readback_checks,
    restore_plan,
    wire_of,
)
from ._writer import Journal, LineWriteError

__all__ = [
    "EVENTS", "OUTCOMES", "CallJournal", "CallRecord", "Entry", "Journal", "JournalFile", "LineWriteError",
    "PvRecord", "ReadbackCheck", "RestoreStep", "Wire", "classify", "decode_value", "encode_value",
    "group_calls", "in_window", "read_journal", "readback_checks", "refused_by_journal", "restore_plan",
    "start_or_refuse", "wire_of",
]
