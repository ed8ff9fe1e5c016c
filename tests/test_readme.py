"""Every Python code block of the README runs, so the README cannot drift from the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import run_python

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_readme_has_python_blocks():
    """The README shows code (guards against the extraction silently matching nothing)."""
    assert len(PYTHON_BLOCKS) >= 2


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.splitlines()[0][:40])
def test_readme_python_block_runs(block, tmp_path):
    """Each Python block runs in a fresh interpreter without error and logs no warning."""
    run_python(block, env={"TWAT_CACHE_DIR": str(tmp_path)}, quiet=True)


def test_readme_starts_with_the_two_commands_ci_runs():
    """The first shell block is the demo and the test command; .ci/run runs the same tests."""
    first_shell = re.search(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    assert first_shell is not None
    lines = [line.split("#")[0].strip() for line in first_shell.group(1).splitlines()]
    demo, tests = (line for line in lines if line)
    assert demo.endswith("python -m twat_cache demo")
    expected = 'python -m pip install -e ".[test]" && python -m pytest'
    assert shlex.split(tests) == shlex.split(expected)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci
    assert demo.replace('pip install ".[all]"', 'pip install -q ".[all]"') in ci
