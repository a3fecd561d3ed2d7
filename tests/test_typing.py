"""What type checkers are told matches what the code does at run time."""

from __future__ import annotations

import ast
import inspect

import epics_pva.core._interface
import epics_pva.core._settings
from epics_pva import Interface
from epics_pva.core import specs


def declared_for_type_checkers(cls: type) -> dict[str, str]:
    """{name: return annotation} of the properties a class declares under `if TYPE_CHECKING:`."""
    tree = ast.parse(inspect.getsource(epics_pva.core._interface))
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
    found: dict[str, str] = {}
    for block in node.body:
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING":
            for fn in block.body:
                if isinstance(fn, ast.FunctionDef) and fn.returns is not None:
                    found[fn.name] = ast.unparse(fn.returns)
    return found


def test_every_setting_attribute_is_declared_with_its_type():
    """Interface's setting attributes are made at run time; mypy reads them from declarations."""
    declared = declared_for_type_checkers(Interface)
    fields = list(specs())
    assert set(declared) == set(fields)
    annotations = inspect.get_annotations(epics_pva.core.Settings)
    assert declared == {name: annotations[name] for name in fields}
    interface = Interface(timeout=2.5)
    assert all(isinstance(getattr(type(interface), name), property) for name in fields)
    assert interface.timeout == 2.5
