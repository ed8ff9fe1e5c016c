"""The docs site's Python blocks run, so the pages cannot drift from the code.

Blocks fenced as ``python`` are run (one fresh interpreter per page, blocks in
order); blocks fenced as ``py`` are shown only (they need a web framework, a
cluster or a server). mkdocs.yml's navigation must list every page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_python

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))


def python_blocks(page: Path) -> list[str]:
    """The runnable blocks of one page."""
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_docs_have_runnable_blocks():
    """Most pages show runnable code (guards against the extraction matching nothing)."""
    assert sum(bool(python_blocks(page)) for page in PAGES) >= 7


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_docs_python_blocks_run(page, tmp_path):
    """Every ``python`` block of the page runs, in order, in a fresh interpreter."""
    code = "\n\n".join(python_blocks(page))
    run_python(code, env={"TWAT_CACHE_DIR": str(tmp_path)}, quiet=True)


def test_every_page_is_in_the_navigation():
    """mkdocs.yml's nav names every page under docs/ (strict builds only warn otherwise)."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in PAGES:
        assert f": {page.name}" in config, page.name


def test_chart_is_committed_and_shown():
    """The README's first screen and the docs home show the committed hit-cost chart."""
    chart = DOCS / "img" / "hit-costs.png"
    assert chart.read_bytes().startswith(b"\x89PNG")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_screen = readme[: readme.index("\n## ")]
    assert "(docs/img/hit-costs.png)" in first_screen
    assert "(img/hit-costs.png)" in (DOCS / "index.md").read_text(encoding="utf-8")
