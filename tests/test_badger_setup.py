"""`pva-badger setup ROOT`: Badger's GUI prepared in one step, and Badger's own settings API agrees.

Each test points HOME at a fresh folder (no ~/.config: Badger crashes on first use without
it) and runs the command in a child process, as an operator's shell would; the checks that
Badger reads what was written run Badger itself in another child (they need Badger installed).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from epics_pva.badger.demo import DEMO_FILES
from epics_pva.badger.setup import ROOT_KEYS, SetupReport, badger_settings_file, gui_command

REPO = Path(__file__).resolve().parent.parent
DEMO_ENV = REPO / "examples" / "badger" / "environments" / "demo"
PATH_KEYS = ("BADGER_PLUGIN_ROOT", "BADGER_TEMPLATE_ROOT", "BADGER_LOGBOOK_ROOT", "BADGER_ARCHIVE_ROOT",
             "BADGER_LOG_DIRECTORY")


def home_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_PVA")}
    return {**env, "HOME": str(home), "EPICS_PVA_ADDR_LIST": "127.0.0.1:5076", "EPICS_PVA_AUTO_ADDR_LIST": "NO"}


def pva_badger(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "epics_pva.badger", *args], capture_output=True, text=True,
                          timeout=120, env=home_env(home))


def badger_reads(home: Path, settings: Path | None = None) -> dict[str, object]:
    """What Badger's own settings API reports, in a fresh process with this HOME (and -cf FILE)."""
    pytest.importorskip("badger")
    code = ("import json, sys; from badger.settings import init_settings; "
            "s = init_settings(sys.argv[1] if len(sys.argv) > 1 else None); "
            "print(json.dumps({k: s.read_value(k) for k in s.list_settings()}))")
    done = subprocess.run([sys.executable, "-c", code, *([str(settings)] if settings else [])],
                          capture_output=True, text=True, timeout=120, env=home_env(home))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_shipped_demo_is_the_example_byte_for_byte():
    assert sorted(DEMO_FILES) == sorted(p.name for p in DEMO_ENV.iterdir() if p.suffix in (".py", ".yaml"))
    for name, text in DEMO_FILES.items():
        assert (DEMO_ENV / name).read_text() == text, name


def test_setup_in_a_fresh_home_prepares_everything_badger_reads(tmp_path):
    home, root = tmp_path / "home", tmp_path / "home" / "badger"
    home.mkdir()
    done = pva_badger(home, "setup", str(root))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # the one command that starts the GUI, with what the plugin will use to find the PVs
    assert lines[-1].strip() == "EPICS_PVA_ADDR_LIST=127.0.0.1:5076 EPICS_PVA_AUTO_ADDR_LIST=NO badger -g"
    assert "mode: write: puts go to the machine" in lines
    settings = Path(next(line for line in lines if line.startswith("settings written: ")).split(": ", 1)[1])
    if platform.system() == "Linux":
        assert settings == home / ".config" / "config.yaml"
    roots = {key: root / sub for key, sub in ROOT_KEYS.items()}
    assert all(folder.is_dir() for folder in roots.values())
    assert (root / "plugins" / "interfaces" / "epics_pva" / "__init__.py").is_file()
    assert (root / "plugins" / "environments" / "demo" / "__init__.py").read_text() == DEMO_FILES["__init__.py"]

    reported = badger_reads(home)
    assert {key: reported[key] for key in PATH_KEYS} == {key: str(folder) for key, folder in roots.items()}
    # and Badger's command line and plugin factory see the same, in a process of their own
    pytest.importorskip("badger")
    info = subprocess.run([sys.executable, "-m", "badger"], capture_output=True, text=True, timeout=120,
                          env=home_env(home))
    assert info.returncode == 0 and f"plugin root: {roots['BADGER_PLUGIN_ROOT']}" in info.stdout, info.stderr
    code = "from badger.factory import list_env, list_intf; print(list_intf(), list_env())"
    listed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=home_env(home))
    assert listed.stdout.split("\n")[0] == "['epics_pva'] ['demo']", listed.stderr

    again = pva_badger(home, "setup", str(root))  # nothing to change
    assert again.returncode == 0 and f"settings unchanged: {settings}" in again.stdout


def test_setup_keeps_the_operators_other_settings(tmp_path):
    pytest.importorskip("badger")
    if platform.system() != "Linux":
        pytest.skip("Badger reads ~/.config/config.yaml on Linux only")
    home = tmp_path / "home"
    config = home / ".config" / "config.yaml"
    config.parent.mkdir(parents=True)
    # the form Badger's own settings dialog writes
    config.write_text("BADGER_THEME:\n  description: Theme\n  display_name: theme\n  is_path: false\n"
                      "  value: light\nBADGER_PLUGIN_ROOT:\n  description: plugins\n  display_name: plugin root\n"
                      "  is_path: true\n  value: /somewhere/else\n")
    before = config.read_text()
    done = pva_badger(home, "setup", str(tmp_path / "badger"), "--no-demo")
    assert done.returncode == 0, done.stderr
    assert "settings updated" in done.stdout and "installed" in done.stdout
    assert not (tmp_path / "badger" / "plugins" / "environments" / "demo").exists()
    assert Path(str(config) + ".bak").read_text() == before
    reported = badger_reads(home)
    assert reported["BADGER_THEME"] == "light"
    assert reported["BADGER_PLUGIN_ROOT"] == str(tmp_path / "badger" / "plugins")


def test_a_config_yaml_that_is_not_badgers_is_left_alone_unless_forced(tmp_path):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    if platform.system() != "Linux":
        pytest.skip("Badger reads ~/.config/config.yaml on Linux only")
    foreign = home / ".config" / "config.yaml"
    foreign.write_text("editor: vim\n")
    refused = pva_badger(home, "setup", str(tmp_path / "badger"))
    assert refused.returncode == 1 and "is not a Badger settings file" in refused.stderr
    assert foreign.read_text() == "editor: vim\n" and not (tmp_path / "badger").exists()
    forced = pva_badger(home, "setup", str(tmp_path / "badger"), "--force")
    assert forced.returncode == 0 and "previous one kept as" in forced.stdout
    assert (home / ".config" / "config.yaml.bak").read_text() == "editor: vim\n"


def test_settings_elsewhere_start_the_gui_with_cf(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "shared" / "badger.yaml"
    home.mkdir()
    done = pva_badger(home, "setup", str(tmp_path / "badger"), "--settings", str(elsewhere),
                      "--plugin-root", str(tmp_path / "plugins"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].strip().endswith(f"badger -g -cf {elsewhere}")
    assert not (home / ".config" / "config.yaml").exists()
    if platform.system() == "Linux":
        assert (home / ".config").is_dir()  # Badger's own folder exists all the same
    reported = badger_reads(home, elsewhere)
    assert reported["BADGER_PLUGIN_ROOT"] == str(tmp_path / "plugins")
    assert reported["BADGER_ARCHIVE_ROOT"] == str(tmp_path / "badger" / "archive")


def test_the_gui_command_names_what_the_plugin_reads(tmp_path):
    report = SetupReport(settings=badger_settings_file(), roots={}, plugins=[], settings_action="written")
    environ = {"EPICS_PVA_ADDR_LIST": "10.0.0.1 10.0.0.2", "EPICS_PVA_INTERFACE_READ_ONLY": "1", "PATH": "/bin"}
    assert gui_command(report, environ) == (
        "EPICS_PVA_ADDR_LIST='10.0.0.1 10.0.0.2' EPICS_PVA_INTERFACE_READ_ONLY=1 badger -g")
    assert gui_command(report, {}) == "badger -g"
