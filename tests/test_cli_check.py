"""``rnnx check``: runs on every available backend and reports within tolerance."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rnnx._backend import available_backends, device_label
from rnnx.cli import main


def test_check_prints_the_seed_value_and_passes():
    result = CliRunner().invoke(main, ["check", "--backend", "numpy"])
    assert result.exit_code == 0, result.output
    assert "[0.79494228 0.81839002 0.83939649 0.85584174]" in result.output
    assert "all checks within tolerance" in result.output


def test_unknown_backend_is_one_line_error():
    result = CliRunner().invoke(main, ["check", "--backend", "tensorflow"])
    assert result.exit_code == 2
    assert "unknown backend 'tensorflow'" in result.output
    assert "Traceback" not in result.output


def test_check_runs_on_each_backend_and_device(backend):
    """``rnnx check --backend NAME`` for every backend the fixtures select and can run here
    (CuPy and torch's CUDA device where a GPU is visible): its rows are there and pass."""
    name, _, dev = backend
    result = CliRunner().invoke(main, ["check", "--backend", name])
    assert result.exit_code == 0, result.output
    assert "all checks within tolerance" in result.output
    rows = [line.split() for line in result.output.splitlines()]
    label = device_label(dev)
    assert any(r[:2] == [name, label] for r in rows if len(r) > 2), result.output  # seed table
    assert any(r[1:3] == [name, label] for r in rows if len(r) > 3), result.output  # agreement


def test_check_names_why_a_backend_is_left_out():
    """Asked for by name, a backend that cannot run here is a one-line usage error with the
    reason (unasked, the table lists it as skipped with the reason: the agreement session)."""
    down = [s for s in available_backends().values() if not s.available]
    if not down:
        pytest.skip("every backend runs here")
    asked = CliRunner().invoke(main, ["check", "--backend", down[0].name])
    assert asked.exit_code == 2
    assert f"{down[0].name} is unavailable here: {down[0].reason}" in asked.output
    assert "Traceback" not in asked.output
