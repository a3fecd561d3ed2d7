"""pytest fixtures for tests against an isolated soft IOC, registered through `pytest11`.

    def test_readback(soft_ioc, pva_client):
        pva_client.put("DEMO:Q1:SET", 1.0)
        assert soft_ioc.audit.puts("DEMO:Q1:SET")[0].value == 1.0

Override `softioc_config` (a dict, a TOML path or an IOCConfig) to serve another machine.
Every IOC binds loopback on free ports, so parallel sessions never collide. The fixtures
and EPICS base's IOC live in softioc.testing; this is the path the entry point and the docs
name.
"""

from .testing import *  # noqa: F403 - this path re-exports that package's names
from .testing import __all__ as __all__
