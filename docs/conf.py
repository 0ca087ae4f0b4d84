"""Sphinx configuration: MyST Markdown pages, warnings are errors in CI (-W)."""

import os

project = "repynet"
author = "the repynet developers"
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",  # needs the dot binary (Debian: graphviz)
    "sphinx.ext.intersphinx",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
html_theme = "alabaster"

# The API reference is in Python's domain (py:function, py:class ...), so the
# HTML build publishes objects.inv and other projects can link to repynet
# with intersphinx.  Linking out to Python's own docs needs their inventory,
# fetched over the network: builds here are offline, so that happens only
# when asked for (REPYNET_DOCS_INTERSPHINX=1) and never in CI.
intersphinx_mapping = {}
if os.environ.get("REPYNET_DOCS_INTERSPHINX") == "1":
    intersphinx_mapping["python"] = ("https://docs.python.org/3", None)
graphviz_output_format = "svg"
autodoc_typehints = "signature"
