"""Prepare Badger's GUI in one step: plugin, demo environment, settings file, folders.

``pva-badger setup ROOT`` lays out one folder for everything Badger keeps::

    ROOT/plugins/interfaces/epics_pva     the interface plugin (imports the installed package)
    ROOT/plugins/environments/demo        the demo environment (unless --no-demo)
    ROOT/templates  ROOT/logbook  ROOT/archive  ROOT/logs

and writes the settings file Badger reads at start-up, naming those roots. Badger 1.6 reads
``config.yaml`` in its user config folder (``badger.settings.get_user_config_folder()``):
``~/.config/config.yaml`` on Linux, ``~/Library/Application Support/Badger/config.yaml`` on
macOS, ``%APPDATA%\\config.yaml`` on Windows; it crashes on first use when that folder does
not exist, so setup creates it. A settings file already there keeps its other settings
(theme, log level, ...); a file there that is not Badger's is left alone unless ``--force``
(which keeps a copy beside it). With ``--settings FILE`` the file goes elsewhere and the GUI
is started with ``badger -g -cf FILE``.

This module does not import Badger unless it is installed (to ask where its settings live).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .demo import write_demo_environment
from .plugin import install_plugin, settings_text, write_settings

__all__ = ["ROOT_KEYS", "SetupReport", "badger_settings_file", "gui_command", "setup_badger"]

#: the settings setup writes: Badger's key -> folder under ROOT (the plugin root may be elsewhere)
ROOT_KEYS: dict[str, str] = {
    "BADGER_PLUGIN_ROOT": "plugins",
    "BADGER_TEMPLATE_ROOT": "templates",
    "BADGER_LOGBOOK_ROOT": "logbook",
    "BADGER_ARCHIVE_ROOT": "archive",
    "BADGER_LOG_DIRECTORY": "logs",
}

# the variables the GUI's plugin reads: where the PVs are, and the operator's switches
_SHOWN_ENVIRONMENT = ("EPICS_PVA_ADDR_LIST", "EPICS_PVA_AUTO_ADDR_LIST", "EPICS_PVA_NAME_SERVERS",
                      "EPICS_PVA_BROADCAST_PORT", "EPICS_PVA_SERVER_PORT")


def _config_folder() -> Path:
    """Badger 1.6's user config folder, computed as badger.settings.get_user_config_folder does."""
    try:
        from badger.settings import get_user_config_folder
    except ImportError:
        system = platform.system()
        if system == "Windows":
            folder = os.getenv("APPDATA") or os.getenv("LOCALAPPDATA") or ""
        elif system == "Darwin":
            folder = os.path.expanduser("~/Library/Application Support/Badger")
        else:
            folder = os.path.expanduser("~/.config")
        return Path(folder)
    return Path(get_user_config_folder())


def badger_settings_file() -> Path:
    """The settings file Badger reads when started without ``-cf`` (``badger -g``)."""
    return _config_folder() / "config.yaml"


@dataclass
class SetupReport:
    """What setup did: the settings file, the roots it names, the plugin folders written."""

    settings: Path
    roots: dict[str, Path]
    plugins: list[Path]
    settings_action: str  # "written", "updated" or "unchanged"
    backup: Path | None = None
    notes: list[str] = field(default_factory=list)


def _read_existing(path: Path) -> dict[str, Any] | None:
    """The settings in an existing file, as a mapping; None when it is not Badger's settings."""
    text = path.read_text()
    if not text.strip():
        return {}
    try:  # Badger depends on PyYAML: without it, Badger is not installed here
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None
    if not all(isinstance(k, str) and (k.startswith("BADGER_") or k == "AUTO_REFRESH") for k in data):
        return None
    return data


def _settings_with(existing: Mapping[str, Any], roots: Mapping[str, Path]) -> str:
    """The existing settings with ours replaced, as YAML (every value written as JSON, which YAML reads)."""
    merged: dict[str, Any] = dict(existing)
    for key, folder in roots.items():
        old = merged.get(key)
        if isinstance(old, dict) and "value" in old:  # the form Badger's own settings dialog writes
            merged[key] = {**old, "value": str(folder)}
        else:
            merged[key] = str(folder)
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in merged.items())


def setup_badger(
    root: str | os.PathLike[str],
    *,
    plugin_root: str | os.PathLike[str] | None = None,
    settings: str | os.PathLike[str] | None = None,
    environments: Iterable[str | os.PathLike[str]] = (),
    demo: bool = True,
    force: bool = False,
) -> SetupReport:
    """Install the plugin (and the demo environment unless ``demo`` is False), create every folder
    Badger needs and write its settings file; see the module's documentation.

    ``plugin_root`` defaults to ``ROOT/plugins``; ``settings`` to the file Badger reads
    (``badger_settings_file()``). Raises FileExistsError when a plugin folder or a settings
    file would be replaced that is not ours to replace (``force`` replaces it, keeping a copy
    of a settings file), FileNotFoundError for an environment folder that is no plugin.
    """
    base = Path(root).expanduser().resolve()
    roots = {key: base / sub for key, sub in ROOT_KEYS.items()}
    if plugin_root is not None:
        roots["BADGER_PLUGIN_ROOT"] = Path(plugin_root).expanduser().resolve()
    target = Path(settings).expanduser().resolve() if settings is not None else badger_settings_file()
    # refuse before writing anything: a settings file that is not Badger's
    existing: dict[str, Any] | None = {}
    if target.exists():
        if not target.is_file():
            raise FileExistsError(f"{target} is not a file")
        existing = _read_existing(target)
        if existing is None and not force:
            raise FileExistsError(
                f"{target} exists and is not a Badger settings file (or PyYAML cannot read it); "
                "give --settings FILE to write Badger's elsewhere, or --force to replace it (a copy is kept)"
            )
    sources = [Path(e) for e in environments]
    with tempfile.TemporaryDirectory(prefix="pva-badger-demo-") as scratch:
        if demo:
            sources.insert(0, write_demo_environment(Path(scratch) / "demo"))
        plugins = install_plugin(roots["BADGER_PLUGIN_ROOT"], environments=sources, force=force)
    for folder in roots.values():
        folder.mkdir(parents=True, exist_ok=True)
    for kind in ("interfaces", "environments"):  # Badger lists these; an empty one is fine
        (roots["BADGER_PLUGIN_ROOT"] / kind).mkdir(exist_ok=True)
    # ~/.config: Badger crashes on first use without it, even when started with -cf FILE
    for folder in {target.parent, badger_settings_file().parent}:
        folder.mkdir(parents=True, exist_ok=True)
    report = SetupReport(settings=target, roots=roots, plugins=plugins, settings_action="written")
    if existing is None:  # forced over a file that is not Badger's: keep it
        report.backup = _backup(target)
        text = _settings_with({}, roots)
    elif existing:
        text = _settings_with(existing, roots)
        report.settings_action = "updated"
    else:  # a new file (or an empty one): the plugin root, and the other roots under ROOT
        if not target.exists() or target.read_text() != settings_text(roots["BADGER_PLUGIN_ROOT"], base):
            write_settings(target, roots["BADGER_PLUGIN_ROOT"], base)
        else:
            report.settings_action = "unchanged"
        return report
    if target.read_text() == text:
        report.settings_action = "unchanged"
        return report
    if report.settings_action == "updated":
        report.backup = _backup(target)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    return report


def _backup(path: Path) -> Path:
    """Copy `path` beside itself (``config.yaml.bak``, then ``.bak1``, ...) and return the copy."""
    for n in range(1000):
        copy = path.with_name(f"{path.name}.bak{n or ''}")
        if not copy.exists():
            shutil.copy2(path, copy)
            return copy
    raise FileExistsError(f"too many backups of {path}")


def gui_command(report: SetupReport, environ: Mapping[str, str] | None = None) -> str:
    """The one shell command that starts Badger's GUI with these settings.

    Names the EPICS_PVA_* and EPICS_PVA_INTERFACE_* variables set now (where the plugin will
    look for PVs, and the operator's switches), and ``-cf FILE`` when the settings file is not
    the one Badger reads by default.
    """
    env = os.environ if environ is None else environ
    shown = [name for name in _SHOWN_ENVIRONMENT if env.get(name)]
    shown += sorted(n for n in env if n.startswith("EPICS_PVA_INTERFACE_") and env[n])
    words = [f"{name}={shlex.quote(env[name])}" for name in shown] + ["badger", "-g"]
    if report.settings != badger_settings_file():
        words += ["-cf", shlex.quote(str(report.settings))]
    return " ".join(words)
