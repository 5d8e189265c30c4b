"""SimpleRNN: the seed through the layer API, seeded initialisation, and gradients that match
the functional core."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx import SimpleRNN
from rnnx._backend import device as device_of
from rnnx._backend import to_numpy
from rnnx.datasets import SEED_EXPECTED_LAST_STATE, seed_example
from rnnx.functional import rnn_backward, rnn_forward
from rnnx.testing import assert_equal, seed_tolerance


def test_from_weights_reproduces_the_seed(xp, device, dtype, put):
    """``SimpleRNN.from_weights(w_x, w_h, b).forward(x)`` is the seed's printed last state, in
    the input's namespace and on its device."""
    a = {k: put(v, dtype) for k, v in seed_example().items()}
    layer = SimpleRNN.from_weights(a["w_x"], a["w_h"], a["b"])
    out = layer.forward(a["x"])
    assert type(out) is type(a["x"])
    assert device_of(out) == device and out.dtype == dtype
    assert tuple(out.shape) == (1, 4)
    np.testing.assert_allclose(to_numpy(out), np.asarray(SEED_EXPECTED_LAST_STATE), rtol=0,
                               atol=seed_tolerance(dtype, xp))


def test_seeded_init_is_bit_identical_across_backends(backend, dtype):
    """One seed, one host draw: the same bits on every backend and device, in each dtype."""
    name, xp, dev = backend
    dtype_name = "float32" if dtype == xp.float32 else "float64"
    ref = SimpleRNN(3, 5, seed=7, backend="numpy", dtype=dtype_name)
    other = SimpleRNN(3, 5, seed=7, backend=name, device=dev, dtype=dtype_name)
    for k in ref.params:
        assert device_of(other.params[k]) == dev, k
        assert to_numpy(other.params[k]).tobytes() == to_numpy(ref.params[k]).tobytes(), k
    a = SimpleRNN(3, 5, seed=7).params["w_x"]
    b = SimpleRNN(3, 5, seed=8).params["w_x"]
    assert not np.array_equal(a, b)


def test_default_init_matches_torch_range():
    """torch.nn.RNN's default: every parameter uniform on ±1/sqrt(hidden)."""
    layer = SimpleRNN(4, 16, seed=0)
    for k, v in layer.params.items():
        assert np.max(np.abs(v)) <= 1 / np.sqrt(16), k
        assert np.max(np.abs(v)) > 0.8 / np.sqrt(16), k  # it is spread over the range


def test_params_live_on_requested_device(xp, device, dtype, backend):
    name = backend[0]
    dtype_name = "float32" if dtype == xp.float32 else "float64"
    layer = SimpleRNN(2, 3, seed=0, backend=name, device=device, dtype=dtype_name)
    for v in layer.params.values():
        assert device_of(v) == device and v.dtype == dtype
    assert layer.device == device


@pytest.mark.parametrize("return_sequences", [False, True])
def test_backward_matches_functional(xp, device, dtype, put, rng, return_sequences):
    x = put(rng.normal(size=(3, 5, 2)), dtype)
    w = {"w_x": put(rng.normal(size=(2, 4)) * 0.5, dtype),
         "w_h": put(rng.normal(size=(4, 4)) * 0.3, dtype),
         "b": put(rng.normal(size=(4,)) * 0.1, dtype)}
    h0 = put(rng.normal(size=(3, 4)), dtype)
    layer = SimpleRNN.from_weights(**w, return_sequences=return_sequences)
    out = layer.forward(x, h0)
    dout = put(rng.normal(size=tuple(out.shape)), dtype)
    dx = layer.backward(dout)
    hs, cache = rnn_forward(x, w["w_x"], w["w_h"], w["b"], h0)
    g = rnn_backward(dout, cache)
    # The layer runs the same operations on the same backend: bit for bit the same.
    assert_equal(out, hs if return_sequences else hs[:, -1, :])
    assert_equal(dx, g.dx)
    assert_equal(layer.dh0, g.dh0)
    for k, ref in (("w_x", g.dw_x), ("w_h", g.dw_h), ("b", g.db)):
        assert_equal(layer.grads[k], ref, err_msg=k)


def test_backward_before_forward_is_refused():
    with pytest.raises(RuntimeError, match="before forward"):
        SimpleRNN(2, 3, seed=0).backward(np.ones((1, 3)))


def test_dout_shape_must_match_forward_output(rng):
    layer = SimpleRNN(2, 3, seed=0)
    layer.forward(rng.normal(size=(4, 5, 2)))
    with pytest.raises(ValueError, match=r"dout must be .* shape \(batch, hidden\); got shape \(4, 5, 3\)"):
        layer.backward(np.ones((4, 5, 3)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"input_size": 0, "hidden_size": 3}, "input_size must be a positive int; got 0"),
     ({"input_size": 2, "hidden_size": 2.5}, "hidden_size must be a positive int; got 2.5"),
     ({"input_size": 2, "hidden_size": 3, "init": "zeros"}, "init must be one of"),
     ({"input_size": 2, "hidden_size": 3, "nonlinearity": "sigmoid"}, "nonlinearity must be one of"),
     ({"input_size": 2, "hidden_size": 3, "dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
     ({"input_size": 2, "hidden_size": 3, "backend": "mxnet"}, "backend must be one of")],
)
def test_constructor_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleRNN(**kwargs)
