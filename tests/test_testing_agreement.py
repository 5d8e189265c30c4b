"""``rnnx.testing.agreement``: seeded cases read off the registry, and the tables ``rnnx check``
prints from them, with real figures."""

from __future__ import annotations

import dataclasses

import numpy as np

from rnnx.functional.registry import CELLS, register_cell, unregister_cell
from rnnx.testing import agreement_rows, cell_variants, make_case, run_case, seed_rows


def test_check_rows_carry_real_figures():
    (row,) = seed_rows(("numpy",))
    assert row["seed_err"] < 5e-9 and row["grad_check"] < 1e-7
    rows = agreement_rows(("numpy",))
    f64 = [r for r in rows if r["dtype"] == "float64"]
    assert f64 and all(r["max_abs"] == 0.0 for r in f64)  # NumPy float64 is the reference itself
    f32 = [r for r in rows if r["dtype"] == "float32"]
    assert f32 and all(1e-9 < r["max_rel"] < 1.4e-3 for r in f32)  # float32 rounding is visible


def test_every_registered_cell_and_option_is_in_the_table():
    labels = {label for label, _, _ in cell_variants()}
    assert labels == {"rnn-tanh", "rnn-relu", *(n for n in CELLS if n != "rnn")}
    register_cell(dataclasses.replace(CELLS["gru"], name="gru_copy"))
    try:
        rows = agreement_rows(("numpy",))
        assert {r["cell"] for r in rows} == labels | {"gru_copy"}
        gru = {r["dtype"]: r["max_rel"] for r in rows if r["cell"] == "gru"}
        copy = {r["dtype"]: r["max_rel"] for r in rows if r["cell"] == "gru_copy"}
        assert copy == gru  # the same record gives the same case and the same numbers
    finally:
        unregister_cell("gru_copy")


def test_cases_follow_the_record(rng):
    for name, spec in CELLS.items():
        case = make_case(spec, rng, 2, 3, 4, 5)
        for param, shape in spec.shapes(4, 5).items():
            assert case[param].shape == shape, (name, param)
        res = run_case(spec, case)
        assert res["out"].shape == (2, 3, 5)
        for param in spec.params:
            assert res["d" + param].shape == case[param].shape, (name, param)
            assert np.all(np.isfinite(res["d" + param]))
        assert set(res) >= {"dx", *(f"d{s}0" for s in spec.states), *(f"{s}_n" for s in spec.states)}
