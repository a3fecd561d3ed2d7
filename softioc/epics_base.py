"""EPICS base's own softIoc (with QSRV2) as a child process, bound to loopback on free ports.

Everything here is softioc.testing's, under the same names; this is the path the docs name.
"""

from .testing import *  # noqa: F403 - this path re-exports that package's names
from .testing import __all__ as __all__
