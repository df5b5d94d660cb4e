"""docs/tutorial.md is executed: its ```python blocks run in order in one namespace, and what each
block prints must equal the ```text block that immediately follows it (a python block without
one must print nothing). Blocks after the marker line ``<!-- tutorial: needs MNIST -->`` need
the real MNIST files and run only when MINICNN_DATA_DIR is set.

To see what the blocks print now (when editing the tutorial)::

    MINICNN_DATA_DIR=... python tests/test_tutorial.py
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
MNIST_MARKER = "<!-- tutorial: needs MNIST -->"
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass
class Block:
    code: str
    expected: str | None     # the text block right after it, or None
    line: int                # 1-based line of the code block in the markdown
    needs_mnist: bool


def extract_blocks(markdown: str) -> list[Block]:
    """Python blocks in order, each paired with the ```text block that immediately follows it
    (only blank lines between them)."""
    marker = markdown.find(MNIST_MARKER)
    fences = list(FENCE.finditer(markdown))
    blocks = []
    for i, m in enumerate(fences):
        if m.group(1) != "python":
            continue
        expected = None
        if i + 1 < len(fences):
            nxt = fences[i + 1]
            if nxt.group(1) == "text" and not markdown[m.end():nxt.start()].strip():
                expected = nxt.group(2)
        blocks.append(Block(code=m.group(2), expected=expected,
                            line=markdown.count("\n", 0, m.start()) + 1,
                            needs_mnist=marker != -1 and m.start() > marker))
    return blocks


def normalize(text: str) -> str:
    """Trailing spaces on each line and trailing blank lines do not count."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def run_blocks(blocks, namespace=None):
    """Yield (block, printed output) for each block, executed in one shared namespace."""
    namespace = {"__name__": "tutorial"} if namespace is None else namespace
    for block in blocks:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(block.code, f"{TUTORIAL.name}:{block.line}", "exec"), namespace)
        yield block, buf.getvalue()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Run in a scratch directory with the backend restored afterwards."""
    import minicnn.kernels as kernels
    previous = kernels._current
    monkeypatch.chdir(tmp_path)
    yield
    kernels._current = previous


def check(blocks):
    assert blocks, "no python blocks found"
    for block, out in run_blocks(blocks):
        expected = normalize(block.expected) if block.expected is not None else ""
        assert normalize(out) == expected, (
            f"the python block at {TUTORIAL.name} line {block.line} printed:\n{out}\n"
            f"but the text block after it says:\n{block.expected}")


def test_every_python_block_is_followed_by_its_output_or_prints_nothing():
    blocks = extract_blocks(TUTORIAL.read_text())
    assert len(blocks) >= 10
    assert sum(b.expected is not None for b in blocks) >= 8
    assert any(b.needs_mnist for b in blocks) and not blocks[0].needs_mnist


def test_extract_blocks_pairs_only_adjacent_text():
    md = "```python\nprint(1)\n```\n\n```text\n1\n```\nprose\n```python\nx = 2\n```\nmore\n```text\nno\n```\n"
    a, b = extract_blocks(md)
    assert (a.code, a.expected, a.line) == ("print(1)\n", "1\n", 1)
    assert b.expected is None and b.line == 9


def test_tutorial_without_mnist(isolated):
    check([b for b in extract_blocks(TUTORIAL.read_text()) if not b.needs_mnist])


@pytest.mark.mnist
@pytest.mark.slow          # trains the seed model on 2,000 images: ~10 s with numba
def test_tutorial_with_mnist(isolated):
    if not os.environ.get("MINICNN_DATA_DIR"):
        pytest.skip("MINICNN_DATA_DIR is not set")
    pytest.importorskip("matplotlib")          # section 10 draws figures
    check(extract_blocks(TUTORIAL.read_text()))


if __name__ == "__main__":  # print what every block prints, to paste into the tutorial
    blocks = extract_blocks(TUTORIAL.read_text())
    if not os.environ.get("MINICNN_DATA_DIR"):
        blocks = [b for b in blocks if not b.needs_mnist]
    for block, out in run_blocks(blocks):
        status = "ok" if normalize(out) == normalize(block.expected or "") else "DIFFERS"
        sys.stdout.write(f"--- line {block.line}: {status}\n{out}")
