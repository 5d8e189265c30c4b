"""Test bodies shared by ``test_functional_cells.py`` (every registered cell) and the
mask tests: each takes the cell kind first. Tolerances are justified once, here."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import from_host, namespace, to_numpy
from rnnx.functional import _common
from rnnx.functional._common import _folds_bias
from rnnx.testing import (
    assert_close,
    assert_equal,
    finite_difference_grads,
    grad_check_error,
    recurrence_rtol,
)

from . import _cells

# (batch, time, features, hidden): batch 1, time 1, hidden > features, hidden < features, long,
# and large enough for the bias to ride in the input GEMMs (test_folded_shapes_fold_the_bias).
SHAPES = [(1, 1, 3, 5), (4, 1, 2, 3), (4, 7, 3, 8), (3, 5, 6, 2), (2, 20, 4, 6), (4, 48, 3, 96)]
SHAPE_IDS = ["batch1-time1", "time1", "hidden>features", "hidden<features", "long",
             "bias-folded"]


def check_folded_shape(kind):
    """The "bias-folded" shape takes the branch where the bias rides in the input GEMMs (so the
    torch comparison covers it); the other shapes take the plain one."""
    for shape, name in zip(SHAPES, SHAPE_IDS):
        batch, time, _, hidden = shape
        assert _folds_bias(batch * time, _cells.gates(kind) * hidden) == (name == "bias-folded"), name


def use_blocks_of(monkeypatch, steps, row_elements):
    """Make the gated backward compute its factors ``steps`` steps at a time for rows of
    ``row_elements`` (batch * 4 * hidden for both LSTM and GRU)."""
    monkeypatch.setattr(_common, "_BLOCK_ELEMENTS", steps * row_elements)
    assert _common.step_blocks(7, row_elements)[0] == (max(0, 7 - steps), 7)


def check_blocked_backward(kind, xp, device, put, rng, monkeypatch, steps):
    """Factor blocks of ``steps`` steps over 20 steps (an uneven first block) give torch's
    gradients, as the single block of the other tests does."""
    batch, hidden = 2, 6
    use_blocks_of(monkeypatch, steps, batch * 4 * hidden)
    assert len(_common.step_blocks(20, batch * 4 * hidden)) == -(-20 // steps)
    check_matches_torch(kind, xp, device, put, rng, (batch, 20, 4, hidden), True, True)


def to_backend(case, put, dtype):
    return {k: (None if v is None else put(v, dtype)) for k, v in case.items()}


def max_rel_dev(got, ref):
    """Max deviation relative to the reference array's max magnitude. Both sides do the same
    float64 operations in another order (~1e-15); an element that cancels to near zero carries
    rounding on the scale of the array's largest terms, hence the array scale."""
    scale = max(float(np.max(np.abs(ref))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(to_numpy(got) - ref))) / scale


def check_matches_torch(kind, xp, device, put, rng, shape, with_h0, final):
    """Outputs, final states and every gradient equal torch's (float64, 1e-10 relative)."""
    case = _cells.make_case(kind, rng, *shape, with_h0=with_h0)
    ref = _cells.reference(kind, case, final=final)
    got = _cells.run(kind, to_backend(case, put, xp.float64), final=final)
    assert set(got) == set(ref)
    for name, value in got.items():
        assert device_of(value) == device, name
        assert tuple(value.shape) == ref[name].shape, name
        err = max_rel_dev(value, ref[name])
        assert err <= 1e-10, f"{name}: max deviation from torch {err:.2e} (relative to max)"


def check_finite_differences(kind, xp, put, rng, shape, *, mask=None, final=True):
    """Central differences (step 1e-6, float64): truncation ~step^2 and rounding ~eps/step give a
    relative error near 1e-10 for a correct gradient; 1e-7 leaves margin, a bug scores ~1."""
    case = _cells.make_case(kind, rng, *shape)
    a = to_backend(case, put, xp.float64)
    m = None if mask is None else put(mask)
    grads = _cells.run(kind, a, mask=m, final=final)
    wrt = list(_cells.inputs(kind))
    numeric = finite_difference_grads(_cells.loss_fn(kind, a, mask=m, final=final),
                                      {k: a[k] for k in wrt})
    for name in wrt:
        err = grad_check_error(grads["d" + name], numeric[name])
        assert err <= 1e-7, f"d{name}: finite-difference relative error {err:.2e}"


def check_last_step_gradient(kind, put, dtype, rng):
    """A 2-D ``dhs`` (gradient of the final state) equals a 3-D one with zeros before the last
    step, and equals passing it as ``dh_n``, in each form of the cell."""
    case = _cells.make_case(kind, rng, 3, 6, 4, 5)
    a = to_backend(case, put, dtype)
    last = a["dhs"][:, -1, :]
    padded = np.zeros_like(case["dhs"])
    padded[:, -1, :] = case["dhs"][:, -1, :]
    for form in _cells.forms(kind):
        _, cache = _cells.forward(kind, a, form=form)
        g_last = _cells.backward(kind, cache, last)
        g_full = _cells.backward(kind, cache, put(padded, dtype))
        g_fin = _cells.backward(kind, cache, None, last)
        for name in g_last:
            assert_equal(g_last[name], g_fin[name], err_msg=f"{form}: {name}")
            if form == "step":  # the step adds the zeros: bit for bit the same
                assert_equal(g_last[name], g_full[name], err_msg=f"{form}: {name}")
            else:  # the scan's chunks sum them in another order: the same to rounding
                xp = namespace(g_last[name])
                rtol = recurrence_rtol(g_last[name].dtype, xp, batch=3, time=6, features=4,
                                       hidden=5)
                scale = float(xp.max(xp.abs(g_last[name])))
                assert_close(g_full[name], g_last[name], rtol=0.0, atol=rtol * scale,
                             err_msg=f"{form}: {name}")


FLOAT32_SHAPE = (4, 12, 3, 8)  # (batch, time, features, hidden)


def check_float32(kind, xp, device, put, rng):
    """float32 on every backend agrees with the NumPy float64 result within the rounding bound
    of this computation in float32 (``recurrence_rtol``, ~7e-6; the cell's ``rounding_gain``
    on top), relative to each array's largest magnitude: a sum's rounding error scales with its
    largest terms. A 2e-4 relative error anywhere fails."""
    batch, time, features, hidden = FLOAT32_SHAPE
    case = _cells.make_case(kind, rng, *FLOAT32_SHAPE)
    ref = {k: to_numpy(v) for k, v in _cells.run(kind, case).items()}
    got = _cells.run(kind, to_backend(case, put, xp.float32))
    rtol = recurrence_rtol(xp.float32, xp, batch=batch, time=time, features=features,
                           hidden=hidden, gain=_cells.spec(kind).rounding_gain)
    for name, value in got.items():
        want = from_host(ref[name], xp=xp, device=device, dtype=xp.float32)
        assert_close(value, want, rtol=0.0, atol=rtol * float(np.max(np.abs(ref[name]))),
                     err_msg=name)


def check_device(kind, xp, device, dtype, put, rng, mask=None):
    """Every result is in the input's namespace, dtype and device (array-api-strict's
    ``device1`` fails for any array created without ``device=``)."""
    case = _cells.make_case(kind, rng, 2, 3, 2, 4, with_h0=False)
    a = to_backend(case, put, dtype)
    outs = list(_cells.run(kind, a, mask=mask).values())
    _, cache = _cells.forward(kind, a, mask=mask)
    outs += list(_cells.backward(kind, cache, a["dhs"][:, -1, :]).values())
    for out in outs:
        assert type(out) is type(a["x"])
        assert device_of(out) == device
        assert out.dtype == dtype


def check_inputs_not_written(kind, rng):
    """Forward and backward never write into the caller's arrays (read-only NumPy arrays raise
    on any in-place update)."""
    case = _cells.make_case(kind, rng, 2, 4, 3, 5)
    for v in case.values():
        v.flags.writeable = False
    _cells.run(kind, case)
    _cells.run(kind, case, mask=np.array([[True, True, False, False], [False, True, True, True]]))


def check_bad_inputs(kind, rng):
    """Wrong shapes and dtypes raise with the argument's name and the expected shape."""
    case = _cells.make_case(kind, rng, 2, 4, 3, 5)
    for form in _cells.forms(kind):
        def forward(a, form=form, **kw):
            return _cells.forward(kind, a, form=form, **kw)

        if "w_h" in case:
            with pytest.raises(ValueError, match="w_h must have shape"):
                forward({**case, "w_h": case["w_h"][:, :-1]})
        with pytest.raises(ValueError, match=r"w_x must have shape \(features, "):
            forward({**case, "w_x": case["w_x"][:-1]})
        bias = _cells.vectors(kind)[-1]
        with pytest.raises(ValueError, match=f"{bias} must have shape"):
            forward({**case, bias: case[bias][:-1]})
        with pytest.raises(TypeError, match="must have the same dtype as x"):
            forward({**case, "x": case["x"].astype(np.float32)})
        with pytest.raises(ValueError, match="h0 must have shape"):
            forward({**case, "h0": case["h0"][:1]})
        with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\)"):
            forward(case, mask=np.ones((2, 3), dtype=bool))
        with pytest.raises(ValueError, match=r"lengths must lie in \[0, time\]"):
            forward(case, mask=np.array([4, 5]))
        with pytest.raises(TypeError, match="boolean"):
            forward(case, mask=np.ones((2, 4)))
        _, cache = forward(case)
        with pytest.raises(ValueError, match="dhs must have shape"):
            _cells.backward(kind, cache, case["dhs"][:, :-1])
        with pytest.raises(ValueError, match="nothing to backpropagate"):
            _cells.backward(kind, cache, None)


def check_cache_is_minimal(kind, rng):
    """The cache references the caller's arrays (no copies) and, without a mask, its ``hs`` is
    the returned array; with a mask the returned outputs are a separate, zero-padded array."""
    case = _cells.make_case(kind, rng, 2, 4, 3, 5)
    for form in _cells.forms(kind):
        out, cache = _cells.forward(kind, case, form=form)
        assert cache.hs is out
        assert cache.x is case["x"] and cache.w_x is case["w_x"]
        assert "w_h" not in case or cache.w_h is case["w_h"]
        assert cache.h0 is case["h0"] and cache.mask is None
        mask = np.array([[True, True, False, False], [True, True, True, True]])
        out_m, cache_m = _cells.forward(kind, case, mask=mask, form=form)
        assert cache_m.hs is not out_m
        np.testing.assert_array_equal(out_m[0, 2:], 0.0)
        if form == "step":  # carried, not zeroed
            np.testing.assert_array_equal(cache_m.hs[0, 3], cache_m.hs[0, 1])
        else:  # carried through the scan's chunk carry, computed in another order
            np.testing.assert_allclose(cache_m.hs[0, 3], cache_m.hs[0, 1], rtol=4e-16)


def check_zero_state_step(kind, rng):
    """An omitted initial state is the zero state: the cells' first step from it skips the
    GEMM of zeros (and ``f * 0``), and every result is the same bits as with explicit zero
    arrays (``assert_array_equal``: a ``-0.0`` equals ``0.0``), forward and backward, float32
    and float64, with a per-step gradient and with final-state gradients only."""
    for dtype in (np.float64, np.float32):
        case = {k: None if v is None else v.astype(dtype)
                for k, v in _cells.make_case(kind, rng, 3, 5, 4, 6).items()}
        zeros = np.zeros_like(case["h0"])
        explicit = {**case, **{s + "0": zeros for s in _cells.spec(kind).states}}
        omitted = {**case, **{s + "0": None for s in _cells.spec(kind).states}}
        for final in (True, False):
            want, got = _cells.run(kind, explicit, final=final), _cells.run(kind, omitted,
                                                                            final=final)
            assert set(want) == set(got)
            for name in want:
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)
