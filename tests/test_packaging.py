"""The wheel carries the two packages only: epics_pva and softioc (devtools/ stays in the checkout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# build output of an earlier in-tree build would leak into the wheel: build a clean copy
LEFT_OUT = shutil.ignore_patterns(".git", ".tox", "build", "dist", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".ruff_cache", ".coverage*")


def test_the_wheel_holds_only_epics_pva_and_softioc(tmp_path: Path) -> None:
    source, out = tmp_path / "src", tmp_path / "wheels"
    shutil.copytree(ROOT, source, ignore=LEFT_OUT)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--wheel-dir", str(out), str(source)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert len(dist_info) == 1 and top - dist_info == {"epics_pva", "softioc"}, sorted(top)
    assert "softioc/examples/demo.toml" in names  # package data still shipped
    assert {"epics_pva/py.typed", "softioc/py.typed"} <= set(names)  # PEP 561: typed packages
    modules = {path.relative_to(ROOT).as_posix() for package in ("epics_pva", "softioc")
               for path in (ROOT / package).rglob("*.py")}
    assert modules - set(names) == set()  # every sub-package and module, none left behind
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info.pop()}/entry_points.txt").decode()
    assert "pva-softioc" in entry_points
    assert "pva-bench" not in entry_points and "pva-soak" not in entry_points
