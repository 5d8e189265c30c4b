"""rnnx layers <-> torch.nn.RNN/LSTM/GRU: lossless round trips and equal outputs, for every
cell, stacked and bidirectional, onto any backend and device."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import backend_name, to_numpy
from rnnx._backend import device as device_of
from rnnx.interop import from_torch, to_state_dict, to_torch
from rnnx.layers import GRU, LSTM, Recurrent, SimpleRNN

torch = pytest.importorskip("torch")

CELLS = ["rnn", "lstm", "gru"]
CONFIGS = [(1, False), (2, False), (1, True), (3, True)]
CONFIG_IDS = ["1layer", "2layers", "bidir", "3layers-bidir"]


def _torch_out(module, x):
    with torch.no_grad():
        out, state = module(torch.from_numpy(x))
    h_n = state[0] if isinstance(state, tuple) else state
    return out.numpy(), h_n.numpy()


def _rel(a, b):
    return float(np.max(np.abs(to_numpy(a) - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize(("num_layers", "bidirectional"), CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("cell", CELLS)
def test_rnnx_to_torch_and_back_is_lossless(rng, cell, num_layers, bidirectional):
    """rnnx -> torch -> rnnx gives the same parameters bit for bit; torch's outputs and final
    states equal rnnx's (float64; 1e-10 relative, same operations in another order)."""
    layer = Recurrent(3, 4, cell=cell, num_layers=num_layers, bidirectional=bidirectional,
                      return_sequences=True, seed=2, nonlinearity="tanh")
    module = to_torch(layer)
    assert type(module).__name__ == {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
    x = rng.normal(size=(2, 5, 3))
    out_t, h_t = _torch_out(module, x)
    assert _rel(layer.forward(x), out_t) <= 1e-10
    assert _rel(layer.final_state[0], h_t) <= 1e-10
    back = from_torch(module, return_sequences=True)
    assert type(back) is (Recurrent if (num_layers > 1 or bidirectional) else
                          {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}[cell])
    keys = back.params if type(back) is Recurrent else {f"l0.{k}": v
                                                        for k, v in back.params.items()}
    assert set(keys) == set(layer.params)
    for k, v in layer.params.items():
        np.testing.assert_array_equal(to_numpy(keys[k]), to_numpy(v))


@pytest.mark.parametrize("cell", CELLS)
def test_torch_to_rnnx_keeps_outputs(xp, device, rng, cell):
    """A torch module with its own (default) init, both biases non-zero, moved onto every
    backend and device: same outputs; back to torch, the same module up to the Elman/LSTM bias
    split (the sum is what the maths sees)."""
    torch.manual_seed(0)
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    module = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    layer = from_torch(module, backend=backend_name(xp), device=device, return_sequences=True)
    for v in layer.params.values():
        assert device_of(v) == device
    x = rng.normal(size=(2, 6, 3))
    out_t, _ = _torch_out(module, x)
    from rnnx._backend import from_host

    out = layer.forward(from_host(x, xp=xp, device=device))
    assert device_of(out) == device
    assert _rel(out, out_t) <= 1e-10
    sd, sd0 = to_state_dict(layer), module.state_dict()
    assert set(sd) == set(sd0)
    for k in sd:
        if cell == "gru" or k.startswith("weight"):
            assert torch.equal(sd[k], sd0[k]), k
    for k in (k for k in sd if k.startswith("bias_ih")):
        hh = k.replace("bias_ih", "bias_hh")
        np.testing.assert_array_equal((sd[k] + sd[hh]).numpy(), (sd0[k] + sd0[hh]).numpy())


def test_float32_and_single_layer_classes(rng):
    """A float32 torch LSTM becomes a float32 rnnx LSTM (and back) with equal outputs at float32
    rounding (4*sqrt(eps) relative to the max, the house float32 tolerance)."""
    torch.manual_seed(1)
    module = torch.nn.LSTM(3, 5, batch_first=True)
    layer = from_torch(module, return_sequences=True)
    assert isinstance(layer, LSTM)
    assert layer.params["w_x"].dtype == np.float32
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    out_t, _ = _torch_out(module, x)
    assert _rel(layer.forward(x), out_t) <= 4 * np.sqrt(np.finfo(np.float32).eps)
    assert to_torch(layer).weight_ih_l0.dtype == torch.float32


def test_interop_errors():
    with pytest.raises(TypeError, match=r"torch\.nn\.RNN, LSTM or GRU"):
        from_torch(torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(TypeError, match="layer must be an rnnx"):
        to_torch(object())
