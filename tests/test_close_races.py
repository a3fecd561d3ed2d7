"""close() and os.fork() racing reads, parallel sets and validated sets: never a crash or a hang.

Each round makes an Interface, starts a reader (get_values), a parallel setter (set_values)
and a validated setter (wait_for_readback on each PV) against a soft IOC in its own process
on loopback, and closes the Interface (Badger's reset_interface) at a random moment while
they run; one round in four forks instead. The calls cut off must end at once, each PV
failing as closed (ContextClosedError), and close() must return within CLOSE_BOUND s.

The rounds run in child processes started afresh (never a fork of pytest, which holds a p4p
server), several rounds per child, so a crash is counted, not fatal; each child is bounded
by CHILD_LIMIT s. Run as a script, this file is that child:
``python test_close_races.py '<client conf json>' ROUNDS SEED``; it prints its counts as JSON.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PVS = [f"CR:{n:02d}:SET" for n in range(16)]
CONFIG = {
    "ioc": {"seed": 11, "update_rate": 20.0, "time_scale": 1.0},
    "setpoint": [{"name": pv, "readback": pv.replace(":SET", ":RBV"), "limits": [-10, 10], "lag": "none",
                  "noise": 0.0} for pv in PVS],
}
CHILDREN = 4  # run at once
ROUNDS = 40  # per child: 160 rounds, each cutting off three calls in flight
CHILD_LIMIT = 120.0  # s: a child still running then is a hang
CLOSE_BOUND = 5.0  # s: the longest close() may take, whatever is in flight
END_BOUND = 15.0  # s: the longest a cut-off call may take to return after close()
CLOSED = ("context was closed",)


# ---- the child (runs as a script) ---------------------------------------------------------------

def _outcome(exc: BaseException | None) -> str:
    """ok, closed (every PV failed as closed), or other: what went wrong, in one line."""
    if exc is None:
        return "ok"
    results = getattr(exc, "results", None)
    texts = ([str(r.error or r.reason) for r in results.values() if r.status != "set"]
             if isinstance(results, dict) else [])
    failures = getattr(exc, "failures", None)
    if isinstance(failures, dict):
        texts = [str(why) for why in failures.values()]
    cut = [t for t in texts if any(c in t for c in CLOSED)]
    # a set refused before sending says so for every PV: those closed, the rest "not sent"
    if cut and all(t in cut or t.startswith("not sent: ") for t in texts):
        return "closed"
    return f"other: {type(exc).__name__}: " + "; ".join(t for t in texts if not any(c in t for c in CLOSED))[:300]


def _round(conf: dict[str, str], rng: random.Random, fork: bool, counts: dict[str, Any]) -> None:
    from epics_pva import Interface, wait_for_readback

    itf = Interface(conf=conf, timeout=5.0, retry_delay=0.05, max_workers=8)
    validate = partial(wait_for_readback, readback_pv="", tolerance=100.0, count_down=10.0, offset=0.0)
    configs = {pv: partial(validate, readback_pv=pv.replace(":SET", ":RBV")) for pv in PVS}
    stop = threading.Event()

    def work(kind: str) -> None:
        while not stop.is_set():
            try:
                if kind == "read":
                    itf.get_values(PVS)
                else:
                    inputs = {pv: rng.uniform(-1.0, 1.0) for pv in PVS}
                    itf.set_values(inputs, configs if kind == "validated" else None)
                outcome = "ok"
            except Exception as exc:  # noqa: BLE001 - classified and counted
                outcome = _outcome(exc)
            key = outcome if not outcome.startswith("other") else "other"
            counts[f"{kind}_{key}"] = counts.get(f"{kind}_{key}", 0) + 1
            if key == "other":
                counts.setdefault("others", []).append(outcome)

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(work, kind) for kind in ("read", "parallel", "validated")]
        time.sleep(rng.uniform(0.0, 0.2))  # calls in flight: starting, waiting, validating
        start = time.monotonic()
        if fork:
            pid = os.fork()
            if pid == 0:  # the forked child: a fresh context of its own works at once
                try:
                    itf.get_values(PVS[:2])
                    os._exit(0)
                except BaseException as exc:  # noqa: BLE001 - its exit status says it, stderr why
                    os.write(2, f"forked child's read failed: {type(exc).__name__}: {exc}\n".encode())
                    os._exit(3)
            counts["forks"] += 1
        else:
            itf.close()
            counts["closes"] += 1
        took = time.monotonic() - start
        counts["longest_close_s"] = max(counts["longest_close_s"], round(took, 3))
        stop.set()
        ended = time.monotonic()
        for future in futures:
            future.result(timeout=END_BOUND)  # a TimeoutError here is a hang: the child fails
        counts["longest_end_s"] = max(counts["longest_end_s"], round(time.monotonic() - ended, 3))
    if fork:
        deadline = time.monotonic() + END_BOUND
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                counts["fork_child_failed"] += int(status != 0)
                break
            if time.monotonic() > deadline:  # its stacks to stderr (faulthandler), then it ends
                os.kill(pid, signal.SIGABRT)
                time.sleep(2.0)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                counts["fork_child_hung"] += 1
                break
            time.sleep(0.05)
    itf.close()


def child_main(conf: dict[str, str], rounds: int, seed: int) -> None:
    faulthandler.enable()  # a crash prints every thread's stack
    faulthandler.dump_traceback_later(CHILD_LIMIT - 10, exit=True)  # and so does a hang
    rng = random.Random(seed)
    counts: dict[str, Any] = {"rounds": 0, "closes": 0, "forks": 0, "longest_close_s": 0.0,
                              "longest_end_s": 0.0, "fork_child_failed": 0, "fork_child_hung": 0}
    for n in range(rounds):
        _round(conf, rng, fork=n % 4 == 3, counts=counts)
        counts["rounds"] += 1
    print(json.dumps(counts), flush=True)


# ---- the test -----------------------------------------------------------------------------------

def _run_child(conf: dict[str, str], seed: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, json.dumps(conf), str(ROUNDS), str(seed)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CHILD_LIMIT, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired as exc:
        return {"hung": True, "stderr": (exc.stderr or b"")[-3000:]}
    if done.returncode != 0:
        return {"crashed": done.returncode, "stderr": done.stderr[-3000:]}
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if report["fork_child_hung"] or report["fork_child_failed"]:
        report["stderr"] = done.stderr[-3000:]
    return report


# the IOC's start (60 s at most), then the children (CHILD_LIMIT each, run at once): a hang is
# then the child's, reported as such, not the pytest worker's timeout
@pytest.mark.timeout(60 + CHILD_LIMIT + 30)
def test_close_and_fork_never_crash_or_hang_whatever_is_in_flight():
    from devtools.ioc_process import IOCProcess

    with IOCProcess(CONFIG, start_timeout=60.0) as ioc, ThreadPoolExecutor(CHILDREN) as pool:
        reports = list(pool.map(partial(_run_child, ioc.client_conf), range(CHILDREN)))
    crashed = [r for r in reports if "crashed" in r]
    hung = [r for r in reports if "hung" in r]
    good = [r for r in reports if "rounds" in r]
    totals: dict[str, Any] = {}
    for report in good:
        for key, value in report.items():
            if key.startswith("longest"):
                totals[key] = max(totals.get(key, 0.0), value)
            elif key == "others":
                totals.setdefault(key, []).extend(value)
            elif key == "stderr":
                continue
            else:
                totals[key] = totals.get(key, 0) + value
    failed = crashed + hung + [r for r in good if r["fork_child_hung"]]
    summary = (f"{len(reports)} children: {len(crashed)} crashed, {len(hung)} hung; totals {totals}; "
               f"first failure: {failed[:1]}")
    assert not crashed and not hung, summary
    assert totals["rounds"] == CHILDREN * ROUNDS and totals["closes"] + totals["forks"] == totals["rounds"], summary
    assert totals["fork_child_hung"] == 0 and totals["fork_child_failed"] == 0, summary
    assert totals["longest_close_s"] < CLOSE_BOUND, summary
    assert not totals.get("others"), summary  # every call cut off failed as closed, nothing else
    cut_off = sum(v for k, v in totals.items() if k.endswith("_closed"))
    assert cut_off >= totals["rounds"], summary  # the closes really landed on calls in flight


if __name__ == "__main__":
    child_main(json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
