"""The error hierarchy and its messages: what an operator reads in Badger's dialog."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import epics_pva
from epics_pva import (
    EpicsPvaError,
    InvalidInputError,
    PutError,
    PutTimeoutError,
    ReadError,
    SetResult,
    SetValuesError,
    ValidationError,
)


def test_every_error_is_an_epics_pva_error_and_exported():
    for cls in (InvalidInputError, ReadError, PutError, PutTimeoutError, ValidationError,
                SetValuesError):
        assert issubclass(cls, EpicsPvaError)
        assert cls.__name__ in epics_pva.__all__
    assert issubclass(InvalidInputError, ValueError)  # refused inputs are bad values
    assert issubclass(PutTimeoutError, TimeoutError) and issubclass(PutTimeoutError, PutError)


def test_put_errors_name_pv_value_and_cause():
    error = PutError("X:SET", 1.5, "put rejected by the server: interlock", attempts=1)
    assert str(error) == "X:SET = 1.5: put rejected by the server: interlock"
    timeout = PutTimeoutError("X:SET", -2.0, attempts=3, timeout=0.5)
    assert str(timeout) == "X:SET = -2.0: put timed out on all 3 attempt(s) (no completion within 0.5 s each)"
    assert (timeout.pv, timeout.value, timeout.attempts, timeout.timeout) == ("X:SET", -2.0, 3, 0.5)


def test_long_values_are_shortened_in_messages():
    message = str(PutError("X:WAVE", np.arange(1000.0), "put rejected by the server: too long"))
    assert message.startswith("X:WAVE = [") and "..." in message and len(message) < 140


def test_validation_error_carries_its_cause():
    cause = ValueError("PV X:SET: readback X:RBV = 0 did not reach the expected value 1")
    error = ValidationError("X:SET", 1.0, cause)
    assert error.cause is cause
    assert str(error) == f"X:SET = 1.0: validation failed: {cause}"
    assert str(ValidationError("X:SET", 1.0, RuntimeError())) == "X:SET = 1.0: validation failed: RuntimeError"


def test_read_error_lists_each_failure_and_keeps_what_was_read():
    error = ReadError({"A": "no reply within 1 s", "B": "disconnected from its server"}, {"C": 1.0})
    assert error.failures == {"A": "no reply within 1 s", "B": "disconnected from its server"}
    assert error.values == {"C": 1.0}
    assert str(error) == (
        "Could not read 2 of 3 PV(s):\n  A: no reply within 1 s\n  B: disconnected from its server")


def test_invalid_input_error_lists_every_problem():
    error = InvalidInputError({"A": "nan is not a finite number", "": "empty PV name"})
    assert str(error) == (
        "Refused to set anything: 2 invalid input(s)\n  A: nan is not a finite number\n  : empty PV name")


def test_set_values_error_reports_every_outcome():
    results = {
        "A": SetResult("A", 1.0, "set", attempts=1, validation_result=1.01),
        "B": SetResult("B", 2.0, "failed", attempts=2, error=PutTimeoutError("B", 2.0, 2, 1.0)),
        "C": SetResult("C", 3.0, "not_attempted"),
    }
    error = SetValuesError(results)
    assert error.results == results and list(error.failed) == ["B"]
    assert str(error) == (
        "Failed to set 1 of 3 PV(s) (1 set, 1 not attempted):\n"
        "  B = 2.0: put timed out on all 2 attempt(s) (no completion within 1 s each)\n"
        "  C = 3.0: not attempted (sequential mode stops at the first failure)"
    )
    assert results["A"].ok and not results["B"].ok and not results["C"].ok


def test_results_are_immutable():
    result = SetResult("A", 1.0, "set")
    with pytest.raises(AttributeError):
        result.status = "failed"


def softioc_modules():
    """Every module of the softioc package, imported (its `__main__` left out: it would serve)."""
    import pkgutil

    import softioc

    names = [info.name for info in pkgutil.walk_packages(softioc.__path__, "softioc.")]
    return [importlib.import_module(name) for name in ["softioc", *names] if not name.endswith("__main__")]


def test_every_soft_ioc_error_is_a_softioc_error():
    """One tree: `except SoftIOCError` catches every error the soft IOC defines."""
    from softioc.errors import SoftIOCError

    defined = {obj for module in softioc_modules() for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, BaseException)
               and obj.__module__.startswith("softioc")}
    assert len(defined) >= 10  # the modules were read
    assert {cls.__qualname__ for cls in defined if not issubclass(cls, SoftIOCError)} == set()


def test_soft_ioc_errors_keep_their_builtin_and_their_old_paths():
    from softioc import errors
    from softioc.epics_base import EpicsBaseError, NotLoopbackError
    from softioc.machine import ShardError

    assert EpicsBaseError is errors.EpicsBaseError and issubclass(EpicsBaseError, RuntimeError)
    assert NotLoopbackError is errors.NotLoopbackError and issubclass(NotLoopbackError, ValueError)
    assert ShardError is errors.ShardError and issubclass(ShardError, errors.ChildError)
    assert issubclass(errors.ExpressionError, ValueError)
    for cls in (EpicsBaseError, NotLoopbackError, ShardError, errors.ExpressionError, errors.ChildError):
        assert issubclass(cls, errors.SoftIOCError)


def test_every_epics_pva_error_is_an_epics_pva_error():
    """One tree: `except EpicsPvaError` catches every error epics_pva defines (Badger's plugin
    included where Badger is installed), and the core's all live in epics_pva.errors."""
    import pkgutil

    import epics_pva.errors

    modules = []
    for info in pkgutil.walk_packages(epics_pva.__path__, "epics_pva."):
        if info.name.endswith("__main__") or info.name.startswith("epics_pva.badger"):
            continue  # the Badger plugin imports Badger
        modules.append(importlib.import_module(info.name))
    defined = {obj for module in modules for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__.startswith("epics_pva")
               and not obj.__name__.startswith("_")}  # a parser's private signal never leaves its module
    assert len(defined) >= 15  # the modules were read
    assert {cls.__qualname__ for cls in defined if not issubclass(cls, EpicsPvaError)} == set()
    assert {cls.__module__ for cls in defined} == {"epics_pva.errors"}
