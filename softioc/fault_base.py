"""What every fault kind is built on, for writing one: the path the API reference showed.

Everything here is softioc.faults', under the same names; see there.
"""

from .faults import *  # noqa: F403 - this path re-exports that package's names
from .faults import __all__ as __all__
