"""Waiting in tests for what a PV shows on the wire, bounded by a timeout.

A test that sleeps a fixed time is slow when the machine is idle and flaky when it is loaded.
These wait for the condition itself and, when it never comes, raise `WaitTimeout` saying what
was seen last, so a failing test explains itself:

    wait_for_value(soft_ioc, "DEMO:Q1:RBV", lambda v: abs(v - 1.0) < 0.01)
    wait_for_severity(soft_ioc, "DEMO:LOSS", "MAJOR")
    wait_for_updates(soft_ioc, "DEMO:Q1:RBV", 3)

`source` is a started soft IOC (anything with `client_conf()`: a SoftIOC, a Machine; a client
is opened and closed for the wait) or a p4p `Context` of your own (the `pva_client` fixture).
Values are what p4p gives: a float subclass carrying `.severity` for a scalar PV. p4p is
imported only when a wait runs.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import WaitTimeout

__all__ = ["WaitTimeout", "wait_for_severity", "wait_for_updates", "wait_for_value"]

_SEVERITIES = {"NO_ALARM": 0, "MINOR": 1, "MAJOR": 2, "INVALID": 3}
_POLL = 0.02  # s between reads while waiting for a value or a severity


def _timeout(pv: str, wanted: str, timeout: float, last: Any, seen: int, error: str | None = None) -> WaitTimeout:
    if seen == 0:
        saw = f"never read it ({error})" if error else "never read it"
    else:
        saw = f"last saw {_describe(last)} ({seen} read{'s' if seen != 1 else ''})"
        if error:
            saw += f"; then: {error}"
    return WaitTimeout(pv, wanted, timeout, last, seen, saw)


def wait_for_value(source: Any, pv: str, expected: Any, *, timeout: float = 5.0) -> Any:
    """Read `pv` until its value matches `expected` and return that value.

    `expected` is a predicate (a callable taking the value) or a value: a number matches
    within 1e-9 relative, anything else by ==. WaitTimeout after `timeout` s otherwise.
    """
    if callable(expected):
        check, wanted = expected, f"a value satisfying {getattr(expected, '__name__', 'the predicate')}"
    else:
        check, wanted = (lambda value: _equal(value, expected)), f"the value {expected!r}"
    return _poll(source, pv, check, wanted, timeout)


def wait_for_severity(source: Any, pv: str, severity: int | str, *, timeout: float = 5.0) -> Any:
    """Read `pv` until its alarm severity is `severity` (0-3, or NO_ALARM, MINOR, MAJOR,
    INVALID) and return that value (its `.severity` and `.raw.alarm` carry the alarm)."""
    wanted_number = _severity(severity)

    def check(value: Any) -> bool:
        return _severity_of(value) == wanted_number

    return _poll(source, pv, check, f"alarm severity {wanted_number} ({_name(wanted_number)})", timeout)


def wait_for_updates(source: Any, pv: str, count: int = 1, *, timeout: float = 5.0) -> list[Any]:
    """Wait for `count` fresh updates of `pv` (posts made after the call, not the value it already
    held) and return them in order. WaitTimeout says how many came and the last one.

    Counts every post the server makes: the subscription asks for a queue as long as `count`,
    so updates are not merged.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count!r}")
    got: list[Any] = []
    held: list[Any] = []  # the value it held when the subscription began: not a fresh update
    done = threading.Event()
    errors: list[str] = []

    def on_update(value: Any) -> None:
        if isinstance(value, Exception):  # reported only after the first value, or when none came
            if not done.is_set():
                errors.append(f"{type(value).__name__}: {value}")
            return
        if not held:
            errors.clear()  # "not connected yet", before the first value: not worth reporting
            held.append(value)
            return
        got.append(value)
        if len(got) >= count:
            done.set()

    with _client(source) as ctx:
        sub = ctx.monitor(pv, on_update, request=f"record[queueSize={max(4, count + 2)}]", notify_disconnect=True)
        try:
            done.wait(timeout)
        finally:
            done.set()  # what the subscription's close delivers is not reported
            sub.close()
    if len(got) >= count:
        return got[:count]
    wanted = f"{count} fresh update{'s' if count != 1 else ''}, got {len(got)}"
    error = errors[-1] if errors else None
    if not held:
        raise _timeout(pv, wanted, timeout, None, 0, error or "no subscription update came")
    last = got[-1] if got else held[0]
    return_note = None if got else "that is the value it held when the wait began"
    raise _timeout(pv, wanted, timeout, last, len(got) + 1, error or return_note)


# ---------------------------------------------------------------------------------------------
def _poll(source: Any, pv: str, check: Callable[[Any], bool], wanted: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    seen = 0
    error: str | None = None
    with _client(source) as ctx:
        while True:
            left = deadline - time.monotonic()
            try:
                value = ctx.get(pv, timeout=max(0.05, min(left, 1.0)))
            except Exception as exc:  # noqa: BLE001 - a missing PV or a timeout: keep waiting, report it
                error = f"{type(exc).__name__}: {exc}"
            else:
                seen, last, error = seen + 1, value, None
                try:
                    if check(value):
                        return value
                except Exception as exc:  # noqa: BLE001 - a predicate that fails is a value not matched
                    error = f"the predicate raised {type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise _timeout(pv, wanted, timeout, last, seen, error)
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))


@contextmanager
def _client(source: Any) -> Iterator[Any]:
    """A p4p client: `source` itself, or one opened on a soft IOC's client settings."""
    if hasattr(source, "get") and hasattr(source, "monitor"):
        yield source
        return
    conf = getattr(source, "client_conf", None)
    if conf is None:
        raise TypeError(f"expected a started soft IOC or a p4p Context, got {type(source).__name__}")
    from p4p.client.thread import Context

    ctx = Context("pva", conf=conf(), useenv=False)
    try:
        yield ctx
    finally:
        ctx.close()


def _equal(value: Any, expected: Any) -> bool:
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            return math.isclose(float(value), float(expected), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    result = value == expected
    return bool(result.all()) if hasattr(result, "all") else bool(result)


def _severity(severity: int | str) -> int:
    if isinstance(severity, str) and severity.upper() in _SEVERITIES:
        return _SEVERITIES[severity.upper()]
    if isinstance(severity, int) and not isinstance(severity, bool) and 0 <= severity <= 3:
        return severity
    raise ValueError(f"severity must be 0-3 or one of {', '.join(_SEVERITIES)}, got {severity!r}")


def _name(severity: int) -> str:
    return next(name for name, number in _SEVERITIES.items() if number == severity)


def _severity_of(value: Any) -> int | None:
    severity = getattr(value, "severity", None)
    return None if severity is None else int(severity)


def _describe(value: Any) -> str:
    if value is None:
        return "no value"
    text = repr(value.item()) if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else repr(value)
    if len(text) > 120:
        text = text[:117] + "..."
    severity = _severity_of(value)
    if not severity:  # no alarm fields, or no alarm: the value says it all
        return text
    message = ""
    raw = getattr(value, "raw", None)
    try:
        message = str(raw["alarm.message"]) if raw is not None else ""
    except (KeyError, TypeError, AttributeError):  # a value without alarm fields
        message = ""
    alarm = _name(severity) if 0 <= severity <= 3 else str(severity)
    return f"{text} in alarm {alarm}" + (f" ({message})" if message else "")
