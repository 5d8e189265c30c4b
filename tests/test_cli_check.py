"""``rnnx check``: runs on every available backend and reports within tolerance."""

from __future__ import annotations

from click.testing import CliRunner

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
