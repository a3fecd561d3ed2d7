"""The soft IOC's small exception hierarchy; each inherits the builtin its callers expect."""

from __future__ import annotations


class SoftIOCError(Exception):
    """Base of every error the soft IOC raises on purpose."""


class ConfigError(SoftIOCError, ValueError):
    """A configuration is invalid; the message names the file and the key."""


class PutRefused(SoftIOCError, ValueError):
    """A put the device itself refuses (wrong type, not finite, outside limits)."""


class PortInUseError(SoftIOCError, OSError):
    """An explicitly requested TCP port could not be bound (another server holds it)."""


class AuditFileError(SoftIOCError, OSError):
    """The audit file cannot be opened for appending: names the path and the OS reason."""


class NetworkRefused(SoftIOCError, PermissionError):
    """Serving beyond loopback was asked for without allow_network; nothing was started."""


class ChildError(SoftIOCError, RuntimeError):
    """A child process did not start, answer or stop as asked; says which process and why."""
