"""Sphinx configuration: Markdown pages (MyST) and an API reference from the docstrings.

Nothing here reaches the network at build time: no intersphinx, a theme installed from PyPI.
"""

from __future__ import annotations

import epics_pva

project = "badger-epics-pva"
author = "badger-epics-pva contributors"
release = getattr(epics_pva, "__version__", "")

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# "## Heading" anchors, so [link](page.md#heading) works in Sphinx as it does on GitHub
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

html_theme = "furo"
html_title = "badger-epics-pva"

