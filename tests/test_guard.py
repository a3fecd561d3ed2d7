"""A foreign `softioc` (Diamond's pythonSoftIOC uses the same import name) fails loudly."""

import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import softioc
from softioc import _guard

PACKAGE_DIR = Path(softioc.__file__).parent


def test_this_package_carries_the_marker():
    assert softioc.__project__ == _guard.MARKER
    _guard.ensure_this_package()  # no error for ourselves


def test_foreign_package_in_sys_modules_is_refused(monkeypatch):
    foreign = types.ModuleType("softioc")
    foreign.__file__ = "/elsewhere/softioc/__init__.py"
    monkeypatch.setitem(sys.modules, "softioc", foreign)
    with pytest.raises(ImportError) as info:
        _guard.ensure_this_package()
    message = str(info.value)
    assert "pythonSoftIOC" in message and "/elsewhere/softioc/__init__.py" in message
    assert "'badger-epics-pva'" in message


FOREIGN_FIRST = textwrap.dedent("""
    import sys, types
    foreign = types.ModuleType("softioc")      # what `import softioc` gives when pythonSoftIOC wins
    foreign.__path__ = [sys.argv[1]]           # ... while our modules are still importable below it
    sys.modules["softioc"] = foreign
    try:
        import {module}
    except ImportError as exc:
        print(exc)
        sys.exit(3)
    sys.exit(0)
""")


@pytest.mark.parametrize("module", ["softioc.server", "softioc.cli", "softioc.pytest_plugin"])
def test_importing_our_modules_under_a_foreign_package_fails(module):
    child = subprocess.run([sys.executable, "-c", FOREIGN_FIRST.format(module=module), str(PACKAGE_DIR)],
                           capture_output=True, text=True, timeout=30)
    assert child.returncode == 3, child.stdout + child.stderr
    assert "pythonSoftIOC" in child.stdout and "Another distribution uses the same import name" in child.stdout


def test_packages_installed_over_each_other(tmp_path):
    """Both distributions unpacked into one `softioc/` folder: theirs wins `__init__`, ours is refused."""
    merged = tmp_path / "site" / "softioc"
    shutil.copytree(PACKAGE_DIR, merged, ignore=shutil.ignore_patterns("__pycache__"))
    (merged / "__init__.py").write_text('"""A different soft IOC package."""\n__version__ = "4.0"\n')
    for command in (["-c", "import softioc.server"], ["-m", "softioc", "--help"]):
        child = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=30,
                               cwd=tmp_path, env={"PYTHONPATH": str(merged.parent), "PATH": ""})
        assert child.returncode != 0
        assert "ImportError" in child.stderr and "pythonSoftIOC" in child.stderr
        assert str(merged / "__init__.py") in child.stderr
