"""Run a Badger routine headless, through Badger's own routine and run API.

The routine is built the way Badger's GUI builds one (a ``badger.routine.Routine`` from the
environment plugin's name, an Xopt generator on a VOCS of its variables and observables,
the current values as the initial point) and run in this process by
``badger.core.run_routine`` until it holds the number of evaluations asked for.

Badger's settings are process-wide and read when its plugin factory is first imported, so
``configure_badger`` must run before anything imports ``badger.factory`` or ``badger.routine``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .plugin import write_settings

_log = logging.getLogger(__name__)

DEFAULT_GENERATOR = "random"


def configure_badger(
    settings: str | Path | None = None,
    *,
    plugin_root: str | Path | None = None,
    workdir: str | Path | None = None,
) -> Path | None:
    """Point Badger at a settings file, or write one for ``plugin_root`` under ``workdir``.

    Returns the settings file used (None when Badger was configured already, which is
    fine as long as it names the same plugin root; otherwise RuntimeError).
    """
    from badger.settings import ConfigSingleton, init_settings

    if ConfigSingleton._instance is not None:
        current = ConfigSingleton._instance.read_value("BADGER_PLUGIN_ROOT")
        if plugin_root is not None and (current is None or Path(current).resolve() != Path(plugin_root).resolve()):
            raise RuntimeError(
                f"Badger is already configured in this process with plugin root {current!r}; its "
                f"settings are process-wide, so {str(plugin_root)!r} needs a new process"
            )
        return None
    if settings is None:
        if plugin_root is None:
            raise ValueError("give a Badger settings file or a plugin root")
        workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="badger-headless-"))
        settings = write_settings(workdir / "badger-settings.yaml", plugin_root, workdir)
    settings = Path(settings)
    if not settings.is_file():
        raise FileNotFoundError(f"{settings}: no such Badger settings file")
    init_settings(str(settings))
    return settings


def run_routine(
    environment: str,
    *,
    evaluations: int = 5,
    generator: str = DEFAULT_GENERATOR,
    generator_params: Mapping[str, Any] | None = None,
    objective: str | None = None,
    maximize: bool = False,
    variables: Sequence[str] | None = None,
    env_params: Mapping[str, Any] | None = None,
    verbose: int = 0,
    close: bool = True,
) -> Any:
    """Run ``evaluations`` evaluations (the initial point included) of a routine; return it.

    ``environment`` is the name of an environment plugin under the configured plugin root.
    The objective is ``objective`` (default: the environment's first observable),
    minimised unless ``maximize``; the other observables are recorded too. The data, one
    row per evaluation with variables and observables, is ``routine.data`` (a DataFrame).
    ``verbose`` is Badger's own progress table (0 none, 2 every step). The interface is
    closed afterwards unless ``close`` is False. Errors propagate as Badger and Xopt raise
    them.
    """
    if evaluations < 1:
        raise ValueError(f"evaluations must be >= 1, not {evaluations!r}")
    import pandas as pd
    from badger.core import run_routine as badger_run_routine
    from badger.errors import BadgerRunTerminated
    from badger.factory import get_env
    from badger.routine import Routine, calculate_initial_points
    from badger.utils import ts_float_to_str
    from xopt import VOCS
    from xopt.generators import get_generator

    _, configs = get_env(environment)
    bounds = {name: list(b) for entry in configs["variables"] for name, b in entry.items()}
    if variables is not None:
        unknown = [v for v in variables if v not in bounds]
        if unknown:
            raise ValueError(f"{unknown} are not variables of environment {environment!r}: {list(bounds)}")
        bounds = {v: bounds[v] for v in variables}
    observations = list(configs["observations"])
    if not observations:
        raise ValueError(f"environment {environment!r} has no observables to optimise")
    objective = objective or observations[0]
    if objective not in observations:
        raise ValueError(f"{objective!r} is not an observable of environment {environment!r}: {observations}")
    vocs = VOCS(
        variables=bounds,
        objectives={objective: "MAXIMIZE" if maximize else "MINIMIZE"},
        observables=[o for o in observations if o != objective],
    )
    routine = Routine(
        name=f"headless-{environment}",
        creation_ts=ts_float_to_str(datetime.now().timestamp(), "lcls-fname"),
        generator=get_generator(generator)(vocs=vocs, **dict(generator_params or {})),
        environment={"name": environment} | dict(env_params or {}),
    )
    interface = routine.environment.interface
    try:
        # As Badger's GUI does by default: start from the machine's current values.
        initial = calculate_initial_points([{"type": "add_curr"}], vocs, routine.environment)
        routine.initial_points = pd.DataFrame(initial).astype("double")

        def active() -> int:
            done = 0 if routine.data is None else len(routine.data)
            return 2 if done >= evaluations else 0  # 2: Badger's "stop"

        def evaluated(result: Any) -> None:
            _log.info("evaluation %d of %d done", len(routine.data), evaluations)

        try:
            badger_run_routine(routine, active, lambda candidates: None, evaluated, None, verbose=verbose)
        except BadgerRunTerminated:
            pass  # the normal end: active() said stop
    finally:
        if close and interface is not None and hasattr(interface, "close"):
            interface.close()
    return routine


def archive(routine: Any) -> Path:
    """Save the run in Badger's archive (where the GUI finds it); return the file."""
    from badger.archive import archive_run

    run = archive_run(routine)
    return Path(run["path"]) / str(run["filename"])


def result_table(routine: Any) -> str:
    """The routine's data (variables and observables per evaluation) as text."""
    vocs = routine.vocs
    columns = [*vocs.variable_names, *vocs.output_names]
    data = routine.data
    if data is None or data.empty:
        return "(no evaluations)\n"
    return str(data[[c for c in columns if c in data.columns]].to_string()) + "\n"
