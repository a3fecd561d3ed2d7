"""The one reader of Badger environments: load the class, read its configs, readbacks and observables.

Environments are read by duck typing: this module imports neither Badger nor the PVAccess
client nor the simulator, so the preflight check and the dry run share it without pulling
in more than they need. Importing a real plugin still needs what the plugin itself imports
(usually ``badger``).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import BadgerEnvironmentError

__all__ = [
    "OFFSET_KEY",
    "READBACK_KEY",
    "TOLERANCE_KEY",
    "environment_configs",
    "environment_name",
    "environment_pvs",
    "load_environment",
    "served_observables",
    "validation_keywords",
]

_log = logging.getLogger(__name__)

#: Keywords of a validation config (``partial(wait_for_readback, ...)``) that readers use.
READBACK_KEY, OFFSET_KEY, TOLERANCE_KEY = "readback_pv", "offset", "tolerance"


def load_environment(spec: str | os.PathLike[str]) -> Any:
    """Import an environment from a plugin folder, a ``.py`` file or a module name.

    ``spec`` may end in ``:ClassName`` (default ``Environment``). Without a class name, a
    module with no ``Environment`` but a module-level ``variables`` mapping is itself the
    environment: a plain, Badger-free one (``variables`` {name: [low, high]}, ``observables``
    [names], ``configs`` {variable: validation config}). Raises BadgerEnvironmentError naming
    the spec and what is wrong.
    """
    text = os.fspath(spec)
    attr, named = "Environment", False
    head, sep, tail = text.rpartition(":")
    # "C:..." is a Windows drive, not a class name
    if sep and tail.isidentifier() and head and not (len(head) == 1 and head.isalpha()):
        text, attr, named = head, tail, True
    path = Path(text)
    if path.is_dir():
        path = path / "__init__.py"
        if not path.is_file():
            raise BadgerEnvironmentError(f"{text}: not an environment plugin folder (no __init__.py)")
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise BadgerEnvironmentError(f"{text}: no such file")
        module = _import_file(path)
    else:
        try:
            module = importlib.import_module(text)
        except ImportError as exc:
            raise BadgerEnvironmentError(f"{text}: cannot import environment module: {exc}") from exc
    found = getattr(module, attr, None)
    if found is not None:
        return found
    if not named and isinstance(getattr(module, "variables", None), Mapping):
        return module  # a plain module environment: its module-level names are the environment
    hint = "" if named else (" and is no plain environment either (no module-level 'variables' mapping); "
                             "name the class with SPEC:ClassName")
    raise BadgerEnvironmentError(f"{spec}: module {module.__name__!r} has no {attr!r}{hint}")


def _import_file(path: Path) -> ModuleType:
    """Import a plugin folder as a package named after the folder (as Badger does), or a file."""
    is_package = path.name == "__init__.py"
    name = path.parent.name if is_package else path.stem
    module_name = f"_epics_pva_env_{name}"
    spec = importlib.util.spec_from_file_location(
        module_name, path, submodule_search_locations=[str(path.parent)] if is_package else None
    )
    if spec is None or spec.loader is None:
        raise BadgerEnvironmentError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        del sys.modules[module_name]
        raise BadgerEnvironmentError(f"{path}: importing the environment failed: {exc}") from exc
    return module


def environment_name(env: Any) -> str:
    """The environment's ``name``, or its class name."""
    name = getattr(env, "name", None)
    return name if isinstance(name, str) else getattr(env, "__name__", type(env).__name__)


def environment_configs(env: Any) -> dict[str, Any]:
    """The environment's validation configs (setpoint -> validation config): its public
    ``configs`` mapping (a plain environment's), else its ``_configs`` (a Badger plugin's), or {}."""
    configs = getattr(env, "configs", None)
    if isinstance(configs, Mapping):
        return dict(configs)
    configs = getattr(env, "_configs", None)
    # A pydantic model turns an un-annotated `_configs` into a private attribute.
    if not isinstance(configs, Mapping):
        private = getattr(env, "__private_attributes__", {}).get("_configs")
        configs = getattr(private, "default", None)
    return dict(configs) if isinstance(configs, Mapping) else {}


def validation_keywords(config: Any) -> dict[str, Any]:
    """The keywords bound in a validation config: ``partial.keywords``, nested partials merged."""
    keywords: dict[str, Any] = {}
    while isinstance(config, partial):
        keywords = {**config.keywords, **keywords}  # the outer partial wins, as in a call
        config = config.func
    return keywords


def served_observables(env: Any) -> list[str]:
    """The observables a server must serve: Badger formulas (with backquotes) are Badger's own."""
    return [o for o in getattr(env, "observables", None) or [] if isinstance(o, str) and "`" not in o]


def environment_pvs(env: Any) -> tuple[dict[str, Any], list[str], list[str]]:
    """(setpoints with their bounds, readbacks named by the validation configs, served observables)."""
    setpoints = dict(getattr(env, "variables", None) or {})
    readbacks: list[str] = []
    for config in environment_configs(env).values():
        readback = validation_keywords(config).get(READBACK_KEY)
        if isinstance(readback, str) and readback not in readbacks:
            readbacks.append(readback)
    return setpoints, readbacks, served_observables(env)
