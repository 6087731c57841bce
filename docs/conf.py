"""Sphinx configuration for the anonapi documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html``. Pages are
Markdown (read by myst-parser) or reStructuredText. The command reference is
generated from the click commands by sphinx-click, so it always matches the
installed ``anon``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Document the checkout, also when anonapi is not installed in editable mode.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anonapi  # noqa: E402

project = "anonapi"
author = "anonapi contributors"
copyright = "anonapi contributors"
version = anonapi.__version__
release = anonapi.__version__

extensions = [
    "myst_parser",
    "sphinx_click",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Headings down to level 3 get anchors, so pages can link to sections.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Keep -- and quotes as typed: pages and help texts show options and commands to copy.
smartquotes = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"

html_theme = "alabaster"
html_title = f"anonapi {release}"
html_theme_options = {
    "description": "Create, follow and manage IDIS DICOM anonymization jobs",
    "fixed_sidebar": True,
}


def escape_help_text(app, ctx, lines) -> None:
    """Escape ``*`` in command help, which click prints as plain text but sphinx-click reads as reST.

    Help texts show wildcards such as ``patient*`` and ``**/raw``, which reST
    would take as the start of emphasis.
    """
    for index, line in enumerate(lines):
        lines[index] = line.replace("*", r"\*")


def setup(app) -> None:
    app.connect("sphinx-click-process-description", escape_help_text)
    app.connect("sphinx-click-process-options", escape_help_text)
    app.connect("sphinx-click-process-arguments", escape_help_text)
    app.connect("sphinx-click-process-epilog", escape_help_text)
