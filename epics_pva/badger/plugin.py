"""Install epics_pva as a Badger interface plugin, and write Badger settings files.

Badger finds plugins as folders under its ``BADGER_PLUGIN_ROOT``: ``interfaces/<name>/`` and
``environments/<name>/``, each with a ``configs.yaml`` and an ``__init__.py``. The interface
plugin written here is two small files that import the class from the installed package,
so upgrading the package upgrades the plugin. This module does not import Badger.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

PLUGIN_NAME = "epics_pva"
DISTRIBUTION = "badger-epics-pva"

_INIT = '''"""Badger interface plugin: EPICS PVAccess through the epics_pva package.

Installed by `python -m epics_pva.badger install`; the class lives in the installed package.
"""

from epics_pva.badger import Interface  # noqa: F401
'''

_CONFIGS = """---
name: {name}
description: "EPICS PVAccess (p4p) interface: checked puts, retries, readback validation"
version: "{version}"
dependencies:
  - badger-opt
  - {distribution}
"""


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def plugin_files() -> dict[str, str]:
    """The interface plugin's files: {file name: text}."""
    return {
        "__init__.py": _INIT,
        "configs.yaml": _CONFIGS.format(name=PLUGIN_NAME, version=_version(), distribution=DISTRIBUTION),
    }


def install_plugin(
    plugin_root: str | Path, *, environments: Iterable[str | Path] = (), force: bool = False
) -> list[Path]:
    """Install the interface as ``plugin_root/interfaces/epics_pva`` and copy environment plugins.

    Each of ``environments`` is an environment plugin folder, copied to
    ``plugin_root/environments/<folder name>``. A folder already there with other content is
    only replaced with ``force``; otherwise FileExistsError. Returns the folders written.
    """
    root = Path(plugin_root)
    written: list[Path] = []
    target = root / "interfaces" / PLUGIN_NAME
    files = plugin_files()
    if target.exists() and not force and not _same_files(target, files):
        raise FileExistsError(f"{target} already holds a different plugin; use --force to replace it")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (target / name).write_text(text)
    written.append(target)
    for source in environments:
        source = Path(source)
        if not (source / "__init__.py").is_file() or not (source / "configs.yaml").is_file():
            raise FileNotFoundError(f"{source}: not an environment plugin (needs __init__.py and configs.yaml)")
        destination = root / "environments" / source.name
        if destination.exists():
            if not force and not _same_tree(source, destination):
                raise FileExistsError(f"{destination} already exists with other content; use --force to replace it")
            shutil.rmtree(destination)
        shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        written.append(destination)
    return written


def _same_files(folder: Path, files: dict[str, str]) -> bool:
    return all((folder / name).is_file() and (folder / name).read_text() == text for name, text in files.items())


def _same_tree(a: Path, b: Path) -> bool:
    def listing(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }

    return listing(a) == listing(b)


def settings_text(plugin_root: str | Path, workdir: str | Path) -> str:
    """A Badger settings file naming ``plugin_root`` and, under ``workdir``, the other roots."""
    workdir = Path(workdir).resolve()
    values = {
        "BADGER_PLUGIN_ROOT": Path(plugin_root).resolve(),
        "BADGER_TEMPLATE_ROOT": workdir / "templates",
        "BADGER_LOGBOOK_ROOT": workdir / "logbook",
        "BADGER_ARCHIVE_ROOT": workdir / "archive",
        "BADGER_LOG_DIRECTORY": workdir / "logs",
    }
    # JSON strings are valid YAML scalars, and need no YAML library here.
    return "".join(f"{key}: {json.dumps(str(value))}\n" for key, value in values.items())


def write_settings(path: str | Path, plugin_root: str | Path, workdir: str | Path | None = None) -> Path:
    """Write a Badger settings file (see settings_text); ``workdir`` defaults to its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings_text(plugin_root, workdir if workdir is not None else path.parent))
    return path
