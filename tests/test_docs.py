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


# ---------------------------------------------------------------------------------------------
# Console blocks: what a doc shows a command printing is what it prints
# ---------------------------------------------------------------------------------------------
#
# Every ```console block of README.md and docs/*.md that shows output is run here, command by
# command, in a fresh folder, and its output compared with the doc's, line by line: the words
# exactly, and every number exactly unless the comment on the line above the block names it:
#
#   <!-- figures: "held-out accuracy:" 0.95..1; "epochs in" any; "threads" line -->
#
# A number whose preceding text ends with a label gets that label's rule: a range ``lo..hi``
# (the doc's own figure must lie in it too) or ``any``; a label followed by ``line`` lets the
# whole line that starts with it differ. So a figure that differs between machines (float32
# training amplifies the BLAS's rounding, which differs between CPUs) is printed as what it is:
# the doc gives it as one run's, and the comment holds the bound this machine must meet. A line
# ``...`` stands for any number of output lines. Blocks with output this test cannot run say
# why: ``<!-- output: not run (needs a GPU) -->``. ``<!-- run -->`` runs a block's commands
# although it shows no output (a walk-through a reader copies), each to exit status 0.

import re  # noqa: E402
import shlex  # noqa: E402

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.]*\w)")
_FENCE = re.compile(r"^```console\n(.*?)^```", re.M | re.S)


class ConsoleBlock:
    def __init__(self, path: Path, line: int, marker: str, body: str) -> None:
        self.path, self.line, self.marker = path, line, marker
        self.steps: list[tuple[str, list[str]]] = []  # (command, output lines)
        pending = ""
        for raw in body.splitlines():
            if pending or raw.startswith("$ "):
                text = pending + (raw[2:] if not pending else raw.strip())
                pending = text[:-1] + " " if text.endswith("\\") else ""
                if not pending:
                    self.steps.append((text.strip(), []))
            elif self.steps:
                self.steps[-1][1].append(raw)
        self.rules: dict[str, str] = {}
        m = re.fullmatch(r"<!-- figures: (.*) -->", marker)
        if m:
            for item in m.group(1).split(";"):
                label, rule = re.fullmatch(r'\s*"([^"]+)"\s+(\S+)\s*', item).groups()
                self.rules[label] = rule

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def shows_output(self) -> bool:
        return any(out for _, out in self.steps)


def _console_blocks() -> list[ConsoleBlock]:
    blocks = []
    for path in DOCS:
        text = path.read_text()
        for m in _FENCE.finditer(text):
            before = text[:m.start()].rstrip("\n").splitlines()
            marker = before[-1].strip() if before and before[-1].startswith("<!--") else ""
            blocks.append(ConsoleBlock(path, text[:m.start()].count("\n") + 1, marker,
                                       m.group(1)))
    return blocks


CONSOLE = _console_blocks()
CHECKED = [b for b in CONSOLE if (b.shows_output or b.marker == "<!-- run -->")
           and not b.marker.startswith("<!-- output: not run")]


def _line_matches(doc: str, got: str, rules: dict[str, str]) -> bool:
    for label, rule in rules.items():
        if rule == "line" and doc.startswith(label):
            return got.startswith(label)
    doc_parts, got_parts = _NUMBER.split(doc), _NUMBER.split(got)
    doc_nums, got_nums = _NUMBER.findall(doc), _NUMBER.findall(got)
    if doc_parts != got_parts or len(doc_nums) != len(got_nums):
        return False
    for i, (want, have) in enumerate(zip(doc_nums, got_nums)):
        before = doc_parts[i].rstrip()
        rule = next((r for label, r in rules.items() if before.endswith(label)), None)
        if rule is None:
            if want != have:
                return False
        elif rule != "any":
            lo, hi = (float(v) for v in rule.split(".."))
            if not lo <= float(have) <= hi:
                return False
    return True


def _output_matches(doc: list[str], got: list[str], rules: dict[str, str]) -> bool:
    """``doc`` (with ``...`` lines standing for any lines) against ``got``."""
    if not doc:
        return not got
    if doc[0] == "...":
        return any(_output_matches(doc[1:], got[k:], rules) for k in range(len(got) + 1))
    return bool(got) and _line_matches(doc[0], got[0], rules) and \
        _output_matches(doc[1:], got[1:], rules)


def _run_step(command: str, cwd: Path) -> tuple[int, list[str]]:
    """One command of a block as a reader runs it: ``rnnx ...`` or ``python ...`` in a fresh
    process (this checkout's rnnx), stdout and stderr interleaved as a terminal shows them
    (unbuffered); no progress bar, as stderr is not a terminal."""
    import subprocess
    import sys

    from ._subprocess import child_env

    argv = shlex.split(command, comments=True)
    if argv[0] == "rnnx":
        argv = ["-m", "rnnx", *argv[1:]]
    elif argv[0] == "python":
        argv = argv[1:]
    else:
        raise AssertionError(f"cannot run {command!r} here: mark its block <!-- output: not "
                             "run (why) -->")
    res = subprocess.run([sys.executable, *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, cwd=cwd, timeout=600,
                         env=child_env(PYTHONUNBUFFERED="1"))
    return res.returncode, res.stdout.splitlines()


_CACHE: dict[str, tuple[int, list[str]]] = {}
_WRITES = ("--save", "--plot", "--grad-plot", "--output", "--onnx")


def _run_once(command: str, cwd: Path) -> tuple[int, list[str]]:
    """:func:`_run_step`, once per session for a command that writes no file (the main job
    is shown in the README, in docs/training.md and in its table)."""
    if command.startswith("python") or any(w in command.split() for w in _WRITES):
        return _run_step(command, cwd)
    if command not in _CACHE:
        _CACHE[command] = _run_step(command, cwd)
    return _CACHE[command]


def test_the_line_rules_see_a_wrong_figure():
    """The comparison is a test too: an exact figure that differs, a figure outside its range
    or a word that differs fails; ``any`` and ``line`` let theirs differ."""
    rules = {"accuracy:": "0.95..1", "in": "any", "threads": "line"}
    doc = "trained 40 epochs in 0.7 s; accuracy: 0.9749 (359 sequences)"
    assert _line_matches(doc, "trained 40 epochs in 3.1 s; accuracy: 0.9805 (359 sequences)",
                         rules)
    for wrong in ("trained 41 epochs in 0.7 s; accuracy: 0.9749 (359 sequences)",
                  "trained 40 epochs in 0.7 s; accuracy: 0.9449 (359 sequences)",
                  "trained 40 epochs in 0.7 s; accuracy: 0.9749 (358 sequences)",
                  "trained 40 epoch in 0.7 s; accuracy: 0.9749 (359 sequences)",
                  "trained 40 epochs in 0.7 s; accuracy: 0.9749 (359 sequences) more"):
        assert not _line_matches(doc, wrong, rules), wrong
    assert _line_matches("threads BLAS capped at 1 thread (openblas via threadpoolctl)",
                         "threads BLAS capped at 1 thread (mkl via threadpoolctl)", rules)
    assert _output_matches(["a 1", "...", "c 3"], ["a 1", "b", "b", "c 3"], {})
    assert not _output_matches(["a 1", "...", "c 3"], ["a 1", "b", "c 4"], {})


def test_every_console_block_with_output_is_checked_or_says_why():
    """No block shows output that nothing checks: each is run here or marked with a reason; and
    every range a marker gives holds the doc's own figure."""
    for b in CONSOLE:
        if b.shows_output and b not in CHECKED:
            assert re.fullmatch(r"<!-- output: not run \(.+\) -->", b.marker), b.id
    for b in CHECKED:
        for _, out in b.steps:
            for line in out:
                if line != "...":
                    assert _line_matches(line, line, b.rules), (b.id, line)
    assert len(CHECKED) >= 4


@pytest.mark.skipif(not numpy_selected(), reason="doc blocks run in the numpy session only")
@pytest.mark.parametrize("block", CHECKED, ids=[b.id for b in CHECKED])
def test_console_block_prints_what_the_doc_shows(block, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # files a walk-through writes land here
    for command, doc_out in block.steps:
        code, got = _run_once(command, tmp_path)
        shown = "\n".join(got)
        want_code = 3 if any(line.startswith("warning: ") for line in doc_out) else 0
        assert code == want_code, f"{block.id}: $ {command}\n{shown}"
        if doc_out:
            assert _output_matches(doc_out, got, block.rules), \
                f"{block.id}: $ {command}\nthe doc shows:\n" + "\n".join(doc_out) + \
                f"\nit printed:\n{shown}"


# The data-set table of docs/training.md: each row's command, run here at --seed 0, meets the
# row's "checked on CI" column (an exit status, and a bound on the held-out figure), and so
# does the figure the row gives for this machine.
_TABLE_ROW = re.compile(r"^\| `(rnnx train[^`]*)` \|(.*)\| checked: (.+?) \|$", re.M)


def _table_rows() -> list[tuple[str, str, str]]:
    text = (ROOT / "docs" / "training.md").read_text()
    return [(m.group(1), m.group(2), m.group(3)) for m in _TABLE_ROW.finditer(text)]


def _bound(check: str) -> tuple[int, str | None, float | None]:
    code = int(re.search(r"exit (\d)", check).group(1))
    m = re.search(r"(accuracy|R\^2) ≥ (\S+?),", check)
    return code, (m.group(1) if m else None), (float(m.group(2)) if m else None)


def test_the_data_set_table_has_its_rows():
    rows = _table_rows()
    assert [r[0] for r in rows][:5] == ["rnnx train", "rnnx train --dataset sine",
                                        "rnnx train --dataset parity",
                                        "rnnx train --dataset parity --cell gru",
                                        "rnnx train --dataset adding"]
    for command, cells, check in rows:  # the row's own figure for this machine meets the bound
        _, what, bound = _bound(check)
        if what:
            here = float(re.search(rf"{re.escape(what)} (-?[0-9.]+)", cells).group(1))
            assert here >= bound, command


@pytest.mark.skipif(not numpy_selected(), reason="doc blocks run in the numpy session only")
@pytest.mark.parametrize("command, cells, check", _table_rows(), ids=[r[0] for r in _table_rows()])
def test_data_set_table_row_holds(command, cells, check, tmp_path):
    code, what, bound = _bound(check)
    got_code, out = _run_once(command, tmp_path)
    text = "\n".join(out)
    assert got_code == code, text
    if what == "accuracy":
        assert float(re.search(r"held-out accuracy: (\S+)", text).group(1)) >= bound, text
    elif what == "R^2":
        assert float(re.search(r"R\^2 (-?[0-9.]+)", text).group(1)) >= bound, text
