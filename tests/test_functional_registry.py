"""The cell registry: records that say what the rest of rnnx needs, host-seeded draws
(:func:`rnnx.init.draw_cell_params`), options checked with clear messages, and registration
from outside."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rnnx._backend import host_rng, to_numpy
from rnnx.functional.registry import CELLS, Cell, get_cell, register_cell, unregister_cell
from rnnx.init import draw_cell_params


@pytest.mark.parametrize("name", list(CELLS))
def test_record_is_consistent_with_its_functions(name, rng):
    """The record's parameter names and shapes are what its forward takes and its backward
    returns gradients for; its states are what the cache and the gradients carry."""
    spec = CELLS[name]
    shapes = spec.shapes(3, 5)
    assert list(shapes) == list(spec.params) and spec.params[0] == "w_x"
    assert shapes["w_x"] == (3, spec.gates * 5)
    if spec.recurrent_weights:
        assert spec.params[1] == "w_h" and shapes["w_h"] == (5, spec.gates * 5)
    else:
        assert "w_h" not in spec.params and spec.step.products == ()
    assert len(spec.gate_order) == spec.gates
    host = draw_cell_params(spec, host_rng(0), 3, 5)
    assert {k: v.shape for k, v in host.items()} == shapes
    x = rng.normal(size=(2, 4, 3))
    out, cache = spec.run(host, x)
    assert out.shape == (2, 4, 5)
    assert all(s.shape == (2, 5) for s in spec.final_states(cache))
    dx, d0, dp = spec.run_backward(cache, rng.normal(size=(2, 4, 5)))
    assert dx.shape == x.shape and set(d0) == {s + "0" for s in spec.states}
    assert {k: v.shape for k, v in dp.items()} == shapes


def test_draws_are_host_seeded_and_per_gate():
    """One seed, the same bits; constant vectors (a layer norm's gain and shift) draw nothing,
    so the drawn weights of ln_lstm equal the LSTM's with the same seed."""
    a = draw_cell_params(CELLS["lstm"], host_rng(3), 4, 6, recurrent_init="orthogonal")
    b = draw_cell_params(CELLS["ln_lstm"], host_rng(3), 4, 6, recurrent_init="orthogonal")
    for k in ("w_x", "w_h", "b"):
        np.testing.assert_array_equal(a[k], b[k])
    for block in range(4):  # an orthogonal recurrent init is orthogonal gate by gate
        q = a["w_h"][:, block * 6 : (block + 1) * 6]
        np.testing.assert_allclose(q.T @ q, np.eye(6), atol=1e-12)
    np.testing.assert_array_equal(b["gamma_h"], np.ones(24))
    np.testing.assert_array_equal(b["beta_c"], np.zeros(6))


def test_forget_bias_needs_a_forget_gate():
    lstm = draw_cell_params(CELLS["lstm"], host_rng(0), 2, 3, forget_bias=1.0)
    plain = draw_cell_params(CELLS["lstm"], host_rng(0), 2, 3)
    np.testing.assert_allclose(lstm["b"] - plain["b"], np.r_[np.zeros(3), np.ones(3), np.zeros(6)],
                               atol=4e-16)
    with pytest.raises(ValueError, match=r"forget_bias is an option of cells with a forget "
                       r"gate .*lstm, ln_lstm.*cell='gru'"):
        draw_cell_params(CELLS["gru"], host_rng(0), 2, 3, forget_bias=1.0)


@pytest.mark.parametrize(("cell", "shift"), [("min_gru", [-1, 0]), ("min_lstm", [1, -1, 0])])
def test_forget_bias_makes_a_minimal_cell_keep_its_state(cell, shift):
    """minGRU keeps ``1 - z``: forget_bias lowers ``b_z``; minLSTM keeps ``f / (f + i)``: it
    raises ``b_f`` and lowers ``b_i``. Either way the kept fraction at a zero input grows."""
    shifted = draw_cell_params(CELLS[cell], host_rng(0), 2, 3, forget_bias=2.0)
    plain = draw_cell_params(CELLS[cell], host_rng(0), 2, 3)
    np.testing.assert_allclose(shifted["b"] - plain["b"], 2.0 * np.repeat(shift, 3), atol=4e-16)

    def kept(b):
        if cell == "min_gru":
            return 1.0 - 1.0 / (1.0 + np.exp(-b[:3]))
        f, i = 1.0 / (1.0 + np.exp(-b[:3])), 1.0 / (1.0 + np.exp(-b[3:6]))
        return f / (f + i)

    assert np.all(kept(shifted["b"]) > kept(plain["b"]))


def test_options_are_checked_by_name_and_value():
    assert CELLS["rnn"].check_options({}) == {"nonlinearity": "tanh"}
    assert CELLS["rnn"].check_options({"nonlinearity": "relu"}) == {"nonlinearity": "relu"}
    with pytest.raises(ValueError,
                       match=r"nonlinearity must be one of \('tanh', 'relu'\) for cell 'rnn'; got 'gelu'"):
        CELLS["rnn"].check_options({"nonlinearity": "gelu"})
    with pytest.raises(ValueError,
                       match=r"nonlinearity is not an option of cell 'gru' \(its options: none\)"):
        CELLS["gru"].check_options({"nonlinearity": "tanh"})


def test_unknown_cell_names_the_known_ones():
    known = r"\['gru', 'gru_reset_before', 'ln_lstm', 'lstm', 'min_gru', 'min_lstm', 'rnn'\]"
    with pytest.raises(ValueError, match=rf"cell must be one of {known}; got 'lru'"):
        get_cell("lru")


def test_register_and_unregister():
    copy = dataclasses.replace(CELLS["gru"], name="gru2")
    register_cell(copy)
    try:
        assert get_cell("gru2") is copy
        with pytest.raises(ValueError, match="registered already"):
            register_cell(copy)
    finally:
        unregister_cell("gru2")
    with pytest.raises(ValueError, match="cell must be one of"):
        get_cell("gru2")
    with pytest.raises(ValueError, match="built-in cell"):
        unregister_cell("lstm")
    with pytest.raises(TypeError, match=r"must be an rnnx\.functional\.registry\.Cell"):
        register_cell({"name": "x"})
    assert isinstance(CELLS["rnn"], Cell)


@pytest.mark.parametrize("kind", ["rnn", "gru_reset_before", "ln_lstm"])
def test_a_cell_given_by_its_step_alone(kind, xp, put, rng):
    """A record with only a ``step`` (no forward or backward, no tuned form) gets both from the
    driver: the same cell's results as the built-in record's, forward and every gradient, masked,
    on every backend (compiled on JAX), to float64 rounding; and it registers and trains."""
    from rnnx.functional import Step
    from rnnx.testing import agreement

    from . import _cells

    spec = CELLS[kind]
    bare = dataclasses.replace(spec, name=f"{kind}_bare", forward=None, backward=None,
                               step=dataclasses.replace(spec.step, tuned=None))
    assert isinstance(bare.step, Step) and bare.workspace
    case = _cells.make_case(kind, rng, 3, 5, 2, 4)
    a = {k: None if v is None else put(v, xp.float64) for k, v in case.items()}
    mask = put(np.array([[True] * 5, [False, True, True, True, False], [True] * 3 + [False] * 2]))
    want = agreement.run_case(spec, a, mask=mask)
    got = agreement.run_case(bare, a, mask=mask)
    assert set(got) == set(want)
    for name in want:
        ref = to_numpy(want[name])
        scale = max(float(np.max(np.abs(ref))), 1e-300)
        assert float(np.max(np.abs(to_numpy(got[name]) - ref))) <= 1e-12 * scale, name
    register_cell(bare)
    try:
        from rnnx.models import RNNClassifier

        X = rng.normal(size=(12, 4, 2))
        clf = RNNClassifier(cell=bare.name, hidden_size=3, epochs=2, batch_size=5,
                            random_state=0).fit(X, rng.integers(0, 2, size=12))
        assert np.isfinite(clf.history_["loss"]).all()
    finally:
        unregister_cell(bare.name)
