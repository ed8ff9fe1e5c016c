"""The README's "Scaling out" Redis example runs against the test server.

It is fenced as ``py`` (test_readme.py runs only ``python`` blocks, which need
no server); here its ``redis://localhost:6379`` becomes the test server's URL.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_python

pytestmark = pytest.mark.redis

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Scaling out", 1)[1].split("\n## ", 1)[0]
REDIS_BLOCKS = [
    block for block in re.findall(r"```py\n(.*?)```", SECTION, flags=re.DOTALL) if "redis" in block
]


def test_scaling_section_has_a_redis_example() -> None:
    """The section shows the Redis deployments (guards against matching nothing)."""
    assert len(REDIS_BLOCKS) == 1
    assert "near=True" in REDIS_BLOCKS[0]


def test_redis_example_runs_and_prints_fleet_counts(redis_url: str) -> None:
    """The example runs on a real server and prints what its comment says."""
    code = REDIS_BLOCKS[0].replace("redis://localhost:6379", redis_url)
    out = run_python(code)
    assert out.strip() == "{'hits': 2, 'misses': 1}"
