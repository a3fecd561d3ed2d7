"""Command line: set up Badger's GUI, install the Badger plugin, or run a Badger routine headless.

    python -m epics_pva.badger setup ROOT [--no-demo] [--environment DIR ...] [--settings FILE] [--force]
    python -m epics_pva.badger install ROOT [--environment DIR ...] [--force]
    python -m epics_pva.badger run ENV --plugin-root ROOT [--evaluations 5] [--generator random]
    python -m epics_pva.badger env          # the EPICS_PVA_INTERFACE_* variables and their values
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from ..tools.arguments import count, json_object, program_name
from .plugin import install_plugin
from .settings import (
    ENVIRONMENT_VARIABLES,
    read_only_forced,
    rehearsal_forced,
    settings_from_environment,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=program_name("epics_pva.badger"), description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    setup = commands.add_parser(
        "setup", help="prepare Badger's GUI in one step: plugin, demo environment, settings file, folders",
        description="Install the plugin (and the demo environment) under ROOT/plugins, create "
                    "ROOT/templates, logbook, archive and logs, write the settings file Badger reads, "
                    "and print the command that starts the GUI.")
    setup.add_argument("root", help="folder for everything Badger keeps (created if missing)")
    setup.add_argument("--plugin-root", metavar="DIR", help="the plugin root (default ROOT/plugins)")
    setup.add_argument("--no-demo", action="store_true", help="do not install the demo environment")
    setup.add_argument("--environment", action="append", default=[], metavar="DIR",
                       help="also install this environment plugin folder (repeatable)")
    setup.add_argument("--settings", metavar="FILE",
                       help="write Badger's settings here instead of the file Badger reads by default "
                            "(the GUI is then started with -cf FILE)")
    setup.add_argument("--force", action="store_true",
                       help="replace plugins already there, and a settings file that is not Badger's (kept as .bak)")

    install = commands.add_parser("install", help="install the interface plugin into a Badger plugin root")
    install.add_argument("plugin_root", help="the BADGER_PLUGIN_ROOT folder (created if missing)")
    install.add_argument("--environment", action="append", default=[], metavar="DIR",
                         help="also copy this environment plugin folder (repeatable)")
    install.add_argument("--force", action="store_true", help="replace plugins already there")

    run = commands.add_parser("run", help="run a Badger routine headless (Badger's own run API)")
    run.add_argument("environment", help="environment plugin name under the plugin root")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--plugin-root", help="Badger plugin root; a settings file is written under --workdir")
    where.add_argument("--settings", help="an existing Badger settings (config.yaml) file")
    run.add_argument("--workdir", help="folder for Badger's settings, archive and logbook (default: a temporary one)")
    run.add_argument("--evaluations", type=count(1, 1_000_000), default=5, help="evaluations, the initial point included (default 5)")
    run.add_argument("--generator", default="random", help="Xopt generator name (default random; e.g. neldermead)")
    run.add_argument("--generator-params", type=json_object, default="{}", metavar="JSON", help="generator arguments as JSON")
    run.add_argument("--objective", help="observable to optimise (default: the first)")
    run.add_argument("--maximize", action="store_true", help="maximise instead of minimise")
    run.add_argument("--variable", action="append", dest="variables", metavar="NAME",
                     help="optimise only these variables (repeatable; default all)")
    run.add_argument("--output", metavar="CSV", help="write the routine's data to this CSV file")
    run.add_argument("--archive", action="store_true", help="save the run in Badger's archive")
    run.add_argument("--rehearsal", action="store_true",
                     help="write only to the soft IOC whose id EPICS_PVA_INTERFACE_REHEARSAL_ID names, on "
                          "loopback; anything else is refused before a put (sets EPICS_PVA_INTERFACE_REHEARSAL=1)")
    run.add_argument("-v", "--verbose", action="count", default=0, help="-v Badger's progress table, -vv logging")

    commands.add_parser("env", help="show the EPICS_PVA_INTERFACE_* settings in effect")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 failed, 2 misuse)."""
    args = build_parser().parse_args(argv)
    if args.command == "setup":
        return _setup(args)
    if args.command == "install":
        try:
            written = install_plugin(args.plugin_root, environments=args.environment, force=args.force)
        except (FileExistsError, FileNotFoundError) as exc:
            print(f"install: {exc}", file=sys.stderr)
            return 1
        for folder in written:
            print(f"installed {folder}")
        print(f"Badger needs BADGER_PLUGIN_ROOT = {os.path.abspath(args.plugin_root)}")
        return 0
    if args.command == "env":
        try:
            values = settings_from_environment()
        except ValueError as exc:
            print(f"env: {exc}", file=sys.stderr)
            return 1
        for field, variable in ENVIRONMENT_VARIABLES.items():
            shown = os.environ.get(variable, "")
            print(f"{variable}={shown}" + ("" if field in values else "    (not set)"))
        print(f"read-only forced: {'yes' if read_only_forced() else 'no'}")
        print(f"rehearsal forced: {'yes' if rehearsal_forced() else 'no'}")
        print(f"mode: {_mode()}")
        return 0
    return _run(args)


def _setup(args: argparse.Namespace) -> int:
    from .setup import gui_command, setup_badger

    try:
        report = setup_badger(args.root, plugin_root=args.plugin_root, settings=args.settings,
                              environments=args.environment, demo=not args.no_demo, force=args.force)
    except (FileExistsError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"setup: {exc}", file=sys.stderr)
        return 1
    for folder in report.plugins:
        print(f"installed {folder}")
    for key, folder in report.roots.items():
        print(f"{key} = {folder}")
    print(f"settings {report.settings_action}: {report.settings}"
          + (f" (the previous one kept as {report.backup})" if report.backup else ""))
    print(f"mode: {_mode()}")
    print("Start Badger's GUI (where EPICS_PVA_* lead to the machine, e.g. after pasting the soft "
          "IOC's --export lines):")
    print(f"  {gui_command(report)}")
    return 0


def _mode() -> str:
    """What the plugin's sets would do now, as the write guard decides it for the environment."""
    from ..core import Settings, decide, environment_settings

    try:
        return decide(Settings(**environment_settings())).label
    except ValueError as exc:
        return f"unknown: {exc}"


def _run(args: argparse.Namespace) -> int:
    if args.verbose >= 2:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    generator_params = args.generator_params  # a JSON object, checked by argparse
    if args.archive and args.settings is None and args.workdir is None:
        print("run: --archive needs --workdir (or --settings): a temporary folder would be deleted", file=sys.stderr)
        return 2
    if args.rehearsal:
        if not os.environ.get(ENVIRONMENT_VARIABLES["rehearsal_id"], "").strip():
            print(f"run: --rehearsal needs {ENVIRONMENT_VARIABLES['rehearsal_id']}, printed by the soft IOC's "
                  "banner: without it no server can be proved to be the rehearsal's", file=sys.stderr)
            return 2
        os.environ[ENVIRONMENT_VARIABLES["rehearsal"]] = "1"  # Badger's worker processes inherit it
    if args.settings is None and args.workdir is None:
        with tempfile.TemporaryDirectory(prefix="badger-headless-") as workdir:
            return _run_configured(args, generator_params, workdir)
    return _run_configured(args, generator_params, args.workdir)


def _run_configured(args: argparse.Namespace, generator_params: dict[str, Any], workdir: str | None) -> int:
    from .runner import archive, configure_badger, result_table, run_routine

    configure_badger(args.settings, plugin_root=args.plugin_root, workdir=workdir)
    print(f"mode: {_mode()}", file=sys.stderr)
    if read_only_forced():
        print("READ-ONLY: EPICS_PVA_INTERFACE_READ_ONLY is set; no put will be sent", file=sys.stderr)
    elif rehearsal_forced():
        print("REHEARSAL: puts go only to the soft IOC "
              f"{os.environ.get(ENVIRONMENT_VARIABLES['rehearsal_id'], '')}, proved before each set", file=sys.stderr)
    try:
        routine = run_routine(
            args.environment, evaluations=args.evaluations, generator=args.generator,
            generator_params=generator_params, objective=args.objective, maximize=args.maximize,
            variables=args.variables, verbose=2 if args.verbose else 0,
        )
    except Exception as exc:  # shown to the operator as Badger would show it
        print(f"run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(result_table(routine))
    if routine.environment.interface is not None and getattr(routine.environment.interface, "read_only", False):
        print("(read-only: the variable values above were logged, not set)")
    if args.output:
        routine.data.to_csv(args.output, index=False)
        print(f"data written to {args.output}")
    if args.archive:
        print(f"archived as {archive(routine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
