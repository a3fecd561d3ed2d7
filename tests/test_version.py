"""One version string: pyproject.toml's, read by both packages from the installed distribution."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import epics_pva
import softioc

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_both_packages_carry_the_version_written_in_pyproject():
    written = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert epics_pva.__version__ == softioc.__version__ == metadata.version("badger-epics-pva") == written


def test_the_changelog_has_an_unreleased_section_and_names_the_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert epics_pva.__version__ in changelog


UNINSTALLED = """
import sys
from importlib import metadata

def missing(name):
    raise metadata.PackageNotFoundError(name)

metadata.version = missing  # what an interpreter without the distribution installed sees
import epics_pva, softioc
print(epics_pva.__version__, softioc.__version__)
"""


def test_an_uninstalled_checkout_reports_an_unknown_version():
    done = subprocess.run([sys.executable, "-c", UNINSTALLED], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0+unknown", "0+unknown"]
