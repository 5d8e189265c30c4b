"""The stacked/bidirectional ``Recurrent`` layer against torch.nn.RNN/LSTM/GRU with the same
weights (float64), with initial states and variable lengths; seeded init and dropout masks
identical on every backend; finite differences through dropout and masks for every registered
cell (the layer-normalised LSTM, which torch lacks, included)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import to_numpy
from rnnx.functional.registry import CELLS as REGISTRY
from rnnx.interop.torch import LAYOUTS as TORCH_LAYOUTS
from rnnx.layers import GRU, LSTM, Recurrent, SimpleRNN
from rnnx.layers.recurrent import layer_suffixes
from rnnx.testing import finite_difference_grads, grad_check_error

from ._cell_checks import max_rel_dev
from ._cells import KINDS
from ._oracle import torch_stack

# Cells with a torch.nn equivalent are compared with it; every registered cell is checked by
# finite differences and shapes.
CELLS = [n for n in REGISTRY if n in TORCH_LAYOUTS]
# (num_layers, bidirectional)
CONFIGS = [(1, False), (2, False), (1, True), (2, True)]
CONFIG_IDS = ["1layer", "2layers", "bidir", "2layers-bidir"]
LENGTHS = np.array([6, 3, 1])


def host_layers(layer):
    """Per (layer, direction) host dicts in torch's order, for the oracle."""
    out = []
    for sfx in layer_suffixes(layer.num_layers, layer.bidirectional):
        p = layer.layer_params(int(sfx[1:].split("_")[0]), sfx.endswith("_reverse"))
        out.append({k: to_numpy(v) for k, v in p.items()})
    return out


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_matches_torch(xp, device, put, rng, cell, num_layers, bidirectional,
                                 with_lengths):
    """Outputs, final states, dx, initial-state gradients and every parameter gradient equal
    torch's in float64 to 1e-10 relative to each array's max (same operations, other order)."""
    batch, time, features, hidden = 3, 6, 4, 5
    n = num_layers * (2 if bidirectional else 1)
    layer = Recurrent(features, hidden, cell=cell, num_layers=num_layers,
                      bidirectional=bidirectional, return_sequences=True, seed=7,
                      backend=_name(xp), device=device, dtype="float64")
    x = rng.normal(size=(batch, time, features))
    h0 = rng.normal(size=(n, batch, hidden)) * 0.5
    c0 = rng.normal(size=(n, batch, hidden)) * 0.5 if cell == "lstm" else None
    dout = rng.normal(size=(batch, time, layer.output_size))
    dh_n = rng.normal(size=(n, batch, hidden))
    dc_n = rng.normal(size=(n, batch, hidden)) if cell == "lstm" else None
    lengths = LENGTHS if with_lengths else None
    ref = torch_stack(cell, x, host_layers(layer), h0=h0, c0=c0, dhs=dout, dh_n=dh_n, dc_n=dc_n,
                      lengths=lengths, num_layers=num_layers, bidirectional=bidirectional)
    got = {"out": layer.forward(put(x), put(h0), None if c0 is None else put(c0),
                                mask=None if lengths is None else put(lengths))}
    state = layer.final_state
    got["h_n"] = state[0]
    got["dx"] = layer.backward(put(dout), put(dh_n), None if dc_n is None else put(dc_n))
    got["dh0"] = layer.dh0
    if cell == "lstm":
        got["c_n"], got["dc0"] = state[1], layer.dc0
    for name, value in got.items():
        assert device_of(value) == device, name
        err = max_rel_dev(value, ref[name])
        assert err <= 1e-10, f"{name}: {err:.2e}"
    for sfx, g_ref in zip(layer_suffixes(num_layers, bidirectional), ref["layers"]):
        for gname, want in g_ref.items():
            value = layer.grads[f"{sfx}.{gname[1:]}"]
            assert device_of(value) == device
            err = max_rel_dev(value, want)
            assert err <= 1e-10, f"{sfx}.{gname}: {err:.2e}"


def _name(xp):
    from rnnx._backend import backend_name

    return backend_name(xp)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bidir"])
@pytest.mark.parametrize("cell", CELLS)
def test_final_state_output_matches_torch_h_n(xp, device, put, rng, cell, bidirectional,
                                              with_lengths):
    """``return_sequences=False`` returns the last layer's final states (forward, then
    reverse; each sample's own last valid state under lengths) and backpropagates their
    gradient, as torch's ``h_n[-dirs:]`` does (float64, 1e-10 relative)."""
    layer = Recurrent(3, 4, cell=cell, num_layers=2, bidirectional=bidirectional, seed=3,
                      backend=_name(xp), device=device)
    dirs = layer.dirs
    x = rng.normal(size=(2, 5, 3))
    dout = rng.normal(size=(2, dirs * 4))
    dh_n = np.zeros((2 * dirs, 2, 4))
    dh_n[-dirs:] = dout.reshape(2, dirs, 4).transpose(1, 0, 2)
    lengths = np.array([5, 2]) if with_lengths else None
    ref = torch_stack(cell, x, host_layers(layer), dh_n=dh_n, num_layers=2,
                      bidirectional=bidirectional, lengths=lengths)
    out = layer.forward(put(x), mask=None if lengths is None else put(lengths))
    want = np.concatenate(list(ref["h_n"][-dirs:]), axis=1)
    assert max_rel_dev(out, want) <= 1e-10
    dx = layer.backward(put(dout))
    assert device_of(dx) == device
    assert max_rel_dev(dx, ref["dx"]) <= 1e-10


@pytest.mark.parametrize("cell", KINDS)
def test_return_state_shapes(rng, cell):
    layer = Recurrent(3, 4, cell=cell, num_layers=2, bidirectional=True, return_state=True,
                      return_sequences=True, seed=0)
    out, state = layer.forward(rng.normal(size=(2, 5, 3)))
    assert tuple(out.shape) == (2, 5, 8)
    with_c = "c" in REGISTRY[cell].states
    h_n = state[0] if with_c else state
    assert tuple(h_n.shape) == (4, 2, 4)
    if with_c:
        assert tuple(state[1].shape) == (4, 2, 4)


def test_single_layer_classes_equal_recurrent(rng):
    """LSTM/GRU/SimpleRNN layers and a one-layer Recurrent with the same seed hold the same
    weights bit for bit and give the same outputs and gradients."""
    x = rng.normal(size=(3, 4, 2))
    dout = rng.normal(size=(3, 5))
    for cls, cell in ((SimpleRNN, "rnn"), (LSTM, "lstm"), (GRU, "gru")):
        one = cls(2, 5, seed=11)
        rec = Recurrent(2, 5, cell=cell, seed=11)
        for k, v in one.params.items():
            np.testing.assert_array_equal(to_numpy(v), to_numpy(rec.params[f"l0.{k}"]))
        np.testing.assert_array_equal(to_numpy(one.forward(x)), to_numpy(rec.forward(x)))
        np.testing.assert_array_equal(to_numpy(one.backward(dout)), to_numpy(rec.backward(dout)))
        for k, v in one.grads.items():
            np.testing.assert_array_equal(to_numpy(v), to_numpy(rec.grads[f"l0.{k}"]))


def test_seeded_init_and_dropout_same_on_every_backend(xp, device, put, rng):
    """One seed: the same weights (bit for bit, float64) and the same dropout masks on every
    backend, so the outputs agree with NumPy's to float64 rounding."""
    x = rng.normal(size=(2, 5, 3))
    kw = {"cell": "lstm", "num_layers": 3, "bidirectional": True, "dropout": 0.4,
          "return_sequences": True, "seed": 5}
    ref = Recurrent(3, 4, **kw)
    got = Recurrent(3, 4, backend=_name(xp), device=device, **kw)
    for k, v in ref.params.items():
        np.testing.assert_array_equal(to_numpy(got.params[k]), v)
    want = ref.forward(x)
    out = got.forward(put(x))
    assert device_of(out) == device
    assert max_rel_dev(out, want) <= 1e-12
    # The masks, drawn on each backend's device from the same host keys, are bit for bit NumPy's.
    assert len(got._drops) == len(ref._drops) == 2
    for mine, theirs in zip(got._drops, ref._drops):
        assert device_of(mine) == device
        np.testing.assert_array_equal(to_numpy(mine), theirs)
    # The drops differ from no-dropout, so the masks are really applied.
    assert max_rel_dev(Recurrent(3, 4, **kw).eval().forward(x), want) > 1e-3


@pytest.mark.parametrize("cell", KINDS)
def test_finite_differences_through_dropout_and_lengths(xp, put, rng, cell):
    """Central differences (float64, step 1e-6; ~1e-10 for a correct gradient) of a 2-layer
    bidirectional layer with dropout and a mask: a fresh layer with the same seed redraws the
    same dropout masks, so the loss is a fixed function of the weights."""
    base = Recurrent(2, 3, cell=cell, num_layers=2, bidirectional=True, dropout=0.3,
                     return_sequences=True, seed=9, backend=_name(xp), dtype="float64")
    params = {k: put(to_numpy(v)) for k, v in base.params.items()}
    x = put(rng.normal(size=(2, 4, 2)))
    dout = put(rng.normal(size=(2, 4, 6)))
    mask = put(np.array([[False, True, True, True], [True, True, True, False]]))
    kw = {"cell": cell, "num_layers": 2, "bidirectional": True, "dropout": 0.3,
          "return_sequences": True, "seed": 9}

    def loss(x, **p):
        layer = Recurrent.from_weights(p, **kw)
        out = layer.forward(x, mask=mask)
        return _ns(out).sum(out * dout)

    layer = Recurrent.from_weights(params, **kw)
    layer.forward(x, mask=mask)
    dx = layer.backward(dout)
    first = "l0.w_h" if "l0.w_h" in params else "l0.w_x"
    wrt = {"x": x, first: params[first], "l1_reverse.w_x": params["l1_reverse.w_x"],
           "l0_reverse.w_x": params["l0_reverse.w_x"]}
    last = f"l1.{list(REGISTRY[cell].vectors)[-1]}"  # a bias, or a layer norm's shift
    wrt[last] = params[last]

    def f(**a):
        return loss(a["x"], **{**params, **{k: v for k, v in a.items() if k != "x"}})

    numeric = finite_difference_grads(f, wrt)
    assert grad_check_error(dx, numeric["x"]) <= 1e-7
    for k in wrt:
        if k != "x":
            assert grad_check_error(layer.grads[k], numeric[k]) <= 1e-7, k


def _ns(a):
    from rnnx._backend import namespace

    return namespace(a)


def test_layer_errors_name_the_argument(rng):
    with pytest.raises(ValueError, match="cell must be one of"):
        Recurrent(2, 3, cell="transformer")
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\)"):
        Recurrent(2, 3, dropout=1.0)
    layer = Recurrent(2, 3, cell="gru", num_layers=2)
    x = rng.normal(size=(4, 5, 2))
    with pytest.raises(ValueError, match=r"h0 must have shape \(num_layers\*dirs, batch, hidden\)"):
        layer.forward(x, np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match="c0 is an LSTM state"):
        layer.forward(x, None, np.zeros((2, 4, 3)))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((4, 3)))
    layer.forward(x)
    with pytest.raises(ValueError, match=r"dout must be the gradient of forward\(\)'s output"):
        layer.backward(np.zeros((4, 5, 3)))
    with pytest.raises(ValueError, match="params must have exactly the keys"):
        Recurrent.from_weights({"l0.w_x": x}, cell="gru")
    with pytest.raises(TypeError, match="forget_bias is an option of cells with a forget gate"):
        GRU(2, 3, forget_bias=1.0)
    with pytest.raises(ValueError, match=r"w_h must have shape \(hidden, 4\*hidden\)"):
        LSTM.from_weights(np.zeros((2, 12)), np.zeros((3, 9)), np.zeros(12))


def test_forget_bias_shifts_only_the_forget_block():
    a, b = LSTM(2, 3, seed=1), LSTM(2, 3, seed=1, forget_bias=1.0)
    diff = b.params["b"] - a.params["b"]
    # (b + 1) - b rounds to 1 within one ulp of 1 (|b| < 1): atol 4e-16.
    np.testing.assert_allclose(diff, np.r_[np.zeros(3), np.ones(3), np.zeros(6)], rtol=0,
                               atol=4e-16)
