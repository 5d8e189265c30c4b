"""The exp-based tanh against Python's ``math.tanh`` (the C library's, written by no one here),
on every backend, device and dtype, and the Elman cell with it forced on against torch."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import rnnx.functional._activations as activations
from rnnx._backend import device as device_of
from rnnx._backend import prefers_exp_tanh, to_numpy
from rnnx.functional import rnn_backward, rnn_forward
from rnnx.functional._activations import exp_tanh

from ._oracle import torch_rnn


def _points() -> np.ndarray:
    """Where the formula is hardest: tiny and moderate |a| (cancellation in 1 - 2/(1+e)), the
    float32/float64 saturation knees, the clamp, and dense random values (all finite in
    float32)."""
    rng = np.random.default_rng(11)
    fixed = [0.0, -0.0, 1e-38, 1e-30, 1e-8, 1e-4, 0.01, 0.1, 0.5, 0.549306, 1.0, 2.0, 5.0,
             9.0, 9.01, 10.0, 17.5, 19.06, 19.99, 20.0, 20.01, 25.0, 300.0, 710.0, 1e30]
    values = np.concatenate([fixed, rng.normal(scale=3.0, size=2000),
                             rng.uniform(-25.0, 25.0, size=2000)])
    return np.concatenate([values, -values])


def test_exp_tanh_within_two_ulp_of_one(xp, device, dtype, put):
    """Absolute error ≤ 2 ulp of 1.0 (2 eps) against math.tanh of the *same* (rounded) input,
    with no floating-point warning raised (the ±20 clamp keeps exp(2a) finite and normal).

    Why absolute: an RNN state enters sums of O(1) terms next, so its error matters on the
    scale of 1; the formula's *relative* error near 0 is larger (see the module docstring).
    """
    host = _points()
    a = put(host, dtype)
    inputs = to_numpy(a).astype(np.float64)  # the values after rounding to dtype
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        got = exp_tanh(a, xp=xp)
    assert device_of(got) == device
    assert got.dtype == dtype
    expected = np.array([math.tanh(v) for v in inputs])
    eps = float(np.finfo(to_numpy(a).dtype).eps)
    err = np.max(np.abs(to_numpy(got).astype(np.float64) - expected))
    assert err <= 2 * eps, f"max |exp_tanh - math.tanh| = {err / eps:.2f} eps"
    assert np.all(np.abs(to_numpy(got)) <= 1.0)


def test_exp_tanh_special_values(xp, device, dtype, put):
    a = put(np.array([np.inf, -np.inf, np.nan, 0.0]), dtype)
    got = to_numpy(exp_tanh(a, xp=xp))
    assert got[0] == 1.0 and got[1] == -1.0
    assert np.isnan(got[2])
    assert got[3] == 0.0


def test_exp_tanh_leaves_input_alone(xp, put):
    host = np.array([-30.0, -1.0, 0.5, 30.0])
    a = put(host, xp.float64)
    exp_tanh(a, xp=xp)
    np.testing.assert_array_equal(to_numpy(a), host)


def test_policy_only_numpy_float64():
    """float32 and non-NumPy namespaces always keep their own tanh (vectorised there)."""
    import array_api_compat.numpy as xnp

    assert not prefers_exp_tanh(xnp, xnp.float32)
    pytest.importorskip("torch")
    import array_api_compat.torch as xtorch

    assert not prefers_exp_tanh(xtorch, xtorch.float64)


@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "zero-h0"])
def test_elman_with_exp_tanh_matches_torch(xp, device, put, monkeypatch, with_h0):
    """The Elman forward/backward with the exp-based tanh forced on (it is chosen automatically
    only on CPUs without AVX-512, so CI may not exercise it otherwise) equals torch.nn.RNN in
    float64 to 1e-10 of each array's scale: the 2-ulp activation error stays at rounding level
    through 12 steps and the backward, which uses 1 - h² and never calls tanh."""
    monkeypatch.setattr(activations, "prefers_exp_tanh", lambda xp, dtype: True)
    rng = np.random.default_rng(5)
    b_, t_, f_, h_ = 3, 12, 4, 6
    case = {
        "x": rng.normal(size=(b_, t_, f_)),
        "w_x": rng.normal(size=(f_, h_)) / 2.0,
        "w_h": rng.normal(size=(h_, h_)) * (0.6 / np.sqrt(h_)),
        "b": rng.normal(size=(h_,)) * 0.1,
        "h0": rng.normal(size=(b_, h_)) * 0.5 if with_h0 else None,
        "dhs": rng.normal(size=(b_, t_, h_)),
    }
    ref = torch_rnn(case["x"], case["w_x"], case["w_h"], case["b"], case["h0"], case["dhs"])
    a = {k: None if v is None else put(v, xp.float64) for k, v in case.items()}
    hs, cache = rnn_forward(a["x"], a["w_x"], a["w_h"], a["b"], a["h0"])
    got = {"hs": hs, **rnn_backward(a["dhs"], cache)._asdict()}
    for name, value in got.items():
        assert device_of(value) == device, name
        scale = max(np.max(np.abs(ref[name])), np.finfo(np.float64).tiny)
        err = np.max(np.abs(to_numpy(value) - ref[name])) / scale
        assert err <= 1e-10, f"{name}: {err:.2e}"
