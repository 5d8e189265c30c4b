"""Checkpointed BPTT against the full-cache BPTT (itself checked against torch autograd and
finite differences in test_functional_rnn.py), on every backend and device."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import to_numpy
from rnnx.functional import (
    rnn_backward,
    rnn_backward_checkpointed,
    rnn_forward,
    rnn_forward_checkpointed,
)
from rnnx.functional.checkpoint import default_every

from .test_functional_rnn import GRAD_NAMES, make_case, to_backend

# every=None is the default ceil(sqrt(T)); 1 checkpoints every state; 4 does not divide T=11;
# 11 is one segment; 50 is longer than the sequence.
EVERY = [None, 1, 4, 11, 50]


def _rel_err(got, want):
    want = to_numpy(want)
    scale = max(float(np.max(np.abs(want))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(to_numpy(got) - want))) / scale


@pytest.mark.parametrize("every", EVERY, ids=lambda e: f"every{e}")
@pytest.mark.parametrize("last_only", [True, False], ids=["m2o", "m2m"])
@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "zeros"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_matches_full_cache(xp, device, dtype, put, rng, every, last_only, with_h0, nonlinearity):
    """Final state and all five gradients equal the full-cache BPTT's.

    Not bitwise: the input projection is one GEMM per segment instead of one over all steps
    (XLA and BLAS may block a different row count differently: on JAX float32 the final state
    differs in the last bits) and each weight gradient is summed per segment, a different
    summation order. The deviation is a few rounding errors propagated through 11 steps,
    relative to the array's largest term: 1e-12 in float64 (~5000 eps) and 1e-5 in float32
    (~80 eps) leave that room while any wrong term would show at O(1).
    """
    case = make_case(rng, 3, 11, 4, 5, with_h0=with_h0)
    a = to_backend(case, put, dtype)
    dhs = a["dhs"][:, -1, :] if last_only else a["dhs"]
    hs, cache = rnn_forward(a["x"], a["w_x"], a["w_h"], a["b"], a["h0"], nonlinearity=nonlinearity)
    full = rnn_backward(dhs, cache)
    h_t, ck = rnn_forward_checkpointed(a["x"], a["w_x"], a["w_h"], a["b"], a["h0"],
                                       nonlinearity=nonlinearity, every=every)
    got = rnn_backward_checkpointed(dhs, ck)
    tol = 1e-12 if dtype == xp.float64 else 1e-5
    assert _rel_err(h_t, hs[:, -1, :]) <= tol
    for name, u, v in zip(GRAD_NAMES, got, full):
        assert device_of(u) == device, name
        assert u.dtype == dtype, name
        assert tuple(u.shape) == tuple(v.shape), name
        err = _rel_err(u, v)
        assert err <= tol, f"{name}: deviation from the full cache {err:.2e} (relative to max)"


def test_checkpoints_are_sparse(rng):
    """The cache keeps ceil(T / every) states of (batch, hidden) and no (batch, time, .) array
    of its own: the memory the option exists for."""
    case = make_case(rng, 2, 30, 3, 4)
    _, ck = rnn_forward_checkpointed(case["x"], case["w_x"], case["w_h"], case["b"], case["h0"])
    assert ck.every == 6 == default_every(30)
    assert len(ck.checkpoints) == 5
    assert ck.checkpoints[0] is case["h0"]
    assert all(tuple(c.shape) == (2, 4) for c in ck.checkpoints)
    assert ck.x is case["x"] and ck.w_h is case["w_h"]


@pytest.mark.parametrize("time,expected", [(1, 1), (2, 2), (4, 2), (5, 3), (100, 10), (101, 11)])
def test_default_every_is_ceil_sqrt(time, expected):
    assert default_every(time) == expected


def test_inputs_are_not_written(rng):
    case = make_case(rng, 2, 7, 3, 4)
    for v in case.values():
        v.flags.writeable = False
    _, ck = rnn_forward_checkpointed(case["x"], case["w_x"], case["w_h"], case["b"], case["h0"],
                                     every=3)
    rnn_backward_checkpointed(case["dhs"], ck)
    rnn_backward_checkpointed(case["dhs"][:, -1, :], ck)


@pytest.mark.parametrize("every", [0, -1, 2.0, True])
def test_bad_every_is_named(rng, every):
    case = make_case(rng, 1, 3, 2, 2)
    with pytest.raises(ValueError, match="every must be a positive int"):
        rnn_forward_checkpointed(case["x"], case["w_x"], case["w_h"], case["b"], every=every)


def test_bad_dhs_is_named(rng):
    case = make_case(rng, 2, 3, 2, 4)
    _, ck = rnn_forward_checkpointed(case["x"], case["w_x"], case["w_h"], case["b"])
    with pytest.raises(ValueError, match=r"dhs must have shape \(batch, hidden\)"):
        rnn_backward_checkpointed(np.zeros((2, 5)), ck)
    with pytest.raises(TypeError, match="dhs must have the forward pass's dtype float64"):
        rnn_backward_checkpointed(np.zeros((2, 4), dtype=np.float32), ck)


def _peak_bytes(fn) -> int:
    import tracemalloc

    fn()  # first-call allocations (caches) are not the method's
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_peak_memory_grows_as_sqrt_time(rng):
    """tracemalloc peak (NumPy reports its buffers) of forward + backward, minus dx (x-sized,
    O(T) for any method): the full cache holds ~2 T states, the checkpointed pass ~c sqrt(T).
    Quadrupling T must quadruple the first and only double the second (ratios with slack for
    the constant terms)."""
    state = 4 * 32 * 8  # one (batch, hidden) float64 state

    def work(time_, fwd, bwd):
        case = make_case(rng, 4, time_, 8, 32)
        dx_bytes = case["x"].nbytes

        def run():
            _, cache = fwd(case["x"], case["w_x"], case["w_h"], case["b"])
            bwd(case["dhs"], cache)

        return (_peak_bytes(run) - dx_bytes) / state

    full = [work(t, rnn_forward, rnn_backward) for t in (400, 1600)]
    ckpt = [work(t, rnn_forward_checkpointed, rnn_backward_checkpointed) for t in (400, 1600)]
    assert full[0] >= 2 * 400, full  # hs and the da buffer
    assert 3.5 <= full[1] / full[0] <= 4.5, full
    assert 1.5 <= ckpt[1] / ckpt[0] <= 2.5, ckpt
    assert ckpt[1] <= 12 * 40, ckpt  # ~c sqrt(1600) states, c <= 12
