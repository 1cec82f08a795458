"""Sphinx configuration: the guides in docs/ (MyST Markdown) and the API reference.

Build (offline, warnings are errors, as ``.ci/run`` does)::

    uv run sphinx-build -W --keep-going -b html docs docs/_build/html

The reference is generated: this file lists every public module of the three packages
(no name starting with ``_``, so ``__main__`` is never imported) into
``generated/reference.rst``, and autosummary writes one page per module from the
template in ``_templates/autosummary/module.rst``.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

project = "messenger"
author = "the messenger developers"
copyright = "2026, the messenger developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}  # .rst: the generated pages
root_doc = "index"
exclude_patterns = ["_build", "_templates"]
templates_path = ["_templates"]

# The guides are GitHub Markdown first; these make the same links work here.
myst_heading_anchors = 3

PACKAGES = {
    "messenger_protocol": "Typed models, the endpoint table, error codes, limits, codecs.",
    "messenger_server": "The server: HTTP transport, app, services, storage, hub.",
    "messenger_client": "The client library, the plain console client, the Textual app.",
}


def _public_modules(package: str) -> list[str]:
    names = [package]
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _write_reference(path: Path) -> set[str]:
    """The reference page listing every public module; returns the packages among them
    that have public submodules (documented by those pages, not re-exported twice)."""
    lines = [
        "API reference",
        "=============",
        "",
        "Generated from the docstrings. A package whose modules are private",
        "(``messenger_protocol``, ``messenger_server.http``) is one page with what it exports.",
        "",
    ]
    modules: list[str] = []
    for package, summary in PACKAGES.items():
        names = _public_modules(package)
        modules += names
        lines += [package, "-" * len(package), "", summary, "", ".. autosummary::",
                  "   :toctree: .", "", *(f"   {n}" for n in names), ""]  # fmt: skip
    path.parent.mkdir(exist_ok=True)
    for stale in path.parent.glob("*.rst"):  # pages of modules that are gone
        if stale != path and stale.stem not in modules:
            stale.unlink()
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return {m for m in modules if any(o.startswith(f"{m}.") for o in modules)}


autosummary_generate = True
autosummary_context = {
    "with_public_submodules": _write_reference(
        Path(__file__).parent / "generated" / "reference.rst"
    )
}
autodoc_default_options = {"show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True

html_theme = "alabaster"
html_title = "messenger"
