"""Fail loudly when `import softioc` resolves to a different package of the same name.

Diamond's pythonSoftIOC is published on PyPI as `softioc` and imports as `softioc`; if it
shadows this package, our modules would otherwise fail with a confusing AttributeError.
"""

import sys

MARKER = "badger-epics-pva"


def ensure_this_package() -> None:
    """Raise ImportError when the imported top-level `softioc` is not this project's."""
    package = sys.modules.get("softioc")
    if package is not None and getattr(package, "__project__", None) != MARKER:
        where = getattr(package, "__file__", None) or "an unknown location"
        raise ImportError(
            f"the 'softioc' package imported from {where} is not the soft IOC of "
            f"'{MARKER}'. Another distribution uses the same import name (Diamond's "
            "pythonSoftIOC, published on PyPI as 'softioc'). Uninstall it from this "
            "environment or use a separate virtual environment."
        )
