"""One Badger configuration per test process, shared by every test module that runs Badger.

Badger's settings are process-wide (read when its plugin factory is first imported), so the
modules that run it (test_badger.py headless, test_badger_gui.py in the GUI) must agree on one
plugin root whichever runs first, in one process or on one xdist worker: the installed
interface plugin, the example environment exactly as shipped, and a copy of it that gives up
on a readback after 1 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO_ENV = REPO / "examples" / "badger" / "environments" / "demo"

_root: Path | None = None


def badger_plugin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin root Badger is configured with in this process (installed on first call)."""
    global _root
    if _root is None:
        from epics_pva.badger.plugin import install_plugin
        from epics_pva.badger.runner import configure_badger

        base = tmp_path_factory.mktemp("badger")
        fast = base / "sources" / "demo_fast"
        fast.mkdir(parents=True)
        source = (DEMO_ENV / "__init__.py").read_text()
        assert "count_down=15" in source and 'name = "demo"' in source
        (fast / "__init__.py").write_text(
            source.replace("count_down=15", "count_down=1").replace('name = "demo"', 'name = "demo_fast"'))
        (fast / "configs.yaml").write_text((DEMO_ENV / "configs.yaml").read_text().replace("name: demo", "name: demo_fast"))
        root = base / "plugins"
        install_plugin(root, environments=[DEMO_ENV, fast])
        configure_badger(plugin_root=root, workdir=base / "work")
        _root = root
    return _root
