"""Networks and estimators with every cell kind: LSTM/GRU, stacked, bidirectional and
variable-length batches, against torch (nn.LSTM/GRU + Linear + cross-entropy over packed
sequences) and central differences."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import backend_name, to_numpy
from rnnx._backend import device as device_of
from rnnx.interop import to_torch
from rnnx.models.network import SequenceNetwork
from rnnx.testing import finite_difference_grads, grad_check_error

from ._threads import one_thread  # noqa: F401  (autouse fixture)

torch = pytest.importorskip("torch")

CONFIGS = [("rnn", 2, True), ("lstm", 1, False), ("lstm", 2, True), ("gru", 1, True),
           ("gru", 2, False)]
IDS = [f"{c}-{n}layer{'-bi' if b else ''}" for c, n, b in CONFIGS]


def _torch_loss_and_grads(net, x, labels, lengths):
    """The same network in torch: packed sequence -> h_n of the last layer (both directions)
    -> Linear -> cross-entropy. Returns the loss and host gradients keyed like rnnx's."""
    module = to_torch(net.recurrent)
    dense_w, dense_b = (to_numpy(net.dense.params[k]) for k in ("w", "b"))
    lin = torch.nn.Linear(*dense_w.shape, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(dense_w.T.copy()))
        lin.bias.copy_(torch.from_numpy(dense_b))
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False)
    _, state = module(packed)
    h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
    dirs = 2 if module.bidirectional else 1
    last = torch.cat([h_n[-dirs + d] for d in range(dirs)], dim=1)  # (B, D*H)
    loss = torch.nn.functional.cross_entropy(lin(last), torch.from_numpy(labels))
    loss.backward()
    grads = {"dense.w": lin.weight.grad.numpy().T, "dense.b": lin.bias.grad.numpy()}
    return loss.item(), module, grads


@pytest.mark.parametrize(("cell", "layers", "bidirectional"), CONFIGS, ids=IDS)
def test_network_with_lengths_matches_torch_packed(xp, device, put, rng, cell, layers,
                                                    bidirectional):
    """Loss and gradients (dense layer, and the recurrent weights through torch's module)
    equal torch's in float64 to 1e-10 relative to each array's largest entry."""
    x, labels = rng.normal(size=(5, 6, 3)), rng.integers(0, 4, size=5)
    lengths = np.array([6, 2, 4, 1, 5])
    net = SequenceNetwork(3, 4, 4, cell=cell, num_layers=layers, bidirectional=bidirectional,
                          seed=3, backend=backend_name(xp), device=device, dtype="float64")
    ref_loss, module, ref = _torch_loss_and_grads(net, x, labels, lengths)
    loss, out = net.loss_and_grad(put(x, xp.float64), put(labels, xp.int64),
                                  steps=put(lengths))
    assert device_of(out) == device
    np.testing.assert_allclose(float(to_numpy(loss)), ref_loss, rtol=1e-12)
    grads = net.gradients()
    for k in ("dense.w", "dense.b"):
        err = np.max(np.abs(to_numpy(grads[k]) - ref[k])) / np.max(np.abs(ref[k]))
        assert err < 1e-10, (k, err)
    # Recurrent weights: compare through the round trip's naming (torch weight_ih_l0 = w_x.T).
    for name, p in module.named_parameters():
        kind, sfx = name.split("_l", 1)
        sfx = "l" + sfx
        if kind == "weight_ih":
            got = to_numpy(grads[f"recurrent.{sfx}.w_x"]).T
        elif kind == "weight_hh":
            got = to_numpy(grads[f"recurrent.{sfx}.w_h"]).T
        elif cell == "gru":
            got = to_numpy(grads[f"recurrent.{sfx}.{kind.replace('bias', 'b')}"])
        else:
            # rnnx keeps one combined bias for Elman/LSTM: both torch biases get its gradient.
            got = to_numpy(grads[f"recurrent.{sfx}.b"])
        want = p.grad.numpy()
        err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300)
        assert err < 1e-10, (name, err)


@pytest.mark.parametrize(("cell", "layers", "bidirectional"), CONFIGS[:2], ids=IDS[:2])
def test_many_to_many_with_padding_matches_finite_differences(xp, device, put, rng, cell,
                                                              layers, bidirectional):
    """Masked per-step MSE through padded sequences: padded steps leave the loss and carry no
    gradient; central differences in float64 agree to 1e-7."""
    net = SequenceNetwork(2, 3, 2, cell=cell, num_layers=layers, bidirectional=bidirectional,
                          loss="mse", sequence_output=True, seed=4, backend=backend_name(xp),
                          device=device, dtype="float64")
    x = put(rng.normal(size=(3, 4, 2)), xp.float64)
    target = put(rng.normal(size=(3, 4, 2)), xp.float64)
    steps = put(np.array([[True, True, True, True], [False, True, True, True],
                          [True, True, False, False]]))
    net.loss_and_grad(x, target, steps=steps)
    grads, params = net.gradients(), net.parameters()

    def f(**ps):
        net.load_parameters(ps)
        return net.loss_and_grad(x, target, steps=steps)[0]

    numeric = finite_difference_grads(f, params)
    for k in params:
        assert grad_check_error(grads[k], numeric[k]) < 1e-7, k
