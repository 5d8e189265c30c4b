"""Gradient diagnostics: ||dL/dh_t|| per step against torch autograd (retain_grad on every
step of a torch cell loop), the Elman decay bound, and the plot file."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import backend_name, to_numpy
from rnnx._backend import device as device_of
from rnnx.diagnostics import plot_grad_norms, state_grad_norms
from rnnx.layers import GRU, LSTM, Recurrent, SimpleRNN

torch = pytest.importorskip("torch")

SINGLE = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def _torch_state_grads(cell, params, x, dout):
    """dL/dh_t for t = 1..T of L = sum(h_T * dout), by torch autograd over a cell loop."""
    p = {k: to_numpy(v) for k, v in params.items()}
    features, hidden = p["w_x"].shape[0], p["w_h"].shape[0]
    cls = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[cell]
    net = cls(features, hidden, dtype=torch.float64)
    with torch.no_grad():
        net.weight_ih.copy_(torch.from_numpy(p["w_x"].T.copy()))
        net.weight_hh.copy_(torch.from_numpy(p["w_h"].T.copy()))
        net.bias_ih.copy_(torch.from_numpy(p.get("b", p.get("b_ih")).copy()))
        net.bias_hh.copy_(torch.from_numpy(p["b_hh"].copy()) if "b_hh" in p else
                          torch.zeros(net.bias_hh.shape, dtype=torch.float64))
    xt = torch.from_numpy(x)
    h = torch.zeros(x.shape[0], hidden, dtype=torch.float64)
    c = torch.zeros_like(h)
    hs = []
    for t in range(x.shape[1]):
        if cell == "lstm":
            h, c = net(xt[:, t], (h, c))
        else:
            h = net(xt[:, t], h)
        h.retain_grad()
        hs.append(h)
    (hs[-1] * torch.from_numpy(dout)).sum().backward()
    return np.stack([h.grad.numpy() for h in hs], axis=1)  # (B, T, H)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_norms_match_torch_retain_grad(xp, device, put, rng, cell):
    """Per-sample and batch norms of dL/dh_t equal torch's (float64, 1e-10 relative to max)."""
    layer = SINGLE[cell](3, 4, seed=6, backend=backend_name(xp), device=device)
    x = rng.normal(size=(2, 7, 3))
    dout = rng.normal(size=(2, 4))
    g = _torch_state_grads(cell, layer.params, x, dout)
    per = state_grad_norms(layer, put(x), put(dout), per_sample=True)["l0"]
    batch = state_grad_norms(layer, put(x), put(dout))["l0"]
    assert device_of(per) == device and device_of(batch) == device
    want_per = np.sqrt((g**2).sum(axis=2))
    want_batch = np.sqrt((g**2).sum(axis=(0, 2)))
    for got, want in ((per, want_per), (batch, want_batch)):
        err = np.max(np.abs(to_numpy(got) - want)) / np.max(want)
        assert err <= 1e-10


def test_recurrent_layers_and_directions(rng):
    """A one-layer Recurrent reports what the single-layer class reports; a bidirectional
    stack reports every layer and direction, each of length ``time``."""
    x = rng.normal(size=(2, 6, 3))
    dout = rng.normal(size=(2, 4))
    a = state_grad_norms(LSTM(3, 4, seed=3), x, dout)["l0"]
    b = state_grad_norms(Recurrent(3, 4, cell="lstm", seed=3), x, dout)["l0"]
    np.testing.assert_allclose(b, a, rtol=1e-13, atol=0)
    deep = Recurrent(3, 4, cell="gru", num_layers=2, bidirectional=True, seed=3)
    norms = state_grad_norms(deep, x, rng.normal(size=(2, 8)))
    assert sorted(norms) == ["l0", "l0_reverse", "l1", "l1_reverse"]
    assert all(v.shape == (6,) for v in norms.values())
    # The reverse direction's final state is at step 1, so its gradient is largest there.
    assert norms["l1_reverse"][0] > 0 and norms["l1"][-1] > 0


def test_elman_gradient_decays_when_contractive(rng):
    """With ||w_h||_2 = 0.5 and |tanh'| <= 1, ||dL/dh_{t-1}|| <= 0.5 ||dL/dh_t|| for a loss on
    the final state only: the vanishing-gradient bound (Pascanu et al. 2013, eq. 7)."""
    layer = SimpleRNN(3, 5, seed=0)
    w = rng.normal(size=(5, 5))
    w *= 0.5 / np.linalg.norm(w, 2)
    layer = SimpleRNN.from_weights(layer.params["w_x"], w, layer.params["b"])
    n = state_grad_norms(layer, rng.normal(size=(4, 12, 3)), rng.normal(size=(4, 5)),
                         per_sample=True)["l0"]
    assert np.all(n[:, :-1] <= 0.5 * n[:, 1:] * (1 + 1e-12))


def test_plot_writes_png_atomically(tmp_path, rng):
    pytest.importorskip("matplotlib")
    path = tmp_path / "grads.png"
    plot_grad_norms({"rnn": np.geomspace(1e-6, 1, 20), "lstm": np.linspace(0.5, 1, 20)}, path,
                    title="test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["grads.png"]
    with pytest.raises(ValueError, match=r"must be 1-D \(time,\)"):
        plot_grad_norms({"x": np.ones((2, 3))}, tmp_path / "bad.png")
    assert [p.name for p in tmp_path.iterdir()] == ["grads.png"]


def test_tiny_float32_gradients_do_not_underflow_to_zero(rng):
    """A float32 gradient of 1e-25 squares below the smallest subnormal; the norm is still
    1e-25 (to float32 rounding), not 0."""
    layer = SimpleRNN(2, 3, seed=0, dtype="float32", return_sequences=True)
    x = rng.normal(size=(1, 4, 2)).astype(np.float32)
    dout = np.zeros((1, 4, 3), dtype=np.float32)
    dout[0, 0, 0] = 1e-25  # only step 1 gets a gradient: it is exactly dout there
    n = state_grad_norms(layer, x, dout)["l0"]
    np.testing.assert_allclose(n[0], 1e-25, rtol=4 * np.sqrt(np.finfo(np.float32).eps))
