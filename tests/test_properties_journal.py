"""Properties of the journal's reader (and of its encoder): any line, any file, any window gives
a result or a clear error per line, within a time bound, and a window holds exactly the calls
a reading of the whole file would keep.

The reader's binary search and byte searches only start on files larger than their block
sizes; these properties shrink the blocks (a few dozen bytes) so that small generated files
go through every path: probes landing mid-line, chunks cut between lines, many call ids.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from _hypothesis import within
from hypothesis import given
from hypothesis import strategies as st

import epics_pva.journal._file as journal_file
from epics_pva.journal import decode_value, encode_value, scan_journal
from epics_pva.journal._lines import Entry, parse_line, time_of
from epics_pva.tools.journal_cli import main

T0 = 1_790_000_000.0
PVS = ["P:A", "P:B", "P:C"]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Blocks of a few dozen bytes: the binary search and chunked searches run on small files."""
    monkeypatch.setattr(journal_file, "PROBE_SPAN", 48)
    monkeypatch.setattr(journal_file, "CHUNK", 64)
    monkeypatch.setattr(journal_file, "MANY_NEEDLES", 2)
    monkeypatch.setattr(journal_file, "PROBE_LINES", 3)


# ---- one line ---------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
keys = st.sampled_from(["time", "pid", "event", "call", "pv", "value", "attempt", "outcome", "reason", "error",
                        "result", "trace", "sent", "not_sent", "prefix", "rehearsal", "rehearsal_id"])
objects = st.dictionaries(keys, json_values | st.sampled_from(
    [T0, 4242, "put", "before", "outcome", "validation", "interrupted", "end", "truncated", "1-1-a", "P:A", 1, 0]),
    max_size=10)
raw_lines = st.one_of(
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    objects.map(lambda d: json.dumps(d).encode()),
    objects.map(lambda d: json.dumps(d).encode()[:-3]),  # cut short
    st.integers(min_value=1, max_value=3000).map(lambda n: b'{"time":1,"pid":1,"event":"put","call":"c","pv":"P",'
                                                           b'"attempt":1,"value":' + b"[" * n + b"]" * n + b"}"),
)


# lines that cannot say when they were written (a line with a time keeps the file in time order)
timeless_lines = raw_lines.filter(lambda raw: time_of(raw) is None)


@given(raw_lines)
def test_any_line_is_an_entry_or_a_short_reason(raw):
    kind, result = within(parse_line, raw, 7)
    assert kind == "value", f"parse_line raised {result!r}"
    if isinstance(result, Entry):
        assert result.line == 7 and 0 <= result.time and isinstance(result.call, str)
        json.dumps(result.fields, default=repr)  # what it holds can be shown
    else:
        assert isinstance(result, str) and 0 < len(result) <= 400


# ---- a whole file, any window -----------------------------------------------------------------------

@st.composite
def journals(draw):
    """A journal as writers leave it: calls in time order, interleaved, some with end lines, some
    with ids carrying their start (ms) and some without; bad lines and cut-off lines here and
    there. Returns (file bytes, every line as written)."""
    calls = draw(st.integers(min_value=0, max_value=8))
    events: list[tuple[float, str]] = []  # (time, line text)
    for n in range(calls):
        start = T0 + draw(st.floats(min_value=0, max_value=100, allow_nan=False))
        new_id = draw(st.booleans())
        call = f"4242-{n}-{n:08x}" + (f"-{int(start * 1000) - draw(st.integers(0, 500))}" if new_id else "")
        pvs = draw(st.lists(st.sampled_from(PVS), min_size=1, max_size=3, unique=True))
        when = start
        body: list[tuple[str, dict]] = []
        body += [("before", {"pv": pv, "value": 1.0, "prefix": "", "rehearsal": False, "rehearsal_id": ""})
                 for pv in pvs]
        for pv in pvs:
            body += [("put", {"pv": pv, "value": 2.0, "attempt": 1}),
                     ("outcome", {"pv": pv, "attempt": 1, "outcome": "accepted", "reason": None})]
        if draw(st.booleans()):
            body.append(("end", {}))
        for event, fields in body:
            events.append((when, json.dumps({"time": when, "pid": 4242, "event": event, "call": call, **fields},
                                            separators=(",", ":"))))
            when += draw(st.floats(min_value=0, max_value=5, allow_nan=False))
    events.sort(key=lambda e: e[0])  # the file is in time order: each line is stamped under the lock
    lines = [text.encode() for _, text in events]
    for _ in range(draw(st.integers(min_value=0, max_value=3))):  # bad lines and blank lines
        at = draw(st.integers(min_value=0, max_value=len(lines)))
        lines.insert(at, draw(timeless_lines) if draw(st.booleans()) else b"   ")
    for _ in range(draw(st.integers(min_value=0, max_value=2))):  # a writer killed mid-line, then marked
        if not lines:
            break
        at = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        when = max([_time(line) for line in lines[: at + 1]], default=T0)  # the mark is written after it
        lines[at] = lines[at][: draw(st.integers(min_value=0, max_value=len(lines[at])))]
        lines.insert(at + 1, json.dumps({"time": when, "pid": 1, "event": "truncated", "call": ""}).encode())
    data = b"".join(line + b"\n" for line in lines)
    if draw(st.booleans()) and data:
        data = data[: -draw(st.integers(min_value=1, max_value=min(20, len(data))))]  # a writer killed mid-line
    return data


def _time(line: bytes) -> float:
    try:
        when = json.loads(line)["time"]
    except Exception:  # noqa: BLE001 - a bad line has no time
        return T0
    return float(when) if isinstance(when, (int, float)) and not isinstance(when, bool) and math.isfinite(when) else T0


def reference(data: bytes, since: float | None, until: float | None) -> list[tuple[int, str, str]]:
    """What the window holds, read the slow way: every line parsed, a line followed by a writer's
    mark dropped, a last line without its newline dropped, and the calls kept whose first line
    is in [since, until]."""
    pieces = data.split(b"\n")
    complete = data.endswith(b"\n") or not data
    if complete:
        pieces.pop()
    parsed = []
    for number, raw in enumerate(pieces, start=1):
        if not raw.strip() or (number == len(pieces) and not complete):
            continue
        parsed.append((number, parse_line(raw, number)))
    kept = []
    for k, (_number, item) in enumerate(parsed):
        following = parsed[k + 1][1] if k + 1 < len(parsed) else None
        if isinstance(following, Entry) and following.event == "truncated":
            continue
        if isinstance(item, Entry) and item.event not in ("truncated",):
            kept.append(item)
    first: dict[str, float] = {}
    for entry in kept:
        first.setdefault(entry.call, entry.time)
    low = -math.inf if since is None else since
    high = math.inf if until is None else until
    return [(e.line, e.call, e.event) for e in kept if e.event != "end" and low <= first[e.call] <= high]


windows = st.tuples(st.none() | st.floats(min_value=T0 - 10, max_value=T0 + 400),
                    st.none() | st.floats(min_value=T0 - 10, max_value=T0 + 400))


@given(journals(), windows)
def test_a_window_holds_what_a_reading_of_the_whole_file_keeps(tmp_path_factory, data, window):
    since, until = window
    path = tmp_path_factory.mktemp("j") / "j.jsonl"
    path.write_bytes(data)
    kind, scan = within(scan_journal, path, since, until)
    assert kind == "value", f"scan_journal raised {scan!r}"
    expected = [] if since is not None and until is not None and since > until else reference(data, since, until)
    assert [(e.line, e.call, e.event) for e in scan.entries] == expected
    lines = data.split(b"\n")
    for bad in scan.bad:  # every line reported is one that cannot be read, by its number
        assert isinstance(parse_line(lines[bad.line - 1], bad.line), str)


@given(st.lists(raw_lines | st.just(b""), max_size=12), windows)
def test_any_file_gives_the_command_a_result_and_per_line_errors(tmp_path_factory, lines, window):
    path = tmp_path_factory.mktemp("j") / "j.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    since, until = window
    argv = ["show", str(path)] + (["--since", repr(since)] if since is not None else []) + (
        ["--until", repr(until)] if until is not None else [])
    kind, code = within(_quietly, argv)
    assert kind == "value", f"pva-journal raised {code!r}"
    assert code in (0, 2)


def _quietly(argv: list[str]) -> int:
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(argv)


# ---- the encoder ---------------------------------------------------------------------------------------

class _Raises:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


any_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.integers(min_value=10**1300, max_value=10**1400) | st.builds(_Raises) | st.complex_numbers(),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3),
    max_leaves=12,
)


@given(any_values)
def test_any_value_encodes_to_strict_json_and_decodes(value):
    kind, text = within(lambda v: json.dumps(encode_value(v), allow_nan=False), value)
    assert kind == "value", f"encoding raised {text!r}"
    kind, back = within(lambda t: decode_value(json.loads(t)), text)
    assert kind == "value", f"decoding raised {back!r}"


def test_the_fuzz_run_includes_this_module() -> None:
    tox = (Path(__file__).parent.parent / "tox.ini").read_text()
    assert "tests/test_properties_journal.py" in tox.split("[testenv:fuzz]")[1].split("[testenv:")[0]
