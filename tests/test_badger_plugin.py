"""The Badger plugin's installer and environment-variable settings: these need no Badger installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from epics_pva.badger import ENVIRONMENT_VARIABLES, READ_ONLY_VARIABLE, read_only_forced
from epics_pva.badger.__main__ import main
from epics_pva.badger.plugin import PLUGIN_NAME, install_plugin, plugin_files, settings_text
from epics_pva.badger.settings import settings_from_environment

REPO = Path(__file__).resolve().parent.parent
DEMO_ENV = REPO / "examples" / "badger" / "environments" / "demo"


def test_epics_pva_does_not_import_badger():
    code = (
        "import sys, epics_pva, epics_pva.badger, epics_pva.badger.plugin, epics_pva.preflight; "
        "assert 'badger' not in sys.modules, 'badger imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, {}),
        ({READ_ONLY_VARIABLE: "1"}, {"read_only": True}),
        ({READ_ONLY_VARIABLE: " Yes "}, {"read_only": True}),
        ({READ_ONLY_VARIABLE: "off"}, {"read_only": False}),
        ({READ_ONLY_VARIABLE: ""}, {}),
        ({"EPICS_PVA_INTERFACE_TIMEOUT": "2.5", "EPICS_PVA_INTERFACE_PARALLEL": "false"},
         {"timeout": 2.5, "parallel": False}),
        ({"EPICS_PVA_INTERFACE_PUT_ATTEMPTS": "3", "EPICS_PVA_INTERFACE_RETRY_DELAY": "0"},
         {"put_attempts": 3, "retry_delay": 0.0}),
        ({"EPICS_PVA_INTERFACE_NAN_ON_READ_ERROR": "true"}, {"nan_on_read_error": True}),
    ],
)
def test_settings_from_environment(environ, expected):
    assert settings_from_environment(environ) == expected


@pytest.mark.parametrize(
    "variable, text, message",
    [
        ("EPICS_PVA_INTERFACE_TIMEOUT", "abc", "is not a number"),
        ("EPICS_PVA_INTERFACE_TIMEOUT", "0", "must be > 0"),
        ("EPICS_PVA_INTERFACE_TIMEOUT", "nan", "must be > 0"),
        ("EPICS_PVA_INTERFACE_PUT_ATTEMPTS", "1.5", "is not an integer"),
        ("EPICS_PVA_INTERFACE_PUT_ATTEMPTS", "0", "must be >= 1"),
        ("EPICS_PVA_INTERFACE_RETRY_DELAY", "-1", "must be >= 0"),
        (READ_ONLY_VARIABLE, "maybe", "is not a yes/no value"),
    ],
)
def test_bad_environment_values_are_named(variable, text, message):
    with pytest.raises(ValueError, match=f"{variable}='{text}' {message}"):
        settings_from_environment({variable: text})


def test_an_unclear_read_only_value_still_forces_read_only():
    assert read_only_forced({READ_ONLY_VARIABLE: "maybe"}) is True
    assert read_only_forced({READ_ONLY_VARIABLE: "0"}) is False
    assert read_only_forced({}) is False


def test_an_unclear_rehearsal_value_still_forces_rehearsal():
    from epics_pva.badger.settings import REHEARSAL_VARIABLE, rehearsal_forced

    assert REHEARSAL_VARIABLE == "EPICS_PVA_INTERFACE_REHEARSAL"
    assert rehearsal_forced({REHEARSAL_VARIABLE: "maybe"}) is True
    assert rehearsal_forced({REHEARSAL_VARIABLE: "no"}) is False
    assert rehearsal_forced({}) is False
    assert settings_from_environment({"EPICS_PVA_INTERFACE_REHEARSAL_ID": " abc ",
                                      "EPICS_PVA_INTERFACE_PREFIX": "SIM:"}) == {"rehearsal_id": "abc", "prefix": "SIM:"}


def test_every_setting_has_a_variable():
    assert set(ENVIRONMENT_VARIABLES) == {
        "read_only", "parallel", "timeout", "put_attempts", "retry_delay", "nan_on_read_error",
        "validation_timeout", "journal", "journal_fsync",
        "rehearsal", "rehearsal_id", "rehearsal_allow", "fresh_reads", "prefix"}
    assert all(v.startswith("EPICS_PVA_INTERFACE_") for v in ENVIRONMENT_VARIABLES.values())


def test_install_writes_the_plugin_and_environments(tmp_path):
    root = tmp_path / "plugins"
    written = install_plugin(root, environments=[DEMO_ENV])
    assert written == [root / "interfaces" / PLUGIN_NAME, root / "environments" / "demo"]
    plugin = root / "interfaces" / PLUGIN_NAME
    assert sorted(p.name for p in plugin.iterdir()) == ["__init__.py", "configs.yaml"]
    assert "from epics_pva.badger import Interface" in (plugin / "__init__.py").read_text()
    configs = (plugin / "configs.yaml").read_text()
    assert "name: epics_pva" in configs and "badger-epics-pva" in configs
    assert (root / "environments" / "demo" / "__init__.py").read_text() == (DEMO_ENV / "__init__.py").read_text()
    assert not list((root / "environments" / "demo").glob("__pycache__"))
    # again: same content, nothing to refuse
    assert install_plugin(root, environments=[DEMO_ENV]) == written


def test_install_refuses_to_overwrite_other_content_without_force(tmp_path):
    root = tmp_path / "plugins"
    install_plugin(root, environments=[DEMO_ENV])
    plugin_init = root / "interfaces" / PLUGIN_NAME / "__init__.py"
    plugin_init.write_text("# someone else's\n")
    with pytest.raises(FileExistsError, match="use --force"):
        install_plugin(root)
    plugin_init.write_text(plugin_files()["__init__.py"])
    (root / "environments" / "demo" / "extra.txt").write_text("x")
    with pytest.raises(FileExistsError, match="environments/demo already exists"):
        install_plugin(root, environments=[DEMO_ENV])
    plugin_init.write_text("# someone else's\n")
    install_plugin(root, environments=[DEMO_ENV], force=True)
    assert plugin_init.read_text() == plugin_files()["__init__.py"]
    assert not (root / "environments" / "demo" / "extra.txt").exists()


def test_install_refuses_a_folder_that_is_not_an_environment(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an environment plugin"):
        install_plugin(tmp_path / "plugins", environments=[tmp_path])


def test_install_command(tmp_path, capsys):
    root = tmp_path / "root"
    assert main(["install", str(root), "--environment", str(DEMO_ENV)]) == 0
    out = capsys.readouterr().out
    assert "interfaces/epics_pva" in out and "BADGER_PLUGIN_ROOT" in out
    (root / "interfaces" / PLUGIN_NAME / "configs.yaml").write_text("changed")
    assert main(["install", str(root)]) == 1
    assert "use --force" in capsys.readouterr().err
    assert main(["install", str(root), "--force"]) == 0


def test_env_command_shows_what_is_in_effect(monkeypatch, capsys):
    monkeypatch.setenv(READ_ONLY_VARIABLE, "1")
    monkeypatch.setenv("EPICS_PVA_INTERFACE_TIMEOUT", "3")
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"{READ_ONLY_VARIABLE}=1" in out and "EPICS_PVA_INTERFACE_TIMEOUT=3" in out
    assert "read-only forced: yes" in out
    monkeypatch.setenv("EPICS_PVA_INTERFACE_TIMEOUT", "x")
    assert main(["env"]) == 1


def test_settings_text_names_every_root(tmp_path):
    text = settings_text(tmp_path / "plugins", tmp_path / "work")
    keys = [line.split(":")[0] for line in text.splitlines()]
    assert keys == ["BADGER_PLUGIN_ROOT", "BADGER_TEMPLATE_ROOT", "BADGER_LOGBOOK_ROOT",
                    "BADGER_ARCHIVE_ROOT", "BADGER_LOG_DIRECTORY"]
    assert str((tmp_path / "work" / "archive").resolve()) in text
