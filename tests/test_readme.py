"""Every Python block of the README runs as a script, so the README cannot drift from the code.

Each ```python block is written to its own file and run in a fresh interpreter
with warnings as errors, exactly as a reader would paste it into a file. No
block is exempt: a block that needs data makes its own (small) data.
The docstring examples of the loss classes run here too, through doctest.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gbfocal
from gbfocal import _loss, _multiclass

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _blocks() -> list[tuple[str, str]]:
    """``(section heading, code)`` of every ```python block, in README order."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.MULTILINE)
        blocks.append((headings[-1] if headings else "top", match.group(1)))
    return blocks


BLOCKS = _blocks()


def _block_id(index: int, heading: str) -> str:
    return f"{index}-" + re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def test_readme_has_python_blocks_and_no_other_code_language():
    # A block fenced as ```py or ```Python would silently escape the run below.
    text = README.read_text(encoding="utf-8")
    assert len(BLOCKS) >= 8
    languages = set(re.findall(r"^```(\S+)$", text, re.MULTILINE))
    assert languages <= {"python"}, f"README code fences other than python/plain: {sorted(languages)}"


@pytest.mark.parametrize(("heading", "code"), BLOCKS, ids=[_block_id(i, h) for i, (h, _) in enumerate(BLOCKS)])
def test_readme_block_runs(heading, code, tmp_path):
    script = tmp_path / "readme_block.py"
    script.write_text(code, encoding="utf-8")
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        # One OpenMP thread per engine: on a shared, loaded CI machine the engines' spinning thread teams turn a
        # 0.5 s fit into 10 s or more. The blocks themselves do not depend on it.
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(README.parent), os.environ.get("PYTHONPATH", "")]),
        # Warnings are errors, except distributed's "port 8787 in use" when another cluster on this machine holds
        # the default dashboard port: that says something about the machine, not about the README.
        "PYTHONWARNINGS": "error,default::UserWarning:distributed.node",
    }
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, f"README block under {heading!r} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.parametrize(
    "obj",
    [_loss.FocalLoss, _multiclass.MulticlassFocalLoss, _loss.loss_from_dict],
    ids=lambda obj: obj.__name__,
)
def test_docstring_examples_run(obj):
    finder = doctest.DocTestFinder(recurse=False)
    (test,) = finder.find(obj, obj.__name__, globs={"np": __import__("numpy"), "gbfocal": gbfocal})
    assert test.examples, f"{obj.__name__} has no Examples section"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples of {obj.__name__} failed"
