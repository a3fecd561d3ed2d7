"""Tests of the soft IOC's parts that need no server: the model, the config reader, the
expression language, the fault book. Here a test that starts a p4p server or a process
fails: it belongs one folder up, beside the tests that serve."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from p4p.server import Server


def _refused(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a test in tests/unit started a p4p server or a process: move it to tests/")


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(Server, "__init__", _refused)
    monkeypatch.setattr(subprocess.Popen, "__init__", _refused)
    yield
