"""Every fenced ``python`` block of README.md and docs/*.md runs as written, through Sybil
(the ``test`` extra). Blocks of one file share a namespace, in order, like a reader's session.

A block that needs a GPU is preceded by ``<!-- skip: next if(not HAVE_GPU, reason="...") -->``
and skipped without one; listings that are not meant to run are fenced ``text``. The blocks run
once, in the NumPy session (``RNNX_BACKENDS`` unset or naming numpy): they do not depend on the
backend under test, and CI runs the suite once per backend.
"""

from __future__ import annotations

import unittest
from pathlib import Path

import pytest

from ._selection import numpy_selected
from ._threads import one_thread  # noqa: F401  (autouse fixture)

sybil = pytest.importorskip("sybil", reason="the doc blocks run through Sybil (the test extra)")

from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _have_gpu() -> bool:
    from rnnx._backend import available_backends

    return available_backends()["cupy"].available


PARSER = sybil.Sybil(parsers=[PythonCodeBlockParser(), SkipParser()])


@pytest.mark.skipif(not numpy_selected(), reason="doc blocks run in the numpy session only")
@pytest.mark.parametrize("path", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_doc_blocks_run_as_written(path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a block that writes a file writes it here
    document = PARSER.parse(path)
    document.namespace["HAVE_GPU"] = _have_gpu()  # for the skip markers of GPU-only blocks
    ran = 0
    for example in document:
        try:
            example.evaluate()
        except unittest.SkipTest:  # a GPU-only block without a GPU: the later blocks still run
            continue
        ran += 1
    assert ran or not path.read_text().count("```python"), "no block ran"


def test_every_python_block_is_collected():
    """The parser sees the README's blocks (a wrong fence tag would hide them silently)."""
    assert len(list(PARSER.parse(ROOT / "README.md"))) >= 2
