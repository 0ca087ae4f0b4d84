"""Sphinx configuration: MyST Markdown pages, warnings are errors in CI (-W)."""

project = "repynet"
author = "the repynet developers"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
html_theme = "alabaster"
