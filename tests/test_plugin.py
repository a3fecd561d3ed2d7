"""The pytest plugin: fixtures reach users' tests through the pytest11 entry point."""

import subprocess
import sys
import textwrap

import pytest
from p4p.client.thread import RemoteError

import softioc.pytest_plugin
from softioc import SoftIOC

ONE_PV = {"ioc": {"update_rate": 50.0}, "setpoint": [{"name": "P:SET", "readback": "P:RBV", "initial": 2.5}]}


def test_plugin_is_registered_once_by_its_entry_point(pytestconfig):
    plugins = [p for p in pytestconfig.pluginmanager.get_plugins() if p is softioc.pytest_plugin]
    assert len(plugins) == 1
    assert pytestconfig.pluginmanager.get_plugin("softioc") is softioc.pytest_plugin


def test_default_fixtures_serve_the_demo(soft_ioc, pva_client):
    assert soft_ioc.running and soft_ioc.pv_names()[0] == "DEMO:Q1:SET"
    pva_client.put("DEMO:Q1:SET", 1.0, timeout=5)
    assert soft_ioc.audit.puts("DEMO:Q1:SET")[0].value == 1.0
    pva_client.put("DEMO:Q1:SET", 11.0, timeout=5)  # clamped to its limit, as an ao would
    assert float(pva_client.get("DEMO:Q1:SET", timeout=5)) == 10.0
    with pytest.raises(RemoteError, match="is read-only"):
        pva_client.put("DEMO:Q1:RBV", 1.0, timeout=5)


def test_demo_config_ships_with_the_package():
    path = softioc.pytest_plugin.demo_config_path()
    assert path.name == "demo.toml" and path.is_file()


@pytest.mark.parametrize("softioc_config", [ONE_PV])
def test_softioc_config_can_be_overridden(soft_ioc, pva_client):
    assert soft_ioc.pv_names() == ["P:SET", "P:RBV"]
    assert float(pva_client.get("P:SET", timeout=5)) == 2.5


def test_factory_starts_several_isolated_iocs(softioc_factory, client_for, tmp_path):
    path = tmp_path / "one.toml"
    path.write_text('[[setpoint]]\nname = "P:SET"\ninitial = 7.0\n')
    first, second = softioc_factory(ONE_PV), softioc_factory(path)
    assert isinstance(first, SoftIOC) and first.running and second.running
    assert float(client_for(first).get("P:SET", timeout=5)) == 2.5
    assert float(client_for(second).get("P:SET", timeout=5)) == 7.0


INNER = textwrap.dedent('''
    import pytest

    started = []

    @pytest.fixture
    def softioc_config():
        return {"setpoint": [{"name": "INNER:SET", "readback": "INNER:RBV", "initial": 1.5}]}

    def test_uses_the_fixtures(soft_ioc, pva_client):
        started.append(soft_ioc)
        assert float(pva_client.get("INNER:SET", timeout=5)) == 1.5

    def test_factory(softioc_factory):
        started.append(softioc_factory({"setpoint": [{"name": "F:SET"}]}))

    def test_everything_was_torn_down():
        assert len(started) == 2
        assert not any(ioc.running for ioc in started)
''')


def test_a_users_test_suite_gets_the_fixtures(tmp_path):
    """A fresh pytest process, outside this repository, finds the fixtures by the entry point alone."""
    (tmp_path / "test_inner.py").write_text(INNER)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
