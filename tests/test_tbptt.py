"""Truncated BPTT: the forward pass over chunks is the full-sequence one; each chunk's
gradients equal torch's with the state detached at the chunk boundary; per-sample resets."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import backend_name, to_numpy
from rnnx._backend import device as device_of
from rnnx.layers import GRU, LSTM, Recurrent, SimpleRNN
from rnnx.layers.recurrent import layer_suffixes
from rnnx.tbptt import TruncatedBPTT, reset_state

from ._cell_checks import max_rel_dev
from ._oracle import torch_stack

CELLS = ["rnn", "lstm", "gru"]
SINGLE = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def _host_layers(layer):
    out = []
    for sfx in layer_suffixes(layer.num_layers, layer.bidirectional):
        p = layer.layer_params(int(sfx[1:].split("_")[0]), sfx.endswith("_reverse"))
        out.append({k: to_numpy(v) for k, v in p.items()})
    return out


@pytest.mark.parametrize("cell", CELLS)
def test_chunks_match_torch_with_detached_state(xp, device, put, rng, cell):
    """A 2-layer Recurrent over 10 steps in chunks of 4 (4, 4, 2): every chunk's outputs and
    gradients equal torch's run on that chunk from the previous chunk's final state, detached
    (float64, 1e-10 relative to each array's max)."""
    layer = Recurrent(3, 4, cell=cell, num_layers=2, return_sequences=True, seed=4,
                      backend=backend_name(xp), device=device)
    x = rng.normal(size=(2, 10, 3))
    dout = rng.normal(size=(2, 10, 4))
    runner = TruncatedBPTT(layer, 4)
    h_prev = c_prev = None
    spans = []
    for chunk in runner.chunks(put(x)):
        spans.append((chunk.start, chunk.stop))
        sl = slice(chunk.start, chunk.stop)
        ref = torch_stack(cell, x[:, sl], _host_layers(layer), h0=h_prev, c0=c_prev,
                          dhs=dout[:, sl], num_layers=2)
        dx = layer.backward(put(dout[:, sl]))
        assert device_of(chunk.out) == device and device_of(dx) == device
        assert max_rel_dev(chunk.out, ref["out"]) <= 1e-10
        assert max_rel_dev(dx, ref["dx"]) <= 1e-10
        for sfx, g in zip(layer_suffixes(2, False), ref["layers"]):
            for name, want in g.items():
                assert max_rel_dev(layer.grads[f"{sfx}.{name[1:]}"], want) <= 1e-10
        h_prev = ref["h_n"]
        c_prev = ref.get("c_n")
    assert spans == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.parametrize("cell", CELLS)
def test_forward_over_chunks_is_the_full_forward_and_reset_is_per_sample(rng, cell):
    """Chunked outputs equal one full pass (1e-12: same float64 operations, GEMMs over other
    row counts); after resetting sample 1, its next chunk equals a fresh run of that chunk while
    sample 0 continues the full pass. Lengths mask the padded tail in both."""
    layer = SINGLE[cell](2, 3, return_sequences=True, seed=1)
    x = rng.normal(size=(2, 9, 2))
    lengths = np.array([9, 7])
    full = to_numpy(layer.forward(x, mask=lengths))
    runner = TruncatedBPTT(layer, 3)
    outs = [to_numpy(c.out) for c in runner.chunks(x, mask=lengths)]
    assert max_rel_dev(np.concatenate(outs, axis=1), full) <= 1e-12
    runner.reset()
    assert runner.state is None
    got = []
    for chunk in runner.chunks(x, mask=lengths):
        got.append(to_numpy(chunk.out))
        if chunk.index == 0:
            runner.reset(np.array([False, True]))
    fresh = to_numpy(layer.forward(x[1:, 3:6]))
    assert max_rel_dev(got[1][0], full[0, 3:6]) <= 1e-12
    assert max_rel_dev(got[1][1], fresh[0]) <= 1e-12


def test_state_persists_across_batches_of_one_stream(rng):
    """Two consecutive ``chunks`` calls are one stream: the second starts from the first's
    final state."""
    layer = LSTM(2, 3, return_sequences=True, seed=2)
    x = rng.normal(size=(1, 8, 2))
    full = to_numpy(layer.forward(x))
    runner = TruncatedBPTT(layer, 4)
    list(runner.chunks(x[:, :4]))
    second = [to_numpy(c.out) for c in runner.chunks(x[:, 4:])]
    assert max_rel_dev(second[0], full[:, 4:]) <= 1e-12


def test_reset_state_and_errors(xp, device, put):
    s = (put(np.ones((2, 3, 4))),)
    out = reset_state(s, put(np.array([True, False, True])))
    assert device_of(out[0]) == device
    want = np.ones((2, 3, 4))
    want[:, [0, 2]] = 0.0
    np.testing.assert_array_equal(to_numpy(out[0]), want)
    with pytest.raises(ValueError, match=r"reset must be a boolean array of shape \(batch,\)"):
        reset_state(s, put(np.array([True, False])))
    with pytest.raises(ValueError, match="k must be a positive int"):
        TruncatedBPTT(LSTM(2, 3), 0)
