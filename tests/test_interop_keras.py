"""Keras 3 <-> rnnx, checked by Keras itself (its torch backend computes the reference outputs):
every layer kind both ways on random shapes, weights bit-equal after a round trip, and what rnnx
refuses to convert.

The conversion does not depend on the backend under test, so the module runs once, in the NumPy
session (``RNNX_BACKENDS`` unset or naming numpy), like the ONNX checks. Keras is a test-only
dependency; it needs a backend of its own, and torch is the one the ``test`` extra installs.

Tolerance: float32, :func:`rnnx.testing.rounding_rtol` of ``time`` dependent steps of
``features + hidden + 1``-term sums (the cell's ``rounding_gain``), relative to the reference
array's largest magnitude: 8e-7 .. 5.4e-6 over the shapes drawn from; measured deviations are
0 .. 1.8e-7 of outputs of order 1 (docs/keras.md). Keras's float64 outputs are not compared: on
its torch backend the generic cell loop (SimpleRNN, GRU(reset_after=False)) multiplies with
``keras.ops.matmul``, which computes two float64 operands in float32 there, so float64 is
checked for the dtype and the exact weights only.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from ._selection import numpy_selected
from ._threads import one_thread  # noqa: F401  (autouse fixture)

if not numpy_selected():
    pytest.skip("the Keras interop is checked in the numpy session only", allow_module_level=True)

# Keras 3 picks its backend at import; the test extra installs torch (not tensorflow or jax).
os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", minversion="3",
                            reason="Keras 3 computes the reference outputs (the test extra)")
pytest.importorskip("torch", reason="Keras runs on its torch backend here (the test extra)")

from rnnx._backend import to_numpy  # noqa: E402
from rnnx.functional.registry import get_cell  # noqa: E402
from rnnx.interop import GRU_RESET_BEFORE, from_keras, to_keras  # noqa: E402
from rnnx.layers import Recurrent  # noqa: E402
from rnnx.testing import assert_close, assert_equal, rounding_rtol  # noqa: E402

# (rnnx cell, nonlinearity, Keras layer class, its options)
KINDS = [
    pytest.param("rnn", "tanh", "SimpleRNN", {}, id="simple-tanh"),
    pytest.param("rnn", "relu", "SimpleRNN", {"activation": "relu"}, id="simple-relu"),
    pytest.param("lstm", "tanh", "LSTM", {}, id="lstm"),
    pytest.param("gru", "tanh", "GRU", {}, id="gru-reset-after"),
    pytest.param(GRU_RESET_BEFORE, "tanh", "GRU", {"reset_after": False}, id="gru-reset-before"),
]
BIDIR = pytest.mark.parametrize("bidirectional", [False, True], ids=["1dir", "bidir"])
SEQ = pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])


def _np(t):
    """A Keras tensor or variable (through its torch tensor) on the host
    (``keras.ops.convert_to_numpy`` warns on torch tensors under NumPy 2)."""
    return to_numpy(getattr(t, "value", t))


def _weights(layer):
    """The layer's weights as host arrays (``get_weights`` warns under NumPy 2)."""
    return [_np(v) for v in layer.weights]


def _randomise(rng, layer):
    for v in layer.weights:
        v.assign(rng.uniform(-0.8, 0.8, tuple(v.shape)).astype(v.dtype))


def _shapes(rng):
    """(batch, time, features, hidden), random."""
    return (int(rng.integers(1, 6)), int(rng.integers(1, 10)), int(rng.integers(1, 7)),
            int(rng.integers(1, 8)))


def _keras_layer(rng, cls, options, features, hidden, *, bidirectional=False, **kw):
    """A built Keras layer with every weight drawn from ``rng`` (Keras's default biases are
    zeros, which would hide a bias mix-up)."""
    layer = getattr(keras.layers, cls)(hidden, **options, **kw)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer)
    layer.build((None, None, features))
    _randomise(rng, layer)
    return layer


def _close(got, want, cell, time, features, hidden):
    """float32 agreement within the rounding bound of the recurrence (module notes)."""
    tol = rounding_rtol(np.float32, np, steps=time, terms=features + hidden + 1,
                        gain=get_cell(cell).rounding_gain)
    # An absolute bound scaled by the largest |reference|: rounding errors follow a sum's
    # largest terms, not an element that cancels to near zero (rnnx.testing notes).
    assert_close(np.asarray(got), np.asarray(want), rtol=0.0,
                 atol=tol * max(float(np.abs(want).max()), 1e-30))


@SEQ
@BIDIR
@pytest.mark.parametrize(("cell", "nonlinearity", "cls", "options"), KINDS)
def test_keras_layer_in_rnnx_gives_keras_outputs(rng, cell, nonlinearity, cls, options,
                                                 bidirectional, return_sequences):
    """Keras -> rnnx: the rnnx layer's output is Keras's; -> Keras again: the same weights."""
    batch, time, features, hidden = _shapes(rng)
    k = _keras_layer(rng, cls, options, features, hidden, bidirectional=bidirectional,
                     return_sequences=return_sequences)
    x = rng.standard_normal((batch, time, features)).astype(np.float32)
    layer = from_keras(k)
    assert isinstance(layer, Recurrent)
    assert (layer.cell, layer.nonlinearity, layer.num_layers, layer.bidirectional,
            layer.return_sequences) == (cell, nonlinearity, 1, bidirectional, return_sequences)
    assert all(v.dtype == np.float32 for v in layer.params.values())
    out = layer.forward(x)
    assert out.shape == ((batch, time) if return_sequences else (batch,)) + (
        (2 if bidirectional else 1) * hidden,)
    _close(out, _np(k(x)), cell, time, features, hidden)
    back = to_keras(layer)
    assert type(back) is type(k)
    for a, b in zip(_weights(back), _weights(k), strict=True):
        assert_equal(a, b)


@SEQ
@BIDIR
@pytest.mark.parametrize(("cell", "nonlinearity", "cls", "options"), KINDS)
def test_rnnx_layer_in_keras_gives_rnnx_outputs(rng, cell, nonlinearity, cls, options,
                                                bidirectional, return_sequences):
    """rnnx -> Keras: Keras's output is rnnx's; -> rnnx again: bit-equal parameters."""
    batch, time, features, hidden = _shapes(rng)
    layer = Recurrent(features, hidden, cell=cell, nonlinearity=nonlinearity,
                      bidirectional=bidirectional, return_sequences=return_sequences,
                      seed=int(rng.integers(1 << 30)), dtype="float32")
    k = to_keras(layer)
    rnn = k.forward_layer if bidirectional else k
    assert type(rnn).__name__ == cls and rnn.built and rnn.return_sequences == return_sequences
    assert keras.activations.serialize(rnn.cell.activation) == nonlinearity
    if bidirectional:
        assert isinstance(k, keras.layers.Bidirectional) and k.merge_mode == "concat"
    if cls == "GRU":
        assert rnn.cell.reset_after == options.get("reset_after", True)
    x = rng.standard_normal((batch, time, features)).astype(np.float32)
    _close(_np(k(x)), layer.forward(x), cell, time, features, hidden)
    again = from_keras(k)
    assert set(again.params) == set(layer.params)
    for name, v in layer.params.items():
        assert_equal(again.params[name], v, err_msg=name)


@BIDIR
@pytest.mark.parametrize(("cell", "nonlinearity", "cls", "options"), KINDS)
def test_return_state_maps_onto_rnnx_final_states(rng, cell, nonlinearity, cls, options,
                                                  bidirectional):
    """Keras's ``[out, h(, c)]`` (bidirectional: forward's states, then backward's) is rnnx's
    ``(out, h_n)`` / ``(out, (h_n, c_n))`` with one ``h_n[d]`` per direction."""
    batch, time, features, hidden = _shapes(rng)
    k = _keras_layer(rng, cls, options, features, hidden, bidirectional=bidirectional,
                     return_sequences=True, return_state=True)
    x = rng.standard_normal((batch, time, features)).astype(np.float32)
    want = [_np(t) for t in k(x)]
    out, states = from_keras(k).forward(x)
    states = states if isinstance(states, tuple) else (states,)
    n = len(states)
    got = [out] + [states[i][d] for d in range(2 if bidirectional else 1) for i in range(n)]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        _close(g, w, cell, time, features, hidden)


def test_float64_travels_exactly_both_ways(rng):
    """The dtype is carried and the weights are copied bit for bit, in float64 too."""
    layer = Recurrent(3, 4, cell="lstm", bidirectional=True, seed=1, dtype="float64")
    k = to_keras(layer)
    assert k.forward_layer.cell.kernel.dtype == "float64" and k.compute_dtype == "float64"
    again = from_keras(k)
    for name, v in layer.params.items():
        assert_equal(again.params[name], v, err_msg=name)
    as32 = from_keras(k, dtype="float32")
    assert all(v.dtype == np.float32 for v in as32.params.values())


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
def test_use_bias_false_is_zero_biases(rng, cls):
    """rnnx has no bias-free cells: ``use_bias=False`` converts to zero biases (the same maths);
    back in Keras the layer has ``use_bias=True`` and those zeros."""
    k = _keras_layer(rng, cls, {"use_bias": False}, 3, 5, return_sequences=True)
    layer = from_keras(k)
    biases = [n for n in layer.params if n.split(".")[-1].startswith("b")]
    assert biases and all(not np.any(layer.params[n]) for n in biases)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    _close(layer.forward(x), _np(k(x)), layer.cell, 6, 3, 5)
    assert to_keras(layer).cell.use_bias


def test_unroll_and_the_generic_rnn_wrapper_are_accepted(rng):
    """``unroll=True`` (the same maths, unrolled) and ``keras.layers.RNN(LSTMCell(...))``."""
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    k = _keras_layer(rng, "GRU", {"unroll": True}, 3, 4)
    _close(from_keras(k).forward(x), _np(k(x)), "gru", 5, 3, 4)
    cellwise = keras.layers.RNN(keras.layers.LSTMCell(4), return_sequences=True)
    cellwise.build((None, None, 3))
    _randomise(rng, cellwise)
    layer = from_keras(cellwise)
    assert layer.cell == "lstm" and layer.return_sequences
    _close(layer.forward(x), _np(cellwise(x)), "lstm", 5, 3, 4)


def test_placement_and_layer_options(rng):
    """Parameters land on the chosen backend and device; layer options override Keras's."""
    strict = pytest.importorskip("array_api_strict")
    dev = strict.Device("device1")
    k = _keras_layer(rng, "LSTM", {}, 3, 4)
    layer = from_keras(k, backend="array_api_strict", device=dev, return_sequences=True)
    assert layer.return_sequences and all(v.device == dev for v in layer.params.values())
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    out = layer.forward(strict.asarray(x, device=dev))
    assert out.device == dev
    got = to_numpy(out)
    k.return_sequences = True
    _close(got, _np(k(x)), "lstm", 5, 3, 4)


# -- refusals ----------------------------------------------------------------------------------

def _built(layer, features=3):
    layer.build((None, None, features))
    return layer


REFUSED = [
    ("go_backwards", lambda: _built(keras.layers.GRU(4, go_backwards=True)), ValueError,
     "go_backwards=True"),
    ("merge-sum", lambda: _built(keras.layers.Bidirectional(keras.layers.LSTM(4),
                                                           merge_mode="sum")),
     ValueError, "merge_mode='sum'"),
    ("merge-none", lambda: _built(keras.layers.Bidirectional(keras.layers.LSTM(4),
                                                            merge_mode=None)),
     ValueError, "merge_mode=None"),
    ("merge-mul", lambda: _built(keras.layers.Bidirectional(keras.layers.GRU(4),
                                                           merge_mode="mul")),
     ValueError, "merge_mode='mul'"),
    ("merge-ave", lambda: _built(keras.layers.Bidirectional(keras.layers.SimpleRNN(4),
                                                           merge_mode="ave")),
     ValueError, "merge_mode='ave'"),
    ("bidir-swapped", lambda: _built(keras.layers.Bidirectional(
        keras.layers.LSTM(4, go_backwards=True), backward_layer=keras.layers.LSTM(4))),
     ValueError, "forward go_backwards=True, backward go_backwards=False"),
    ("simple-sigmoid", lambda: _built(keras.layers.SimpleRNN(4, activation="sigmoid")),
     ValueError, "activation='sigmoid'"),
    ("lstm-relu", lambda: _built(keras.layers.LSTM(4, activation="relu")), ValueError,
     "activation='relu'"),
    ("gru-hard-sigmoid", lambda: _built(keras.layers.GRU(4, recurrent_activation="hard_sigmoid")),
     ValueError, "recurrent_activation='hard_sigmoid'"),
    ("custom-activation", lambda: _built(keras.layers.SimpleRNN(4, activation=np.sin)),
     ValueError, "activation='sin'"),
    ("dropout", lambda: _built(keras.layers.LSTM(4, dropout=0.1)), ValueError, "dropout=0.1"),
    ("recurrent_dropout", lambda: _built(keras.layers.GRU(4, recurrent_dropout=0.25)),
     ValueError, "recurrent_dropout=0.25"),
    ("mixed-precision", lambda: _built(keras.layers.LSTM(4, dtype="mixed_float16")), ValueError,
     "dtype policy 'mixed_float16'"),
    ("bidir-float16-output", lambda: _built(keras.layers.Bidirectional(keras.layers.LSTM(4),
                                                                      dtype="float16")),
     ValueError, "casts its output to float16"),
    ("not-built", lambda: keras.layers.LSTM(4), ValueError, "is not built"),
    ("other-layer", lambda: _built(keras.layers.Dense(4)), TypeError, "got Dense"),
    ("conv-lstm", lambda: keras.layers.ConvLSTM1D(2, 3), TypeError,
     "ConvLSTM1D has a cell of type ConvLSTMCell"),
    ("stacked-cells", lambda: _built(keras.layers.RNN([keras.layers.LSTMCell(4),
                                                       keras.layers.LSTMCell(4)])),
     TypeError, "StackedRNNCells"),
    ("bidir-mismatch", lambda: _built(keras.layers.Bidirectional(
        keras.layers.LSTM(4), backward_layer=keras.layers.GRU(4, go_backwards=True))),
     ValueError, "differ"),
]


@pytest.mark.parametrize(("make", "exc", "match"), [r[1:] for r in REFUSED],
                         ids=[r[0] for r in REFUSED])
def test_what_rnnx_does_not_have_is_refused(make, exc, match):
    layer = make()
    with pytest.raises(exc, match=match):
        from_keras(layer)


def test_stateful_is_refused_once_built():
    layer = keras.layers.LSTM(4, stateful=True)
    layer.build((2, 5, 3))  # a stateful layer builds with a fixed batch
    with pytest.raises(ValueError, match="stateful=True"):
        from_keras(layer)


@pytest.mark.parametrize(("layer", "exc", "match"), [
    (Recurrent(3, 4, cell="gru", num_layers=2, seed=0), ValueError,
     "num_layers=2: Keras stacks layers itself"),
    (Recurrent(3, 4, cell="ln_lstm", seed=0), ValueError, "'ln_lstm'.*no Keras layer.*rnn, lstm"),
    (object(), TypeError, "got object"),
], ids=["stacked", "ln_lstm", "not-a-layer"])
def test_to_keras_refuses_what_keras_has_not(layer, exc, match):
    with pytest.raises(exc, match=match):
        to_keras(layer)
