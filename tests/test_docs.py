"""Every example in the documentation runs here: docs/*.md and README.md.

The rule. A fenced block of Python or shell (```python, ```sh, ```bash, ```console) carries,
on the line just before its fence, an HTML comment that says how it is checked. The comment is
invisible on GitHub and in the built site:

    <!-- docs-test: run -->                  Python: saved as a script, run in a scratch folder
    <!-- docs-test: run with-demo-ioc -->    the same, with the EPICS_PVA_* environment of a
                                             soft IOC serving the demo machine
    <!-- docs-test: pytest -->               Python: saved as test_*.py and run by pytest, so
                                             the plugin's fixtures are there
    <!-- docs-test: sh -->                   shell: run with bash -eu in the scratch folder,
                                             with the demo soft IOC's environment
    <!-- docs-test: copy-of PATH -->         any language: the block is a verbatim part of PATH,
                                             a file the test suite itself runs (RUN_ELSEWHERE)
    <!-- docs-test: toml appended-to PATH -->  TOML: PATH followed by the block loads as a config
    <!-- docs-test: skip REASON -->          shell only: not run, and REASON says why (a long
                                             benchmark, a download, a server that runs until stopped)

A Python block can never be skipped. Blocks of other languages are output or data, not code:
```json and ```toml blocks must still parse. The blocks of one page run in page order, in one
scratch folder, against one soft IOC of their own, so a page may write a file that a later
block reads. The scratch folder links `softioc/`, `examples/` and `devtools/` of the checkout,
so paths are written as from the checkout root.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from softioc import SoftIOC, load_config
from softioc.pytest_plugin import demo_config_path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [REPO / "README.md"]
CODE_LANGUAGES = {"python", "py", "sh", "bash", "shell", "console"}
PYTHON = {"python", "py"}
BLOCK_TIMEOUT = 120.0  # seconds for one block; EPICS base's IOC and pytest start in a few

# files that docs quote verbatim (copy-of), and where the test suite runs them
RUN_ELSEWHERE = {
    "softioc/examples/demo.toml": "the demo machine of softioc.pytest_plugin and of every "
                                  "with-demo-ioc block here",
    "examples/badger/environments/demo/__init__.py": "tests/test_badger.py, under tox -e badger",
}

FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<how>.*?)\s*-->\s*$")


@dataclass
class Block:
    """One fenced block of a page: its language, its text and the docs-test marker above it."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, in order (MyST directives such as ```{note} too)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        language = match["info"].strip().split(" ")[0].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        if j == len(lines):
            raise AssertionError(f"{page.relative_to(REPO)}:{i + 1}: fence never closed")
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = MARKER.match(lines[k]) if k >= 0 else None
        found.append(Block(page, i + 1, language, "\n".join(body) + "\n", marker["how"] if marker else None))
        i = j + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


def test_the_pages_have_examples() -> None:
    # guards the parser: a change that found no block would make every other check vacuous
    runnable = [b for b in ALL_BLOCKS if b.marker and b.marker.split()[0] in ("run", "pytest", "sh")]
    assert len(runnable) >= 10, [b.where for b in runnable]


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.language in CODE_LANGUAGES],
                         ids=lambda b: b.where)
def test_every_code_block_says_how_it_is_checked(block: Block) -> None:
    assert block.marker is not None, (
        f"{block.where}: a ```{block.language} block needs a <!-- docs-test: ... --> line above "
        "it (see tests/test_docs.py)")
    how = block.marker.split()[0]
    if block.language in PYTHON:
        assert how in ("run", "pytest", "copy-of"), f"{block.where}: a Python block is run, not {how!r}"
    else:
        assert how in ("sh", "skip", "copy-of"), f"{block.where}: a shell block is sh or skip, not {how!r}"
    if how == "skip":
        reason = block.marker.split(None, 1)[1:] or [""]
        assert len(reason[0]) >= 10, f"{block.where}: skip needs a reason"


def test_every_marker_sits_on_a_block() -> None:
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        fences = {b.line for b in blocks_of(page)}
        for number, text in enumerate(lines, 1):
            if MARKER.match(text):
                following = next((n for n in range(number + 1, len(lines) + 1) if lines[n - 1].strip()), None)
                assert following in fences, f"{page_id(page)}:{number}: docs-test marker with no block below"


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.marker and b.marker.startswith("copy-of")],
                         ids=lambda b: b.where)
def test_copied_blocks_match_their_file(block: Block) -> None:
    path = block.marker.split(None, 1)[1]
    assert path in RUN_ELSEWHERE, f"{block.where}: {path} is not a file the test suite runs"
    original = "\n".join(line.rstrip() for line in (REPO / path).read_text(encoding="utf-8").splitlines())
    quoted = "\n".join(line.rstrip() for line in block.text.splitlines())
    assert quoted in original, f"{block.where}: the block is no longer a verbatim part of {path}"


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.language in ("json", "toml")],
                         ids=lambda b: b.where)
def test_data_blocks_parse(block: Block) -> None:
    if block.language == "json":
        for line in block.text.splitlines():
            json.loads(line)
        return
    data = tomllib.loads(block.text)
    if block.marker and block.marker.startswith("toml appended-to"):
        base = (REPO / block.marker.split()[2]).read_text(encoding="utf-8")
        assert load_config(tomllib.loads(base + "\n" + block.text)) is not None
    elif block.marker and block.marker.startswith("copy-of"):
        assert load_config(data) is not None


def scratch_folder(tmp_path: Path) -> Path:
    """A folder where paths read as from the checkout root, without the checkout's packages on sys.path."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("softioc", "examples", "devtools"):
        (work / name).symlink_to(REPO / name, target_is_directory=True)
    return work


def environment(conf: dict[str, str] | None) -> dict[str, str]:
    """The process environment less every EPICS setting, plus `conf`; the venv's scripts on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}
    env["EPICS_PVA_ADDR_LIST"] = ""
    env["EPICS_PVA_AUTO_ADDR_LIST"] = "NO"
    env.update(conf or {})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_pytest(blocks: list[Block], work: Path) -> subprocess.CompletedProcess[str]:
    """Save each block as a test module in `work` and run them all in one pytest process."""
    files = []
    for block in blocks:
        script = work / f"test_{block.page.stem.replace('-', '_')}_{block.line}.py"
        script.write_text(block.text, encoding="utf-8")
        files.append(str(script))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=60",
               f"--rootdir={work}", *files]
    return subprocess.run(command, cwd=work, env=environment(None), capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT)


def run_block(block: Block, work: Path, scripts: Path, conf: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one `run` or `sh` block as its marker says; the result of the process."""
    how = block.marker.split()
    if how[0] == "run":
        script = scripts / f"block_{block.page.stem.replace('-', '_')}_{block.line}.py"
        script.write_text(block.text, encoding="utf-8")
        command = [sys.executable, str(script)]
        env = environment(conf if how[1:] == ["with-demo-ioc"] else None)
    elif how[0] == "sh":
        command = ["bash", "-euo", "pipefail", "-c", block.text]
        env = environment(conf)
    else:
        raise AssertionError(f"{block.where}: cannot run a {how[0]!r} block one by one")
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT)


def check(done: subprocess.CompletedProcess[str], what: str) -> None:
    assert done.returncode == 0, (f"{what} exited {done.returncode}\n"
                                  f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")


RUN_PAGES = sorted({b.page for b in ALL_BLOCKS
                    if b.marker and b.marker.split()[0] in ("run", "pytest", "sh")}, key=page_id)


# a page runs a soft IOC and several processes one after the other (each bounded by
# BLOCK_TIMEOUT): a few seconds on a quiet machine, over a minute on a loaded 2-core one
@pytest.mark.timeout(4 * BLOCK_TIMEOUT)
@pytest.mark.parametrize("page", RUN_PAGES, ids=page_id)
def test_the_examples_of_a_page_run(page: Path, tmp_path: Path) -> None:
    work = scratch_folder(tmp_path)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    blocks = [b for b in blocks_of(page) if b.marker and b.marker.split()[0] in ("run", "pytest", "sh")]
    tests = [b for b in blocks if b.marker == "pytest"]
    with SoftIOC(demo_config_path()) as ioc:
        conf = ioc.client_conf()
        for block in blocks:
            if block.marker != "pytest":
                check(run_block(block, work, scripts, conf), f"{block.where} ({block.marker})")
            elif block is tests[0]:  # all of a page's tests in one pytest process: it starts slowly
                done = run_pytest(tests, work)
                check(done, "pytest of " + ", ".join(b.where for b in tests))
                expected = sum(len(re.findall(r"^def test_", b.text, re.M)) for b in tests)
                assert re.search(rf"\b{expected} passed\b", done.stdout), done.stdout
                assert not re.search(r"\b(skipped|deselected|xfailed)\b", done.stdout), done.stdout


@pytest.mark.timeout(3 * BLOCK_TIMEOUT)  # three processes, one a pytest
def test_a_failing_example_is_caught(tmp_path: Path) -> None:
    # the runner reports a block that fails, in each way it runs blocks
    work = scratch_folder(tmp_path)
    page = DOCS / "index.md"
    for marker, text in (("run", "raise SystemExit(3)\n"), ("sh", "false\ntrue\n")):
        assert run_block(Block(page, 1, "python", text, marker), work, tmp_path, {}).returncode != 0, marker
    failing = Block(page, 2, "python", "def test_no():\n    assert False\n", "pytest")
    assert run_pytest([failing], work).returncode != 0


@pytest.mark.timeout(BLOCK_TIMEOUT + 30)
def test_the_demo_of_the_first_command_runs(tmp_path: Path) -> None:
    # the first command is venv + install + this script; the install is what the test run has
    done = subprocess.run([sys.executable, str(REPO / "examples" / "demo.py")], cwd=tmp_path,
                          env=environment(None), capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    check(done, "examples/demo.py")
    assert "# ready" in done.stdout and "InvalidInputError" in done.stdout, done.stdout


def test_the_readme_test_command_is_what_ci_runs() -> None:
    readme = [b for b in blocks_of(REPO / "README.md") if b.language == "sh"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert any(b.text.strip() == ci for b in readme), f"README has no block reading exactly: {ci}"


def test_the_readme_links_into_the_docs() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#\s]+)", text)
    assert {"docs/index.md", "docs/api.md"} <= set(links), links
    for link in links:
        assert (REPO / link).is_file(), f"README links to {link}, which does not exist"
    assert len(text.splitlines()) <= 150, "the README is the short way in; the rest lives in docs/"
