"""The estimators' hyper-parameter table (``rnnx.models._constraints``): every constrained
parameter is refused, with a message naming it, what it accepts and what it got; ``bool`` is
not a number; NaN and infinity are refused; values on the edges of the ranges are accepted; the
cell-dependent checks live in one function and read the live cell registry."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rnnx.functional.registry import CELLS, register_cell, unregister_cell
from rnnx.models import RNNClassifier, RNNRegressor, ScratchSimpleRNNClassifier
from rnnx.models._constraints import (
    PARAMETER_CONSTRAINTS,
    Interval,
    Options,
    StrOptions,
    check_cell_options,
    validate,
)

X = np.random.default_rng(0).normal(size=(8, 3, 2))  # (n_samples, time, features)
Y = np.arange(8) % 2
TINY = dict(hidden_size=2, epochs=1, batch_size=4, random_state=0)

DROPOUT = ("dropout must be a probability in [0, 1) (the share of a layer's outputs zeroed "
           "between stacked layers while training); got ")

# One representative bad value per constrained parameter, with the whole message.
BAD = {
    "hidden_size": (0, "hidden_size must be a positive int; got 0"),
    "epochs": (-3, "epochs must be a positive int; got -3"),
    "batch_size": (2.0, "batch_size must be a positive int; got 2.0"),
    "n_iter_no_change": (0, "n_iter_no_change must be a positive int; got 0"),
    "learning_rate": (0.0, "learning_rate must be a positive finite number; got 0.0"),
    "tol": (-1e-3, "tol must be a non-negative finite number; got -0.001"),
    "optimizer": ("adamw", "optimizer must be one of ['adagrad', 'adam', 'momentum', "
                           "'rmsprop', 'sgd']; got 'adamw'"),
    "clip_norm": (-1, "clip_norm must be a non-negative finite number (0: off) or None; got -1"),
    "validation_fraction": (1.0, "validation_fraction must be in (0, 1) or None; got 1.0"),
    "dtype": ("float16", "dtype must be 'float32', 'float64' or None; got 'float16'"),
    "num_layers": (0, "num_layers must be a positive int; got 0"),
    "bidirectional": ("yes", "bidirectional must be True or False; got 'yes'"),
    "dropout": (1.0, DROPOUT + "1.0"),
    "forget_bias": ("1", "forget_bias must be a finite number; got '1'"),
    "cell": ("gru-ish", f"cell must be one of {sorted(CELLS)}; got 'gru-ish'"),
    "init": ("zeros", "init must be one of ['gaussian', 'he', 'orthogonal', 'torch', 'xavier']; "
                      "got 'zeros'"),
    "recurrent_init": ("eye", "recurrent_init must be one of ['gaussian', 'he', 'orthogonal', "
                              "'torch', 'xavier']; got 'eye'"),
}

INTS = [k for k, v in PARAMETER_CONSTRAINTS.items() if any(
    isinstance(c, Interval) and c.kind is int for c in v)]
FLOATS = [k for k, v in PARAMETER_CONSTRAINTS.items() if any(
    isinstance(c, Interval) and c.kind is float for c in v)]


def test_every_constrained_parameter_has_a_bad_value_here():
    assert set(BAD) == set(PARAMETER_CONSTRAINTS)
    assert set(INTS) == {"hidden_size", "epochs", "batch_size", "n_iter_no_change", "num_layers"}
    assert set(FLOATS) == {"learning_rate", "tol", "clip_norm", "validation_fraction", "dropout",
                           "forget_bias"}


@pytest.mark.parametrize("name", sorted(BAD))
def test_fit_refuses_each_bad_parameter_naming_it(name):
    value, message = BAD[name]
    with pytest.raises(ValueError) as info:
        RNNClassifier(**{**TINY, name: value}).fit(X, Y)
    assert str(info.value) == message


@pytest.mark.parametrize("name", sorted(BAD))
def test_validate_alone_gives_the_same_message(name):
    value, message = BAD[name]
    with pytest.raises(ValueError) as info:
        validate({name: value}, PARAMETER_CONSTRAINTS)
    assert str(info.value) == message


@pytest.mark.parametrize("name", INTS + FLOATS)
@pytest.mark.parametrize("flag", [True, False])
def test_bool_is_not_a_number(name, flag):
    with pytest.raises(ValueError, match=f"^{name} must be .*; got {flag}$"):
        validate({name: flag}, PARAMETER_CONSTRAINTS)


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_are_refused(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be .*; got {value!r}$"):
        validate({name: value}, PARAMETER_CONSTRAINTS)


@pytest.mark.parametrize("params", [
    dict(tol=0), dict(tol=0.0), dict(learning_rate=1), dict(learning_rate=np.float64(1e-3)),
    dict(dropout=0), dict(dropout=0.999), dict(clip_norm=None), dict(clip_norm=1e-12),
    dict(clip_norm=0), dict(clip_norm=0.0),
    dict(validation_fraction=None), dict(validation_fraction=0.5), dict(dtype=None),
    dict(dtype="float32"), dict(dtype=np.str_("float64")), dict(bidirectional=True),
    dict(bidirectional=False), dict(forget_bias=-2), dict(forget_bias=0.0), dict(hidden_size=1),
    dict(optimizer="sgd"),
])
def test_values_on_the_edges_are_accepted(params):
    validate(params, PARAMETER_CONSTRAINTS)


@pytest.mark.parametrize("params, message", [
    (dict(bidirectional=1), "bidirectional must be True or False; got 1"),
    (dict(bidirectional=np.True_), "bidirectional must be True or False; got np.True_"),
    (dict(dtype=np.float32), "dtype must be 'float32', 'float64' or None; got"),
    (dict(optimizer=None), "optimizer must be one of"),
    (dict(learning_rate=np.float32(0.1)), "learning_rate must be a positive finite number"),
    (dict(hidden_size=np.int64(4)), "hidden_size must be a positive int; got"),
    (dict(validation_fraction=0), "validation_fraction must be in (0, 1) or None; got 0"),
    (dict(dropout=-0.1), DROPOUT + "-0.1"),
])
def test_near_misses_are_refused(params, message):
    with pytest.raises(ValueError) as info:
        validate(params, PARAMETER_CONSTRAINTS)
    assert str(info.value).startswith(message), str(info.value)


def test_the_first_bad_parameter_in_table_order_is_reported():
    with pytest.raises(ValueError, match=r"^hidden_size must"):
        validate({"dropout": 2.0, "epochs": 0, "hidden_size": 0}, PARAMETER_CONSTRAINTS)
    with pytest.raises(ValueError, match=r"^epochs must"):
        validate({"dropout": 2.0, "epochs": 0, "hidden_size": 3}, PARAMETER_CONSTRAINTS)


def test_a_huge_int_passes_the_range_check_without_overflow():
    validate({"hidden_size": 10**400}, PARAMETER_CONSTRAINTS)


@pytest.mark.parametrize("est", [RNNClassifier, RNNRegressor, ScratchSimpleRNNClassifier])
def test_every_estimator_checks_the_table(est):
    with pytest.raises(ValueError, match=r"^num_layers must be a positive int; got 0$"):
        est(**TINY, num_layers=0).fit(X, Y.astype(float))


# ------------------------------------------------------------------ the mechanism


def test_interval_closed_sides_and_descriptions():
    both = Interval(int, 2, 5)
    assert [both.accepts(v) for v in (1, 2, 5, 6, 3.0)] == [False, True, True, False, False]
    assert both.describe() == "an int in [2, 5]"
    right = Interval(float, None, 1, closed="right")
    assert [right.accepts(v) for v in (-1e9, 1, 1.5)] == [True, True, False]
    assert right.describe() == "in (-inf, 1]"
    assert Interval(float, 0, None, closed="left").describe() == "a non-negative finite number"
    with pytest.raises(ValueError, match="closed must be"):
        Interval(float, 0, 1, closed="open")
    with pytest.raises(TypeError, match="Interval kind must be int or float"):
        Interval(complex, 0, 1)


def test_options_compare_type_and_value():
    opts = Options((True, None, "a"))
    assert opts.accepts(True) and opts.accepts(None) and opts.accepts("a")
    assert not opts.accepts(1) and not opts.accepts(1.0) and not opts.accepts(False)
    assert opts.describe() == "True, None or 'a'"
    assert Options((None,)).describe() == "None"


def test_str_options_follow_a_live_collection():
    reg = {"b": 1}
    opts = StrOptions(reg)
    assert not opts.accepts("a")
    reg["a"] = 2
    assert opts.accepts("a") and opts.describe() == "one of ['a', 'b']"
    assert not opts.accepts(["a"])  # unhashable: refused, not a TypeError


def test_parameters_absent_from_the_dict_are_not_checked():
    validate({}, PARAMETER_CONSTRAINTS)
    validate({"unconstrained": object()}, PARAMETER_CONSTRAINTS)


# ------------------------------------------------------------------ cell-dependent checks


def test_cell_must_be_registered():
    with pytest.raises(ValueError) as info:
        check_cell_options("gru-ish", {})
    assert str(info.value) == f"cell must be one of {sorted(CELLS)}; got 'gru-ish'"
    with pytest.raises(ValueError, match=r"^cell must be one of .*; got 'nope'$"):
        RNNClassifier(**TINY, cell="nope").fit(X, Y)


def test_forget_bias_only_for_cells_with_a_forget_gate():
    with_gate = [n for n, c in CELLS.items() if c.forget_gates]
    assert {"lstm", "ln_lstm", "min_gru", "min_lstm"} <= set(with_gate)
    for cell in with_gate:
        check_cell_options(cell, {"forget_bias": 1.0})
    for cell in sorted(CELLS):
        check_cell_options(cell, {"forget_bias": 0.0})  # 0: unset
    for cell in sorted(set(CELLS) - set(with_gate)):
        with pytest.raises(ValueError) as info:
            check_cell_options(cell, {"forget_bias": 1.0})
        assert str(info.value) == ("forget_bias is an option of cells with a forget gate (it "
                                   "shifts the gates that keep the state; cells with them: "
                                   f"{', '.join(with_gate)}); got forget_bias=1.0 with "
                                   f"cell={cell!r}")


def test_nonlinearity_only_where_the_cell_takes_it():
    check_cell_options("rnn", {"nonlinearity": "relu"})
    with pytest.raises(ValueError, match=r"nonlinearity must be one of \('tanh', 'relu'\)"):
        check_cell_options("rnn", {"nonlinearity": "sigmoid"})
    for cell in sorted(n for n, c in CELLS.items() if "nonlinearity" not in c.options):
        check_cell_options(cell, {"nonlinearity": "tanh"})
        with pytest.raises(ValueError, match=f"cell {cell!r} has none"):
            check_cell_options(cell, {"nonlinearity": "relu"})


def test_cell_check_reads_the_live_registry():
    register_cell(dataclasses.replace(CELLS["rnn"], name="mine"))
    try:
        check_cell_options("mine", {})
        with pytest.raises(ValueError, match=r"'mine'.*; got 'other'"):
            check_cell_options("other", {})
    finally:
        unregister_cell("mine")


def test_scratch_classifier_checks_its_fixed_cell():
    # Its cell is fixed to the Elman one; forget_bias is not its parameter, so stays unset.
    assert "forget_bias" not in ScratchSimpleRNNClassifier().get_params()
    clf = ScratchSimpleRNNClassifier(**TINY).fit(X, Y)
    assert clf.n_epochs_ == 1


def test_clip_norm_zero_is_off_like_none():
    """``clip_norm=0`` turns clipping off, as ``None`` does and as ``--clip 0`` does on the
    command line (issue 24 found ``--clip 0`` off but ``clip_norm=0`` an error): the fits are
    the same bits, and both differ from a clipped fit whose bound acts."""
    fits = [RNNClassifier(**{**TINY, "epochs": 3, "learning_rate": 0.5, "clip_norm": c}).fit(X, Y)
            for c in (0, None, 1e-3)]
    w = [dict(f.network_.parameters()) for f in fits]
    for k in w[0]:
        np.testing.assert_array_equal(w[0][k], w[1][k])
    assert any(not np.array_equal(w[0][k], w[2][k]) for k in w[0])
    assert fits[0].get_params()["clip_norm"] == 0
