"""Section 7 of the benchmark: EPICS's C++ client (pvxs) beside raw p4p and ours, against
EPICS base's softIoc. Structure only: speed is never asserted here.

The C++ client is built with the system compiler against the installed wheels; where that is
impossible the section must say why and still measure raw p4p and ours.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from p4p.client.thread import Context

from devtools.bench.anchor import CLIENTS, ao_database, measure_anchor, record_names
from devtools.bench.cpp import (
    SOURCE,
    BuildSkipped,
    PvxsBatch,
    build,
    cache_dir,
    client_environment,
    find_toolchain,
    first_error_line,
    put_values,
)
from devtools.bench.plot import plot
from devtools.bench.report import format_anchor
from devtools.bench.timing import interleaved
from softioc.epics_base import EpicsBaseIOC

ROOT = Path(__file__).resolve().parent.parent


def children(marker: bytes) -> list[bytes]:
    """Command lines of this process's live children that contain `marker` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and marker in cmdline:
            found.append(cmdline)
    return found


def check_rows(section: dict, sizes: list[int]) -> None:
    """Every row present with positive times; pvxs figures present unless it was skipped."""
    skipped = section["cpp"]["skipped"]
    for op in ("get", "put"):
        rows = section[op]["rows"]
        assert [r["n"] for r in rows] == sizes
        for r in rows:
            assert r["repeats"] >= 1
            assert r["raw_ms"] > 0 and r["interface_ms"] > 0 and r["interface_over_raw"] > 0
            if skipped:
                assert r["pvxs_ms"] is None and r["raw_over_pvxs"] is None and r["interface_over_pvxs"] is None
            else:
                assert r["pvxs_ms"] > 0
                for name in ("raw", "interface"):
                    assert r[f"{name}_over_pvxs"] > 0 and r[f"{name}_paired_over_pvxs"] > 0


@pytest.fixture(scope="module")
def quick_section() -> dict:
    """Section 7 at a tiny size, as `--quick` runs it (a real EpicsBaseIOC, the built client)."""
    return measure_anchor([4], repeats=2, warmup=1)


def test_quick_section_rows_or_reason(quick_section: dict) -> None:
    assert set(quick_section) >= {"server", "clients", "cpp", "get", "put"}
    assert set(quick_section["clients"]) == set(CLIENTS)
    cpp = quick_section["cpp"]
    if cpp["skipped"]:  # no compiler or no headers here: the reason is one line
        assert isinstance(cpp["skipped"], str) and "\n" not in cpp["skipped"]
    else:
        assert cpp["compiler"] and cpp["program"].startswith("pvxs_batch-")
    check_rows(quick_section, [4])
    json.dumps(quick_section)  # goes into --json as it is
    lines = "\n".join(format_anchor(quick_section))
    assert lines.startswith("7. get and put")
    assert "get_values(4)" in lines or "skipped:" in lines


def test_section_leaves_no_process(quick_section: dict) -> None:
    assert children(b"pvxs_batch") == []
    assert children(b"pvxslibs.ioc") == []


def test_without_a_compiler_the_row_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    section = measure_anchor([3], repeats=1, warmup=1)
    assert section["cpp"]["skipped"] == "no C++ compiler (no-such-compiler-here not found)"
    check_rows(section, [3])  # raw p4p and ours are still measured
    lines = format_anchor(section)
    assert "   pvxs C++: skipped: no C++ compiler (no-such-compiler-here not found)" in lines
    assert any(line.split()[:2] == ["3", "skipped"] for line in lines)


def test_skipped_section_in_table() -> None:
    assert format_anchor(None) == [
        "7. get and put of N ao records of EPICS base's softIoc: EPICS's C++ client pvxs, raw p4p, "
        "ours: skipped (--pvxs given no sizes)"]


@pytest.fixture(scope="module")
def program() -> Path:
    try:
        return build()
    except BuildSkipped as exc:
        pytest.skip(f"pvxs C++ client not buildable here: {exc}")


def test_build_goes_to_a_cache_outside_the_checkout(program: Path) -> None:
    assert program.is_file() and os.access(program, os.X_OK)
    assert ROOT not in program.resolve().parents
    assert program.parent == cache_dir()
    assert build() == program  # cached: the same program, not built again
    assert not list(ROOT.glob("devtools/bench/pvxs_batch-*"))


def test_build_error_gives_its_first_error_line(program: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.cpp"
    broken.write_text("#include <pvxs/client.h>\nint main() { return undeclared_name; }\n")
    with pytest.raises(BuildSkipped, match=r"^build failed: .*broken.cpp:2:.*error: .*undeclared_name") as caught:
        build(broken, cache=tmp_path)
    assert "\n" not in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["broken.cpp"]  # no partial program left


def test_missing_headers_are_a_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import devtools.bench.cpp as cpp

    monkeypatch.setattr(cpp, "_package_folder", lambda name: tmp_path)  # an empty folder
    with pytest.raises(BuildSkipped, match=r"^no pvxslibs headers or library: client.h missing$"):
        find_toolchain("sh")  # any program on PATH stands in for the compiler here


def test_first_error_line() -> None:
    assert first_error_line("x.cpp: In function 'int main()':\nx.cpp:2:21: error: 'y' was not declared\n") \
        == "x.cpp:2:21: error: 'y' was not declared"
    assert first_error_line("/usr/bin/ld: cannot find -lpvxs\ncollect2: error: ld returned 1 exit status\n") \
        == "/usr/bin/ld: cannot find -lpvxs"
    assert first_error_line("\n  something odd\nmore\n") == "something odd"
    assert first_error_line("") == "no output"


@pytest.fixture(scope="module")
def ioc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EpicsBaseIOC]:
    names = record_names(12)
    db = tmp_path_factory.mktemp("anchor") / "ao.db"
    db.write_text(ao_database(names))
    with EpicsBaseIOC(db=db, ready_pv=names[-1]) as server:
        yield server


def test_step_mode_puts_the_values_python_expects(program: Path, ioc: EpicsBaseIOC) -> None:
    names = record_names(12)
    with PvxsBatch(program, names, ioc.client_conf()) as client, \
            Context("pva", conf=ioc.client_conf(), useenv=False) as ctx:
        assert client.get(12) > 0
        for round_ in (-1, 7, 123):
            assert client.put(10, round_) > 0
            assert ctx.get(names[:10]) == pytest.approx(put_values(round_, 10))
        with pytest.raises(RuntimeError, match="bad command"):
            client.get(13)  # more names than it serves
    assert children(b"pvxs_batch") == []


def test_rounds_mode_prints_a_json_line_per_round(program: Path, ioc: EpicsBaseIOC) -> None:
    names = record_names(5)
    done = subprocess.run([str(program), "--rounds", "3", "--warmup", "1"], input="\n".join(names) + "\n",
                          capture_output=True, text=True, timeout=60, env=client_environment(ioc.client_conf()),
                          check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["n"] == 5 and r["errors"] == 0 and r["get_ms"] > 0 and r["put_ms"] > 0
    bad = subprocess.run([str(program), "--bogus"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown or incomplete option --bogus" in bad.stderr


def test_a_missing_pv_is_an_error_not_a_figure(program: Path, ioc: EpicsBaseIOC) -> None:
    with PvxsBatch(program, ["NO:SUCH:PV"], ioc.client_conf(), timeout=0.5) as client, \
            pytest.raises(RuntimeError, match=r"1 failed \(timeout\)"):
        client.get(1)


def test_put_values_match_the_source() -> None:
    assert put_values(0, 3) == [0.5, 0.6, 0.7]
    assert put_values(-1, 1) == [49.5]  # Python's modulo; the C++ source does the same
    assert "((round % 50) + 50) % 50" in SOURCE.read_text()


def test_self_timed_case_gives_its_own_seconds() -> None:
    samples = interleaved({"self": lambda r: 0.25, "timed": lambda r: None}, repeats=2, warmup=1,
                          self_timed=("self",))
    assert samples["self"] == [0.25, 0.25]
    assert all(0 <= s < 0.25 for s in samples["timed"])


@pytest.mark.parametrize("skipped", [None, "no C++ compiler (g++ not found)"])
def test_picture_has_the_three_clients(tmp_path: Path, skipped: str | None) -> None:
    pytest.importorskip("matplotlib")
    row = {"n": 10, "repeats": 3, "pvxs_ms": None if skipped else 1.0, "raw_ms": 2.0, "interface_ms": 1.5,
           "raw_over_pvxs": None if skipped else 2.0, "interface_over_pvxs": None if skipped else 1.5,
           "interface_over_raw": 0.75}
    anchor = {"cpp": {"skipped": skipped}, "get": {"rows": [row, {**row, "n": 100}]}, "put": {"rows": [row]}}
    results = {"traced": {}, "validated_set": {}, "settle_latency": {}, "pvxs_anchor": anchor}
    plot(results, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
