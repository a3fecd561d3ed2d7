"""The soft IOC's one exception tree: every error it raises on purpose is a SoftIOCError.

Each also inherits the builtin its callers expect (a bad value is a ValueError, a port that
cannot be bound an OSError), so `except SoftIOCError` catches every soft IOC error and
`except ValueError` still catches a bad config.

    SoftIOCError
    ├── ConfigError (ValueError)        a config file or dict is invalid
    ├── ExpressionError (ValueError)    an observable's expression is not allowed
    ├── PutRefused (ValueError)         the device refuses a put
    ├── PortInUseError (OSError)        an explicit TCP port is taken
    ├── AuditFileError (OSError)        the audit file cannot be opened or read
    ├── NetworkRefused (PermissionError)
    ├── UpdateLoopError (RuntimeError)  the update loop died; the IOC stopped serving
    └── ChildError (RuntimeError)       a child process did not start, answer or stop
        ├── ShardError                  ... a shard of a machine
        └── EpicsBaseError              ... EPICS base's softIoc
            └── NotLoopbackError (ValueError)
"""

from __future__ import annotations

__all__ = ["AuditFileError", "ChildError", "ConfigError", "EpicsBaseError", "ExpressionError",
           "NetworkRefused", "NotLoopbackError", "PortInUseError", "PutRefused", "ShardError",
           "SoftIOCError", "UpdateLoopError", "WaitTimeout"]


class SoftIOCError(Exception):
    """Base of every error the soft IOC raises on purpose."""


class ConfigError(SoftIOCError, ValueError):
    """A configuration is invalid; the message names the file and the key."""


class ExpressionError(SoftIOCError, ValueError):
    """An expression uses something outside the whitelist or names an unknown input."""


class PutRefused(SoftIOCError, ValueError):
    """A put the device itself refuses (wrong type, not finite, outside limits)."""


class PortInUseError(SoftIOCError, OSError):
    """An explicitly requested TCP port could not be bound (another server holds it)."""


class AuditFileError(SoftIOCError, OSError):
    """The audit file cannot be opened for appending: names the path and the OS reason."""


class NetworkRefused(SoftIOCError, PermissionError):
    """Serving beyond loopback was asked for without allow_network; nothing was started."""


class UpdateLoopError(SoftIOCError, RuntimeError):
    """A soft IOC's update loop died, so it stopped serving rather than answer with frozen values."""


class ChildError(SoftIOCError, RuntimeError):
    """A child process did not start, answer or stop as asked; says which process and why."""


class ShardError(ChildError):
    """A shard process did not start, answer or stop as asked; says which shard and why."""


class EpicsBaseError(ChildError):
    """The EPICS base IOC could not be started or stopped; the message carries its output."""


class NotLoopbackError(EpicsBaseError, ValueError):
    """A bind address that is not loopback was asked for; nothing was started."""


class WaitTimeout(SoftIOCError, AssertionError, TimeoutError):
    """A wait of softioc.testing ran out of time: the PV, what was waited for, what was seen last.

    An AssertionError (pytest shows it as a failed check) and a TimeoutError alike.
    `last` is the last value read (None when none was), `seen` how many were read.
    """

    def __init__(self, pv: str, wanted: str, timeout: float, last: object, seen: int, saw: str) -> None:
        self.pv, self.wanted, self.timeout, self.last, self.seen = pv, wanted, timeout, last, seen
        super().__init__(f"{pv}: waited {timeout:g} s for {wanted}, {saw}")
