"""The README's first command: a soft IOC in a child process, and the Interface driving it.

Starts `python -m softioc` on the shipped demo config (loopback, free ports), reads the client
settings it prints, then reads, sets and validates through epics_pva.Interface while a
monitor prints the lagging readback as it settles; ends with a readback in INVALID alarm being
refused. Stops the IOC and exits in a few seconds.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

from p4p.client.thread import Context, RemoteError

from epics_pva import EpicsPvaError, Interface, ReadError, wait_for_readback

CONFIG = Path(__file__).resolve().parents[1] / "softioc" / "examples" / "demo.toml"


def start_ioc() -> tuple[subprocess.Popen, dict[str, str]]:
    """Start the soft IOC CLI and return it with the EPICS_PVA_* settings it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "softioc", str(CONFIG), "--duration", "60"],  # never outlives us long
        stdout=subprocess.PIPE, text=True,
    )
    conf: dict[str, str] = {}
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        line = line.rstrip()
        print(f"  ioc| {line}")
        if line == "# ready":
            break
        if not line.startswith("#") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            conf[name] = value
        if time.monotonic() > deadline:
            break
    if not conf:
        proc.kill()
        raise SystemExit("the soft IOC did not start")
    return proc, conf


def watch(conf: dict[str, str], pv: str, target: float, stop: threading.Event) -> threading.Thread:
    """Print each readback update of `pv` with its distance to `target`, until `stop`."""
    t0 = time.monotonic()
    shown = [-1.0]

    def run() -> None:
        with Context("pva", conf=conf, useenv=False) as ctx:
            def show(value) -> None:
                now = time.monotonic() - t0
                if not isinstance(value, Exception) and now - shown[0] >= 0.2:  # 5 lines a second
                    shown[0] = now
                    print(f"  {now:5.2f} s  {pv} = {float(value):+.4f}"
                          f"   (target {target:+.2f}, off by {float(value) - target:+.4f})")
            sub = ctx.monitor(pv, show)
            stop.wait(10)
            sub.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def show_invalid_readback(conf: dict[str, str], pv: str = "DEMO:Q1:RBV") -> None:
    """Arm the soft IOC's alarm fault on `pv`, show get_values refusing it and get_readings reporting it."""
    fault = f"{pv} alarm severity=INVALID message='power supply off'"
    with Interface(conf=conf, timeout=2.0) as interface, Context("pva", conf=conf, useenv=False) as ctx:
        try:
            ctx.put("SOFTIOC:FAULT:ARM", fault, timeout=2.0)
        except RemoteError as exc:
            print(f"  skipped: this step needs the soft IOC's alarm fault ({exc})")
            return
        try:
            deadline = time.monotonic() + 5.0  # the fault shows from the IOC's next update
            while interface.get_readings([pv])[pv].ok and time.monotonic() < deadline:
                time.sleep(0.05)
            try:
                interface.get_values([pv])
                print(f"  {pv} never went INVALID")
            except ReadError as exc:
                print(f"  {type(exc).__name__}: {exc}")
            reading = interface.get_readings([pv])[pv]
            print(f"  get_readings reports it: value {reading.value:+.4f}, severity {reading.severity},"
                  f" message {reading.message!r}, ok {reading.ok}")
        finally:
            ctx.put("SOFTIOC:FAULT:CLEAR", pv, timeout=2.0)


def main() -> int:
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="  log| %(levelname)s %(name)s: %(message)s")
    print("1. Starting the soft IOC (python -m softioc softioc/examples/demo.toml)")
    proc, conf = start_ioc()
    try:
        with Interface(conf=conf, timeout=2.0, retry_delay=0.2) as interface:
            print("\n2. Reading the machine")
            for name, value in interface.get_values(["DEMO:Q1:RBV", "DEMO:Q2:RBV", "DEMO:OBJ"]).items():
                print(f"  {name} = {value:+.4f}")

            print("\n3. Setting Q1 = 1.5 and Q2 = -0.5, waiting for Q1's readback (tau = 0.5 s) to settle")
            stop = threading.Event()
            watcher = watch(conf, "DEMO:Q1:RBV", 1.5, stop)
            time.sleep(0.3)  # let the monitor connect so the whole settle is shown
            results = interface.set_values(
                {"DEMO:Q1:SET": 1.5, "DEMO:Q2:SET": -0.5},
                configs={"DEMO:Q1:SET": partial(wait_for_readback, readback_pv="DEMO:Q1:RBV",
                                                tolerance=0.01, count_down=10, offset=0)},
            )
            stop.set()
            watcher.join(5)
            for pv, result in results.items():
                print(f"  {pv}: {result.status} after {result.attempts} put(s) in {result.elapsed:.2f} s;"
                      f" validation returned {result.validation_result!r}")
            time.sleep(1.0)  # Q2 ramps at 2 A/s
            print(f"  objective DEMO:OBJ = {interface.get_value('DEMO:OBJ'):+.4f} (minimum 0 at Q1=1.5, Q2=-0.5)")

            print("\n4. A value outside the PV's limits is refused before anything is sent")
            try:
                interface.set_value("DEMO:Q1:SET", 25.0)
            except EpicsPvaError as exc:
                print(f"  {type(exc).__name__}: {exc}")

            print("\n5. One put timeout injected over the wire; the interface retries once")
            with Context("pva", conf=conf, useenv=False) as ctx:
                ctx.put("SOFTIOC:FAULT:ARM", "DEMO:Q2:SET put_timeout count=1", timeout=2.0)
            result = interface.set_value("DEMO:Q2:SET", 0.0)
            print(f"  DEMO:Q2:SET: {result.status} after {result.attempts} attempts")

        print("\n6. Read-only mode sends nothing")
        with Interface(conf=conf, read_only=True) as dry, Context("pva", conf=conf, useenv=False) as ctx:
            before = int(ctx.get("SOFTIOC:PUTS"))
            dry.set_values({"DEMO:Q1:SET": 3.0})
            time.sleep(0.2)  # more than one update period of the IOC
            print(f"  puts received by the IOC: before {before}, after {int(ctx.get('SOFTIOC:PUTS'))}")

        print("\n7. A readback in INVALID alarm (a tripped power supply) is refused, not read as a value")
        show_invalid_readback(conf)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"\nSoft IOC stopped (exit code {proc.returncode}). Done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
