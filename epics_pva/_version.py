"""The package version: pyproject.toml's, read from the installed distribution (written once)."""

from importlib import metadata

try:
    __version__ = metadata.version("badger-epics-pva")
except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
