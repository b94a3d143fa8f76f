"""The documentation site builds with warnings as errors, and its API reference covers every module."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def documented_modules() -> set[str]:
    """The modules the API reference pages render (their ``::: module`` lines)."""
    return {line.split(":::", 1)[1].strip() for page in (ROOT / "docs" / "reference").glob("*.md")
            for line in page.read_text().splitlines() if line.startswith(":::")}


def package_modules() -> set[str]:
    """Every module of the package but its entry point and the packages' ``__init__`` files."""
    found = set()
    for path in (ROOT / "rpn_exp").rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def test_every_module_has_its_place_in_the_api_reference():
    assert package_modules() - documented_modules() == set()  # a new module: add it to a docs/reference page
    assert documented_modules() - package_modules() == set()  # a page names no module that is gone


def test_the_docs_build_strictly_and_render_the_docstrings(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "site" / "reference" / "functions" / "index.html").read_text()
    assert "TaylorExpansion" in page and "ProductLayout" in page  # classes and their docstrings, rendered
    stacked = (tmp_path / "site" / "reference" / "stacked" / "index.html").read_text()
    assert "one_group_per_setting" in stacked
    guide = (tmp_path / "site" / "guide" / "internals" / "index.html").read_text()
    assert "Compute paths" in guide and "<table>" in guide  # the guide's tables rendered as tables
