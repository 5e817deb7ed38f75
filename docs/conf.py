"""Sphinx configuration: the Markdown pages of docs/ (MyST) and an API reference from the docstrings.

Build: ``pip install ".[docs]" && make doc`` (warnings are errors).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")

import sb3_mlsh  # noqa: E402

project = "sb3-mlsh"
author = "sb3-mlsh developers"
release = version = sb3_mlsh.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "results/*_runs.json"]
myst_heading_anchors = 3  # links such as mlsh.md#logger-keys
# Links from the pages to files outside the docs (hyperparams/mlsh.yml, benchmarks/*.py, CHANGELOG.md) point
# at the repository, as on GitHub; Sphinx cannot resolve them, and says so as a "myst.xref_missing" warning.
# The result pages are written by benchmarks/*.py as sections (## ...) or with ### under a title; they read
# well on GitHub, and Sphinx only notes their heading levels ("myst.header").
suppress_warnings = ["myst.xref_missing", "myst.header"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

html_theme = "alabaster"
html_title = f"sb3-mlsh {version}"
