"""The Elman core against outside truth: the seed's printed value, PyTorch autograd and central
finite differences with both nonlinearities, on every backend and device, and the Elman-only
paths (transposed-view backward, bias folding, the one-array cache). The checks every cell
shares (float32 agreement, last-step gradients, inputs never written, bad inputs) run for the
Elman cell in test_functional_cells.py."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import namespace, to_numpy
from rnnx.datasets import SEED_EXPECTED_LAST_STATE, seed_example
from rnnx.functional import rnn_backward, rnn_forward, rnn_step_backward
from rnnx.functional._common import _folds_bias, per_step_transpose
from rnnx.testing import finite_difference_grads, grad_check_error, seed_tolerance

from . import _cells
from ._oracle import torch_rnn

# (batch, time, features, hidden): the seed's shape, batch 1, time 1, hidden > features,
# hidden < features, a longer sequence, and one large enough that the input projection and its
# gradients take the bias as an extra GEMM row (test_folded_shape_folds_the_bias).
SHAPES = [(1, 3, 2, 4), (1, 1, 3, 5), (4, 1, 2, 3), (4, 7, 3, 8), (3, 5, 6, 2), (2, 20, 4, 6),
          (8, 40, 3, 64)]
SHAPE_IDS = ["seed", "batch1-time1", "time1", "hidden>features", "hidden<features", "long",
             "bias-folded"]
NONLINEARITIES = ["tanh", "relu"]
GRAD_NAMES = ["dx", "dh0", "dw_x", "dw_h", "db"]


def make_case(rng, batch, time, features, hidden, *, with_h0=True):
    """The registry's seeded Elman case (weights scaled so tanh stays out of saturation and relu
    states do not blow up over 20 steps: gradients then carry signal at every step)."""
    return _cells.make_case("rnn", rng, batch, time, features, hidden, with_h0=with_h0)


def to_backend(case, put, dtype):
    return {k: (None if v is None else put(v, dtype)) for k, v in case.items()}


def test_seed_problem2_value(xp, device, dtype, put):
    """The seed exercise's printed output, on every backend, device and dtype."""
    host = seed_example()
    args = {k: put(v, dtype) for k, v in host.items()}
    hs, _ = rnn_forward(args["x"], args["w_x"], args["w_h"], args["b"])
    last = hs[:, -1, :]
    assert namespace(last) is xp or type(last) is type(args["x"])
    assert device_of(last) == device
    assert last.dtype == dtype
    expected = np.asarray(SEED_EXPECTED_LAST_STATE)
    np.testing.assert_allclose(to_numpy(last), expected, rtol=0, atol=seed_tolerance(dtype, xp))


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "zeros"])
def test_matches_torch_autograd(xp, device, put, rng, shape, nonlinearity, with_h0):
    """Forward states and all five gradients equal torch.nn.RNN's in float64.

    Tolerance: 1e-10 relative to the largest magnitude of each reference array. Both sides do
    the same float64 operations in a different order, so agreement is ~1e-15; an element that
    cancels to near zero carries absolute rounding error on the scale of the array's largest
    terms, which is why the scale is the array's, not the element's.
    """
    case = make_case(rng, *shape, with_h0=with_h0)
    ref = torch_rnn(case["x"], case["w_x"], case["w_h"], case["b"], case["h0"], case["dhs"],
                    nonlinearity)
    a = to_backend(case, put, xp.float64)
    hs, cache = rnn_forward(a["x"], a["w_x"], a["w_h"], a["b"], a["h0"],
                            nonlinearity=nonlinearity)
    grads = rnn_backward(a["dhs"], cache)
    got = {"hs": hs, **grads._asdict()}
    for name, value in got.items():
        assert device_of(value) == device, name
        assert tuple(value.shape) == ref[name].shape, name
        # dw_h is exactly zero for one step from zeros: the floor makes that an exact check.
        scale = max(np.max(np.abs(ref[name])), np.finfo(np.float64).tiny)
        err = np.max(np.abs(to_numpy(value) - ref[name])) / scale
        assert err <= 1e-10, f"{name}: max deviation from torch {err:.2e} (relative to max)"


def _loss(nonlinearity, dhs):
    """Scalar loss ``sum(hs * dhs)``: its gradient with respect to ``hs`` is exactly ``dhs``."""

    def loss(x, w_x, w_h, b, h0):
        xp = namespace(x)
        hs, _ = rnn_forward(x, w_x, w_h, b, h0, nonlinearity=nonlinearity)
        return xp.sum(hs * dhs)

    return loss


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("shape", [(2, 4, 3, 5), (1, 3, 2, 4)], ids=["general", "seed"])
def test_finite_differences(xp, device, put, rng, shape, nonlinearity):
    """Central differences (step 1e-6, float64): truncation ~step^2 and rounding ~eps/step give a
    relative error near 1e-10 for a correct gradient; 1e-7 leaves margin, a bug scores ~1."""
    case = make_case(rng, *shape)
    a = to_backend(case, put, xp.float64)
    args = {k: a[k] for k in ("x", "w_x", "w_h", "b", "h0")}
    _, cache = rnn_forward(**args, nonlinearity=nonlinearity)
    grads = rnn_backward(a["dhs"], cache)._asdict()
    numeric = finite_difference_grads(_loss(nonlinearity, a["dhs"]), args)
    for name in args:
        err = grad_check_error(grads["d" + name], numeric[name])
        assert err <= 1e-7, f"d{name}: finite-difference relative error {err:.2e}"


def test_every_result_on_input_device(xp, device, dtype, put, rng):
    """Every output of forward and backward is in the input's namespace, dtype and device —
    on array-api-strict's ``device1`` this fails for any array created without ``device=``."""
    case = make_case(rng, 2, 3, 2, 4, with_h0=False)
    a = to_backend(case, put, dtype)
    hs, cache = rnn_forward(a["x"], a["w_x"], a["w_h"], a["b"], nonlinearity="relu")
    outs = [hs, *rnn_backward(a["dhs"], cache), *rnn_backward(a["dhs"][:, -1, :], cache)]
    for out in outs:
        assert type(out) is type(a["x"])
        assert device_of(out) == device
        assert out.dtype == dtype


def test_folded_shape_folds_the_bias():
    """The "bias-folded" shape takes the branch where the bias rides in the input GEMMs as an
    extra row (so the torch comparison covers it) and the seed's shape takes the other one."""
    batch, time, _, hidden = SHAPES[SHAPE_IDS.index("bias-folded")]
    assert _folds_bias(batch * time, hidden)
    batch, time, _, hidden = SHAPES[SHAPE_IDS.index("seed")]
    assert not _folds_bias(batch * time, hidden)


def test_both_transpose_branches_are_compared_with_torch():
    """The backward multiplies by a transposed view of ``w_h`` for a few small steps (the seed's
    shape) and by a row-major copy otherwise ("long"): the torch comparison covers both."""
    for shape_id, is_view in (("seed", True), ("long", False)):
        _, time, _, hidden = SHAPES[SHAPE_IDS.index(shape_id)]
        w_h = np.arange(hidden * hidden, dtype=np.float64).reshape(hidden, hidden)
        w_hT = per_step_transpose(namespace(w_h), w_h, steps=time)
        assert np.shares_memory(w_hT, w_h) is is_view, shape_id
        assert w_hT.flags.c_contiguous is not is_view, shape_id
        np.testing.assert_array_equal(w_hT, w_h.T)


def test_cache_holds_one_state_array(rng):
    """The cache's only new array is ``hs``; everything else is the caller's own object."""
    case = make_case(rng, 2, 4, 3, 5)
    hs, cache = rnn_forward(case["x"], case["w_x"], case["w_h"], case["b"], case["h0"])
    assert cache.hs is hs
    assert cache.x is case["x"] and cache.w_x is case["w_x"] and cache.w_h is case["w_h"]
    assert cache.h0 is case["h0"]
    _, cache0 = rnn_forward(case["x"], case["w_x"], case["w_h"], case["b"])
    assert cache0.h0 is None


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_public_step_backward_is_one_step_of_bptt(rng, nonlinearity):
    """``rnn_step_backward`` is one step of ``rnn_backward``: on a one-step sequence its
    ``dv @ w_h^T`` is ``dh0`` and its ``du`` summed over the batch is ``db``."""
    case = make_case(rng, 3, 1, 2, 4)
    hs, cache = rnn_forward(case["x"], case["w_x"], case["w_h"], case["b"], case["h0"],
                            nonlinearity=nonlinearity)
    grads = rnn_backward(case["dhs"], cache)
    step = rnn_step_backward({}, (case["dhs"][:, 0, :],), (hs[:, 0, :],), (case["h0"],),
                             xp=namespace(hs), nonlinearity=nonlinearity)
    assert step.dstate == (None,)
    np.testing.assert_allclose(step.dv @ case["w_h"].T, grads.dh0, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(step.du.sum(axis=0), grads.db, rtol=1e-14, atol=1e-15)
