"""pytest fixtures for tests against an isolated soft IOC (registered through `pytest11`).

    def test_readback(soft_ioc, pva_client):
        pva_client.put("DEMO:Q1:SET", 1.0)
        assert soft_ioc.audit.puts("DEMO:Q1:SET")[0].value == 1.0

Override `softioc_config` (a dict, a TOML path or an IOCConfig) to serve another machine;
call `softioc_factory(config, overrides={...})` to serve a variant of one in a single test.
`pva_interface` is an epics_pva.Interface bound to `soft_ioc`. Every IOC binds loopback on
free ports, so parallel sessions never collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .. import _guard

if TYPE_CHECKING:
    from ..config import IOCConfig
    from ..machine import Machine
    from ..server import SoftIOC

__all__ = ["demo_config_path", "epics_base_ioc", "pva_client", "pva_interface", "soft_ioc", "softioc_config",
           "softioc_factory"]

# pytest imports this module in every session of an environment holding the package: p4p,
# numpy and the soft IOC are imported inside the fixtures, only by the tests that use them
_guard.ensure_this_package()


def demo_config_path() -> Path:
    """The demo config shipped with the package."""
    return Path(str(resources.files("softioc") / "examples" / "demo.toml"))


@pytest.fixture
def softioc_factory() -> Iterator[Callable[..., SoftIOC | Machine]]:
    """Call with a config (dict, path or IOCConfig) to get a started IOC (softioc.serve: a Machine
    when the config asks for several processes); all stop at teardown.

    `overrides` (a dict shaped like the config file) is deep-merged into the config first:
    `factory(config, overrides={"ioc": {"time_scale": 10}})` serves the same machine ten times
    faster (softioc.config.with_overrides; ConfigError naming a bad key). Other keyword
    arguments go to softioc.serve (e.g. `observables={"NAME": fn}`, `audit=`).
    """
    from ..config import with_overrides
    from ..machine import serve

    started: list[SoftIOC | Machine] = []

    def factory(config: Any, overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> SoftIOC | Machine:
        ioc = serve(with_overrides(config, overrides) if overrides else config, **kwargs)
        ioc.start()
        started.append(ioc)
        return ioc

    yield factory
    for ioc in reversed(started):
        ioc.stop()


@pytest.fixture
def softioc_config() -> dict[str, Any] | str | Path | IOCConfig:
    """The config `soft_ioc` serves; the shipped demo machine unless a test module overrides it."""
    return demo_config_path()


@pytest.fixture
def soft_ioc(softioc_factory: Callable[..., SoftIOC | Machine], softioc_config: Any) -> SoftIOC | Machine:
    """A started soft IOC serving `softioc_config` (a Machine if it asks for several processes),
    stopped after the test."""
    return softioc_factory(softioc_config)


@pytest.fixture
def pva_client(soft_ioc: SoftIOC | Machine) -> Iterator[Any]:
    """A p4p client Context connected to `soft_ioc` only (never the environment's network)."""
    from p4p.client.thread import Context

    ctx = Context("pva", conf=soft_ioc.client_conf(), useenv=False)
    yield ctx
    ctx.close()


@pytest.fixture
def pva_interface(soft_ioc: SoftIOC | Machine) -> Iterator[Any]:
    """An epics_pva.Interface bound to `soft_ioc` only (`conf=soft_ioc.client_conf()`, and
    `use_env=False`: no EPICS_PVA_INTERFACE_* setting of the environment), closed after the test."""
    from epics_pva import Interface

    interface = Interface(conf=soft_ioc.client_conf(), use_env=False)
    yield interface
    interface.close()


@pytest.fixture(scope="module")
def epics_base_ioc() -> Iterator[Any]:
    """EPICS base's softIoc (QSRV2) serving the shipped examples/epics_base.db (prefix BASE:)
    on loopback with free ports: one per test module, stopped after it. A test that kills or
    changes it must leave it running and as it found it. See softioc.testing.EpicsBaseIOC."""
    from ._epics_base import EpicsBaseIOC  # imported here: only tests that ask for it start one

    ioc = EpicsBaseIOC().start()
    yield ioc
    ioc.stop()
