"""`python -m softioc CONFIG`: what it prints is exactly what a client needs, and it stops cleanly."""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from p4p.client.thread import Context

from softioc.pytest_plugin import demo_config_path

SETTING = re.compile(r"^(export )?(EPICS_PVA_[A-Z_]+)=(\S*)$")
DEMO_PVS = ["DEMO:Q1:SET", "DEMO:Q1:RBV", "DEMO:Q2:SET", "DEMO:Q2:RBV", "DEMO:OBJ"]
# every test starts `python -m softioc` (p4p, numpy): a second on a quiet machine, tens of
# seconds on a loaded 2-core one; bounds for one start, and for a test of a few of them
READY_S = 90
pytestmark = pytest.mark.timeout(4 * READY_S)


def clean_env():
    """The environment without any EPICS settings of the machine running the tests."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}


def run_cli(*args, timeout=READY_S):
    return subprocess.run([sys.executable, "-m", "softioc", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=clean_env())


class Running:
    """A CLI soft IOC in a subprocess; reads its output up to `# ready`."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "softioc", *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=clean_env())
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.banner = []
        deadline = time.monotonic() + READY_S
        while not self.banner or self.banner[-1] != "# ready":
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"no '# ready' within {READY_S} s; got {self.banner}") from None
            if line is None:
                raise AssertionError(f"exited before '# ready': {self.banner} {self.proc.stderr.read()}")
            self.banner.append(line)

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def settings(self):
        return dict(m.group(2, 3) for m in map(SETTING.match, self.banner) if m)

    def stop(self, signum=signal.SIGTERM):
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=15)
        return code, self.proc.stderr.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def serve():
    started = []

    def start(*args):
        running = Running(*args)
        started.append(running)
        return running

    yield start
    for running in started:
        running.kill()


def test_duration_serves_then_exits_by_itself():
    result = run_cli(demo_config_path(), "--duration", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "# ready"
    for pv in DEMO_PVS:
        assert any(line.startswith("#") and pv in line for line in lines), pv
    assert any("DEMO:Q1:SET  setpoint  double limits [-10, 10]" in line for line in lines)
    assert any("DEMO:OBJ  observable  = (q1 - 1.5)**2 + (q2 + 0.5)**2" in line for line in lines)
    settings = dict(m.group(2, 3) for m in map(SETTING.match, lines) if m)
    assert set(settings) >= {"EPICS_PVA_ADDR_LIST", "EPICS_PVA_AUTO_ADDR_LIST", "EPICS_PVA_SERVER_PORT",
                             "EPICS_PVA_BROADCAST_PORT"}
    assert settings["EPICS_PVA_AUTO_ADDR_LIST"] == "NO"
    assert settings["EPICS_PVA_ADDR_LIST"].startswith("127.0.0.1:")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_printed_settings_connect_a_client_and_a_signal_stops_it(serve, signum):
    ioc = serve(demo_config_path(), "--duration", "60")
    ctx = Context("pva", conf=ioc.settings(), useenv=False)
    try:
        ctx.put("DEMO:Q2:SET", 0.5, timeout=5)
        assert float(ctx.get("DEMO:Q2:SET", timeout=5)) == 0.5
        assert [str(v.raw["value"]) != "" for v in ctx.get(DEMO_PVS, timeout=5)] == [True] * 5
    finally:
        ctx.close()
    code, stderr = ioc.stop(signum)
    assert code == 0 and "Traceback" not in stderr


def test_export_lines_can_be_sourced_by_a_shell(serve, tmp_path):
    ioc = serve(demo_config_path(), "--export", "--duration", "60")
    exports = [line for line in ioc.banner if line.startswith("export ")]
    assert len(exports) >= 4 and all(SETTING.match(line) for line in exports)
    script = tmp_path / "settings.sh"
    script.write_text("\n".join(exports) + "\n")
    client = ("from p4p.client.thread import Context; "
              "print(Context('pva').get('DEMO:Q1:SET', timeout=5).raw['value'])")
    child = subprocess.run(["sh", "-c", f'. "{script}" && exec "{sys.executable}" -c "{client}"'],
                           capture_output=True, text=True, timeout=30, env=clean_env())
    assert child.returncode == 0, child.stderr
    assert float(child.stdout) == 0.5  # the shell's environment alone reached the IOC (its initial value)
    assert ioc.stop()[0] == 0


def test_quiet_prints_only_the_settings(serve):
    ioc = serve(demo_config_path(), "--quiet", "--duration", "60")
    assert ioc.banner[-1] == "# ready"
    assert all(SETTING.match(line) for line in ioc.banner[:-1])
    assert not any("DEMO:" in line for line in ioc.banner)
    assert ioc.stop()[0] == 0


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ports_are_options(serve):
    tcp, udp = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    ioc = serve(demo_config_path(), "--port", tcp, "--broadcast-port", udp, "--quiet", "--duration", "60")
    settings = ioc.settings()
    assert settings["EPICS_PVA_SERVER_PORT"] == str(tcp)
    assert settings["EPICS_PVA_ADDR_LIST"] == f"127.0.0.1:{udp}"
    ctx = Context("pva", conf=settings, useenv=False)
    try:
        assert float(ctx.get("DEMO:Q1:SET", timeout=5)) == 0.5  # the demo's initial value
    finally:
        ctx.close()
    assert ioc.stop()[0] == 0


def test_list_pvs_prints_names_and_does_not_serve():
    result = run_cli(demo_config_path(), "--list-pvs")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == DEMO_PVS


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "pva-softioc"
    result = subprocess.run([str(script), str(demo_config_path()), "--list-pvs"], capture_output=True,
                            text=True, timeout=30, env=clean_env())
    assert result.returncode == 0 and result.stdout.splitlines() == DEMO_PVS


def test_bad_config_exits_2_naming_file_and_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[[setpoint]]\nname = "A:SET"\ntua = 1.0\n')
    result = run_cli(config, "--duration", "1")
    assert result.returncode == 2
    assert f"{config}: [[setpoint]] #1 ('A:SET'): unknown key 'tua'" in result.stderr
    assert "Traceback" not in result.stderr and "# ready" not in result.stdout


def test_bad_expression_and_missing_file_exit_2(tmp_path):
    config = tmp_path / "evil.toml"
    config.write_text('[[setpoint]]\nname = "A"\n[[observable]]\nname = "O"\n'
                      'expression = "__import__(\'os\').system(\'true\')"\ninputs = { a = "A" }\n')
    result = run_cli(config, "--list-pvs")
    assert result.returncode == 2
    assert f"{config}: [[observable]] #1 ('O'): key 'expression'" in result.stderr
    missing = run_cli(tmp_path / "missing.toml", "--list-pvs")
    assert missing.returncode == 2 and "no such config file" in missing.stderr
