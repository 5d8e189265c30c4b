"""``rnnx check``: runs on every available backend and reports within tolerance."""

from __future__ import annotations

from click.testing import CliRunner

from rnnx.cli import agreement_rows, main, seed_rows


def test_check_prints_the_seed_value_and_passes():
    result = CliRunner().invoke(main, ["check", "--backend", "numpy"])
    assert result.exit_code == 0, result.output
    assert "[0.79494228 0.81839002 0.83939649 0.85584174]" in result.output
    assert "all checks within tolerance" in result.output


def test_check_rows_carry_real_figures():
    (row,) = seed_rows(("numpy",))
    assert row["seed_err"] < 5e-9 and row["grad_check"] < 1e-7
    rows = agreement_rows(("numpy",))
    f64 = [r for r in rows if r["dtype"] == "float64"]
    assert f64 and all(r["max_abs"] == 0.0 for r in f64)  # NumPy float64 is the reference itself
    f32 = [r for r in rows if r["dtype"] == "float32"]
    assert f32 and all(1e-9 < r["max_rel"] < 1.4e-3 for r in f32)  # float32 rounding is visible


def test_unknown_backend_is_one_line_error():
    result = CliRunner().invoke(main, ["check", "--backend", "tensorflow"])
    assert result.exit_code == 2
    assert "unknown backend 'tensorflow'" in result.output
    assert "Traceback" not in result.output
