"""An Interface in forked and spawned child processes, against the soft IOC.

A child forked while its parent holds an open p4p context (client or server) hangs, so the
scenario runs in a driver subprocess that holds only the Interface under test; the soft IOC
stays in the pytest process, where its audit shows what each process sent. Run as a script,
this file is that driver: ``python test_interface_processes.py fork|spawn '<client conf json>'``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import queue
import subprocess
import sys
from functools import partial
from typing import Any

import pytest

from epics_pva import Interface, wait_for_readback

CONFIG = {
    "ioc": {"seed": 1, "update_rate": 50.0, "time_scale": 10.0},
    "setpoint": [
        {"name": "F:A:SET", "readback": "F:A:RBV", "limits": [-10, 10], "lag": "first_order",
         "tau": 0.3, "noise": 0.0},
        {"name": "F:B:SET", "limits": [-10, 10]},
    ],
}
NAMES = ["F:A:RBV", "F:B:SET"]
CONFIGS = {"F:A:SET": partial(wait_for_readback, readback_pv="F:A:RBV", tolerance=0.01,
                              count_down=5.0, offset=0.0)}


# ---- the driver (runs in its own process) -------------------------------------------------

def _child(interface: Interface, results: Any) -> None:
    """In the child: read, then set with validation (a monitor) in parallel (the pool)."""
    try:
        values = interface.get_values(NAMES)
        done = interface.set_values({"F:A:SET": 0.25, "F:B:SET": -0.25}, configs=CONFIGS)
        results.put({"values": values, "readback": done["F:A:SET"].validation_result,
                     "pid": os.getpid()})
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which asserts
        results.put({"error": repr(exc)})


def _use_p4p_monitor_workers(conf: dict[str, str]) -> None:
    """Start all of p4p's default monitor worker threads here, as a busy parent process would."""
    from p4p.client.thread import Context

    ctx = Context("pva", conf=conf, useenv=False)
    updates = queue.Queue()
    subscriptions = [ctx.monitor(NAMES[0], updates.put) for _ in range(4)]
    for _ in subscriptions:
        updates.get(timeout=5)
    for subscription in subscriptions:
        subscription.close()
    ctx.close()  # a context left open would hang any forked child


def _drive(method: str, conf: dict[str, str]) -> dict[str, Any]:
    _use_p4p_monitor_workers(conf)
    interface = Interface(conf=conf, timeout=2.0, retry_delay=0.1)
    report: dict[str, Any] = {"parent_pid": os.getpid()}
    interface.set_values({"F:A:SET": 0.5, "F:B:SET": 0.5}, configs=CONFIGS)  # context, pool, monitor
    report["before"] = interface.get_values(NAMES)
    mp = multiprocessing.get_context(method)
    results = mp.Queue()
    child = mp.Process(target=_child, args=(interface, results))
    child.start()
    try:
        report["child"] = results.get(timeout=20)
    except queue.Empty:
        report["child"] = {"error": "the child process hung (no result within 20 s)"}
    child.join(10)
    if child.is_alive():  # never leave a hung child behind
        child.kill()
        child.join()
    report["exitcode"] = child.exitcode
    interface.set_values({"F:A:SET": 0.75, "F:B:SET": 0.75}, configs=CONFIGS)  # the parent goes on
    report["after"] = interface.get_values(NAMES)
    interface.close()
    return report


# ---- the tests ----------------------------------------------------------------------------

@pytest.fixture
def softioc_config():
    return CONFIG


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_child_process_gets_a_working_interface(soft_ioc, method):
    conf = json.dumps(soft_ioc.client_conf())
    done = subprocess.run([sys.executable, __file__, method, conf], capture_output=True,
                          text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    child = report["child"]
    assert "error" not in child, child["error"]
    assert report["exitcode"] == 0
    assert child["pid"] != report["parent_pid"]
    assert child["values"]["F:B:SET"] == 0.5  # read what the parent set
    assert abs(child["readback"] - 0.25) <= 0.01  # validated through a monitor in the child
    assert abs(report["after"]["F:A:RBV"] - 0.75) <= 0.01 and report["after"]["F:B:SET"] == 0.75
    sent = [(r.pv, r.value) for r in soft_ioc.audit.puts(outcome="accepted")]
    assert [v for pv, v in sent if pv == "F:A:SET"] == [0.5, 0.25, 0.75]  # parent, child, parent
    assert [v for pv, v in sent if pv == "F:B:SET"] == [0.5, -0.25, 0.75]


def test_an_interface_pickles_to_its_settings_and_connects_lazily(soft_ioc):
    original = Interface(read_only=True, parallel=False, timeout=0.5, put_attempts=3,
                         retry_delay=0.2, conf=soft_ioc.client_conf(), nan_on_read_error=True,
                         max_workers=4)
    original.get_values(NAMES)
    copy = pickle.loads(pickle.dumps(original))
    assert copy._context is None
    for name in ("read_only", "parallel", "timeout", "put_attempts", "retry_delay", "conf",
                 "nan_on_read_error", "max_workers"):
        assert getattr(copy, name) == getattr(original, name)
    assert copy.get_values(NAMES) == original.get_values(NAMES)
    original.close()
    copy.close()


if __name__ == "__main__":
    print(json.dumps(_drive(sys.argv[1], json.loads(sys.argv[2]))))
