"""An update loop that dies takes its soft IOC down, loudly: never a server that keeps answering
with values frozen at the moment the loop stopped.

The failures are injected into a real IOC on loopback: its step replaced in process, or, for the
command line, in the child process before `main` runs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest
from p4p.client.thread import Context

from softioc import Machine, SoftIOC
from softioc.errors import UpdateLoopError

CONFIG = {"ioc": {"update_rate": 50.0},
          "setpoint": [{"name": "L:SET", "readback": "L:RBV", "lag": "first_order", "tau": 0.2}]}


class Boom(BaseException):
    """Not an Exception: what a step's `except Exception` lets through, and once killed the thread silently."""


def _answers(conf: dict[str, str]) -> bool:
    """Whether the IOC answers a get from a fresh client within 1 s."""
    ctx = Context("pva", conf=conf, useenv=False)
    try:
        ctx.get("L:RBV", timeout=1.0)
        return True
    except TimeoutError:
        return False
    finally:
        ctx.close()


def _failing_after(ioc: SoftIOC, steps: int, error: BaseException) -> list[int]:
    """Make every step of `ioc` after the first `steps` raise `error`; the steps run are counted."""
    real, ran = ioc._step, [0]

    def step(now: float, due: float) -> None:
        ran[0] += 1
        if ran[0] > steps:
            raise error
        real(now, due)

    ioc._step = step  # type: ignore[method-assign]
    return ran


@pytest.mark.parametrize("error", [Boom("the step blew up"), RuntimeError("the step keeps failing")],
                         ids=["BaseException", "every step fails"])
def test_a_dead_update_loop_stops_the_server_and_stop_raises_why(error, caplog):
    ioc = SoftIOC(CONFIG).start()
    try:
        conf = ioc.client_conf()
        assert _answers(conf)
        with caplog.at_level(logging.CRITICAL, logger="softioc"):
            _failing_after(ioc, 2, error)
            with pytest.raises(UpdateLoopError, match=rf"update loop died: {type(error).__name__}: the step"):
                ioc.wait(timeout=20.0)
        assert not ioc.running and isinstance(ioc.failure, type(error))
        assert not _answers(conf)  # not frozen: gone
        assert any("update loop died" in r.getMessage() and "stopped serving" in r.getMessage()
                   for r in caplog.records if r.levelno == logging.CRITICAL)
    finally:
        with pytest.raises(UpdateLoopError, match="update loop died"):
            ioc.stop()
    ioc.stop()  # once said, a second stop is quiet


def test_one_failed_step_is_logged_and_the_loop_goes_on(caplog):
    with SoftIOC(CONFIG) as ioc:
        ran = _failing_after(ioc, 0, RuntimeError("once"))
        deadline = time.monotonic() + 10
        while ran[0] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        ioc._step = SoftIOC._step.__get__(ioc)  # type: ignore[method-assign]
        steps = ioc.stats.steps
        deadline = time.monotonic() + 10
        while ioc.stats.steps < steps + 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ioc.stats.steps >= steps + 5 and ioc.running and ioc.failure is None
        assert ioc.wait(timeout=0.01) is False
        assert _answers(ioc.client_conf())
    assert any("update step failed" in r.getMessage() for r in caplog.records)


_CLI = """
import sys
from softioc.server import SoftIOC

real = SoftIOC._step
ran = [0]

def step(self, now, due):
    ran[0] += 1
    if ran[0] > 5:
        raise MemoryError("injected into the update loop")
    real(self, now, due)

SoftIOC._step = step
from softioc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_command_line_exits_non_zero_naming_the_dead_loop(tmp_path):
    path = tmp_path / "ioc.toml"
    path.write_text('[ioc]\nupdate_rate = 50.0\n[[setpoint]]\nname = "L:SET"\nreadback = "L:RBV"\n')
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _CLI, str(path), "--duration", "120"], capture_output=True,
                          text=True, timeout=90)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "# ready" in done.stdout
    assert "pva-softioc: soft IOC update loop died: MemoryError: injected into the update loop" in done.stderr
    assert time.monotonic() - began < 60  # it stopped by itself, long before --duration


_BREAK_SHARDS = """
from softioc.server import SoftIOC

real = SoftIOC._step
ran = [0]

def step(self, now, due):
    ran[0] += 1
    if ran[0] > 20:
        raise SystemExit("injected into a shard's update loop")
    real(self, now, due)

SoftIOC._step = step
"""


def test_a_shard_whose_update_loop_dies_exits_1_and_the_machine_reports_it(tmp_path, monkeypatch, caplog):
    """Every shard's step breaks after 20 steps (a module its interpreter runs at start-up)."""
    (tmp_path / "sitecustomize.py").write_text(_BREAK_SHARDS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    config = {"ioc": {"update_rate": 20.0}, "setpoint": [{"name": "S0:SET"}, {"name": "S1:SET"}]}
    with caplog.at_level(logging.WARNING, logger="softioc"), Machine(config, processes=2) as machine:
        deadline = time.monotonic() + 60
        while len(machine.dead()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the machine's own watch polls the shard processes too
        assert machine.dead() == {0: 1, 1: 1}
    said = [r.getMessage() for r in caplog.records]
    assert any("soft IOC update loop died: SystemExit: injected into a shard's update loop" in m for m in said)


def test_a_python_observable_raising_a_base_exception_takes_the_ioc_down():
    """An Exception from the user's function is the PV's INVALID alarm; a BaseException means stop."""
    calls = []

    def objective(x: float) -> float:
        calls.append(x)
        if len(calls) > 3:
            raise Boom("the user's function asked to stop")
        return 2 * x

    config = {**CONFIG, "observable": [{"name": "L:OBJ", "inputs": {"x": "L:RBV"}}]}
    ioc = SoftIOC(config, observables={"L:OBJ": objective}).start()
    try:
        conf = ioc.client_conf()
        with pytest.raises(UpdateLoopError, match="update loop died: Boom: the user's function asked to stop"):
            ioc.wait(timeout=20.0)
        assert not _answers(conf)
    finally:
        with pytest.raises(UpdateLoopError):
            ioc.stop()
