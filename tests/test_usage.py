"""The --help usage lines of the console scripts name the command the user typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from epics_pva.badger.__main__ import main as badger_main
from epics_pva.badger.dryrun import main as dryrun_main
from epics_pva.tools.preflight import main as preflight_main

COMMANDS = {"pva-dryrun": dryrun_main, "pva-preflight": preflight_main, "pva-badger": badger_main}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_usage_names_the_console_script(command, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [f"/opt/tools/bin/{command}", "--help"])
    with pytest.raises(SystemExit) as done:
        COMMANDS[command](["--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {command} ")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_installed_script_prints_its_own_name(command):
    script = Path(sys.executable).parent / command
    if not script.exists():
        pytest.skip(f"{command} is not installed next to {sys.executable}")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {command} ")


@pytest.mark.parametrize("module", ["epics_pva.badger.dryrun", "epics_pva.preflight", "epics_pva.badger"])
def test_under_python_m_usage_names_the_module(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {module} ")
