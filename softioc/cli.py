"""`pva-softioc CONFIG.toml` / `python -m softioc CONFIG.toml`: serve a simulated machine.

Prints the PVs it serves (as `#` comments) and the EPICS_PVA_* settings a client needs, one
NAME=value per line, then `# ready`; serves until Ctrl-C, SIGTERM or --duration.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from . import _guard
from .config import MAX_PROCESSES, ConfigError, IOCConfig, check_entries, load_config
from .errors import UpdateLoopError
from .machine import Machine, ShardIOC, serve, share
from .server import SoftIOC, is_loopback

_guard.ensure_this_package()
_log = logging.getLogger("softioc")


# the longest --duration (s): about 115 days; beyond it a wait overflows or the number is a typo
MAX_DURATION = 1e7
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _port(text: str) -> int:
    """A TCP/UDP port: 0 (a free one) to 65535."""
    try:
        value = int(text) if len(text) <= 10 else -1
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r:.40} is not a port within [0, 65535] (0: a free port)")
    return value


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_DURATION:
        raise argparse.ArgumentTypeError(f"{text!r:.40} is not a number of seconds within [0, {MAX_DURATION:g}]")
    return value


def _host(text: str) -> str:
    """An interface address or host name: no spaces or control characters, at most 255 characters."""
    if not text or len(text) > 255 or any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError(f"{text!r:.80} is not a host address (e.g. 127.0.0.1)")
    return text


def _identity(text: str) -> str:
    """A machine's id: 1 to 64 letters, digits, '-' or '_' (a uuid's hex, as a machine draws)."""
    if not 0 < len(text) <= 64 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in text):
        raise argparse.ArgumentTypeError(f"{text!r:.80} is not an id: 1 to 64 letters, digits, '-' or '_'")
    return text


def _count(text: str, low: int, high: int, what: str) -> int:
    """A whole number within [low, high]; an argparse error naming `what` otherwise."""
    try:
        value = int(text) if len(text) <= 10 else low - 1
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text!r:.40} is not {what} within [{low}, {high}]")
    return value


def _processes(text: str) -> int:
    """A number of server processes: 0 is refused, not taken as 'the config's number'."""
    return _count(text, 1, MAX_PROCESSES, "a number of processes")


def _shard(text: str) -> int:
    return _count(text, 0, MAX_PROCESSES - 1, "a shard index")


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r:.40} is not a logging level: use one of {', '.join(LOG_LEVELS)}")
    return text.upper()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pva-softioc",
        description="Serve a simulated EPICS PVAccess machine (setpoints, lagging readbacks, faults).",
    )
    parser.add_argument("config", help="TOML config file (see softioc/examples/demo.toml)")
    parser.add_argument("--host", type=_host, default="127.0.0.1",
                        help="interface address to serve on (default: 127.0.0.1, loopback only); with "
                             "--processes N, N comma-separated addresses give each shard its own")
    parser.add_argument("--port", type=_port, default=0, help="TCP server port (default: a free port)")
    parser.add_argument("--broadcast-port", type=_port, default=0,
                        help="UDP search port (default: a free port)")
    parser.add_argument("--allow-network", action="store_true", default=None,
                        help="permit serving on a non-loopback --host (it answers for these PV names there)")
    parser.add_argument("--prefix", default=None,
                        help="serve every PV under this prefix, e.g. SIM: (overrides [ioc] prefix)")
    parser.add_argument("--control-from", action="append", default=None, metavar="WHO",
                        help="who may write the control PVs: 'account', '@host' or 'account@host' "
                             "(repeatable; overrides [ioc] control_from; default: the account starting the IOC)")
    parser.add_argument("--write-from", action="append", default=None, metavar="WHO",
                        help="who may write setpoints, same syntax (overrides [ioc] write_from; default: everyone)")
    parser.add_argument("--export", action="store_true", help="print settings as `export NAME=value`")
    parser.add_argument("--list-pvs", action="store_true", help="print the PV names and exit without serving")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the client settings")
    parser.add_argument("--duration", type=_duration, default=None, help="stop by itself after this many seconds")
    parser.add_argument("--view", action="store_true",
                        help="show a live view of setpoints, readbacks and faults (refreshed in place)")
    parser.add_argument("--audit", default=None, metavar="FILE",
                        help="append every put and fault event to FILE as JSON Lines "
                             "(overrides the config's [ioc] audit)")
    parser.add_argument("--log-level", type=_log_level, default="WARNING", help="logging level (default: WARNING)")
    parser.add_argument("--processes", type=_processes, default=None,
                        help="serve the PVs from N processes (default: [ioc] processes, else 1)")
    parser.add_argument("--shard", type=_shard, default=None,
                        help="serve only shard K of the N (one host of a machine spread over hosts)")
    parser.add_argument("--links", default="",
                        help="with --shard: EPICS_PVA_ADDR_LIST reaching the other shards, for "
                             "observables whose inputs they serve")
    parser.add_argument("--identity", type=_identity, default=None, metavar="ID",
                        help="with --shard: the machine's id, which every shard publishes in softiocId (give "
                             "every host's shard the same one, e.g. from `uuidgen`; default: a new one)")
    return parser


def _build(config: IOCConfig, args: argparse.Namespace) -> SoftIOC | Machine:
    """The server the options ask for: one IOC, a machine of N processes, or one shard of it."""
    processes = config.ioc.processes if args.processes is None else args.processes
    if args.shard is not None:
        if args.shard >= processes:
            raise ValueError(f"--shard {args.shard} is not a shard of {processes} (0 to {processes - 1})")
        links = {"EPICS_PVA_ADDR_LIST": args.links, "EPICS_PVA_AUTO_ADDR_LIST": "NO"} if args.links else None
        return ShardIOC(share(config, processes, args.shard), link_conf=links, identity=args.identity,
                        host=args.host, port=args.port, broadcast_port=args.broadcast_port, audit=args.audit,
                        allow_network=args.allow_network)
    if args.identity is not None:
        raise ValueError("--identity is for one shard (--shard K); a machine draws its own")
    hosts = args.host.split(",")
    return serve(config, host=hosts[0] if len(hosts) == 1 else hosts, port=args.port,
                 broadcast_port=args.broadcast_port, processes=processes, audit=args.audit,
                 allow_network=args.allow_network)


def describe_pvs(config: IOCConfig) -> list[str]:
    """One line per simulated PV: name, role, type and limits."""
    lines = []
    for sp in config.setpoints:
        limits = f" limits [{sp.limits[0]:g}, {sp.limits[1]:g}]" if sp.limits else ""
        lines.append(f"{sp.name}  setpoint  {sp.type}{limits}")
        if sp.readback:
            lines.append(f"{sp.readback}  readback of {sp.name}  lag={sp.lag}")
    lines.extend(f"{ob.name}  observable  = {ob.expression}" for ob in config.observables)
    return lines


def print_banner(ioc: SoftIOC | Machine, out: TextIO, export: bool, quiet: bool) -> None:
    """Write the PV list as comments, then the client settings, then `# ready`."""
    if not quiet:
        print(f"# soft IOC '{ioc.config.source}' serving on {ioc.describe_address()}", file=out)
        if not all(is_loopback(h) for h in ioc.host.split(",")):
            print(f"# WARNING: serving on {ioc.host}, not loopback: other hosts can reach these PVs", file=out)
        for line in describe_pvs(ioc.config):
            print(f"#   {line}", file=out)
        prefix = getattr(ioc, "prefix", "")
        print(f"#   control PVs under {prefix}{ioc.config.ioc.control_prefix} (see docs/faults.md)", file=out)
        if prefix:
            print(f"# every PV above is served under the prefix {prefix}", file=out)
    for name, value in {**ioc.client_conf(), **ioc.interface_settings()}.items():
        # a machine's address list has spaces: quoted for a shell, as is after '=' otherwise
        print(f"export {name}={shlex.quote(value)}" if export else f"{name}={value}", file=out)
    print("# ready", file=out, flush=True)


def _with_options(config: IOCConfig, args: argparse.Namespace) -> IOCConfig:
    """The config with the command line's --prefix, --control-from and --write-from applied."""
    changes = {}
    if args.prefix is not None:
        if any(c.isspace() for c in args.prefix):
            raise ConfigError(f"--prefix must be a PV name prefix without spaces, got {args.prefix!r}")
        changes["prefix"] = args.prefix
    for key in ("control_from", "write_from"):
        entries = getattr(args, key)
        if entries is not None:
            changes[key] = check_entries(entries, f"--{key.replace('_', '-')}")
    return dataclasses.replace(config, ioc=dataclasses.replace(config.ioc, **changes)) if changes else config


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = _with_options(load_config(args.config), args)
    except ConfigError as exc:
        print(f"pva-softioc: {exc}", file=sys.stderr)
        return 2
    if args.list_pvs:
        for name in config.pv_names():
            print(config.ioc.prefix + name)
        return 0
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        _log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not all(is_loopback(h) for h in args.host.split(",")):
        _log.warning("serving on %s, not loopback", args.host)
    try:
        ioc = _build(config, args).start()
    except Exception as exc:  # noqa: BLE001 - report, don't dump a traceback on the operator
        print(f"pva-softioc: cannot start: {exc}", file=sys.stderr)
        return 1
    stop_when_down(ioc, stop)
    try:
        print_banner(ioc, sys.stdout, args.export, args.quiet)
        if args.view:
            from .view import run_view

            run_view(ioc, stop, args.duration)
        else:
            stop.wait(args.duration)
    finally:
        failure = _stopped(ioc)
    if failure is not None:
        print(f"pva-softioc: {failure}", file=sys.stderr)
        return 1
    return 0


def stop_when_down(ioc: SoftIOC | Machine, stop: threading.Event) -> None:
    """Set `stop` when `ioc` goes down by itself (its update loop died), so the command ends
    rather than wait on a server that no longer serves. A Machine reports a dead shard itself."""
    if not isinstance(ioc, SoftIOC):
        return

    def watch() -> None:
        try:
            ioc.wait()
        except UpdateLoopError:
            pass
        stop.set()

    threading.Thread(target=watch, name="softioc-watch", daemon=True).start()


def _stopped(ioc: SoftIOC | Machine) -> UpdateLoopError | None:
    """Stop `ioc`; why its update loop died, if it did."""
    try:
        ioc.stop()
    except UpdateLoopError as exc:
        return exc
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
