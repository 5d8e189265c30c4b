"""minGRU and minLSTM (rnnx.functional.min_gru, min_lstm): the parallel forms against the
paper's equations in torch operations under torch autograd (float64, 1e-10), against their own
step form run as a loop (float64 rounding), central finite differences, masks and lengths,
float32 within the memory-derived rounding bound (rnnx.testing._scan; 2e-4 fails), T = 10^4 in
float32, the activation ``g`` and the normalised gates at their edges, the inputs' device, bad
inputs."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import from_host, to_numpy
from rnnx.functional import _minimal, min_gru, min_lstm
from rnnx.testing import assert_close, finite_difference_grads, grad_check_error
from rnnx.testing._scan import MIN_RNN_GATE_ROUNDINGS, scan_memory, scan_rtol

from . import _min_rnn as cells

pytestmark = pytest.mark.parametrize("kind", cells.KINDS, ids=cells.KINDS)

# (batch, time, features, hidden): one step, one chunk, padded chunks, exact chunks, long.
SHAPES = [(1, 1, 3, 5), (4, 7, 3, 8), (3, 5, 6, 2), (2, 48, 4, 6), (2, 101, 3, 4)]
SHAPE_IDS = ["batch1-time1", "padded-chunks", "hidden<features", "chunks", "long"]


def max_rel_dev(got, ref):
    """Max deviation relative to the reference array's largest magnitude."""
    return float(np.max(np.abs(to_numpy(got) - ref))) / max(float(np.max(np.abs(ref))), 1e-300)


def check_against(got, ref, device, bound, what):
    assert set(got) == set(ref)
    for name, value in got.items():
        assert device_of(value) == device, name
        assert tuple(value.shape) == ref[name].shape, name
        err = max_rel_dev(value, ref[name])
        assert err <= bound, f"{name}: max deviation from {what} {err:.2e} (relative to max)"


@pytest.mark.parametrize("final", [True, False], ids=["with-dh_n", "outputs-only"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "zeros"])
def test_matches_torch_autograd(kind, xp, device, put, rng, shape, with_h0, final):
    """Outputs, final state and every gradient equal torch's (float64, 1e-10 relative)."""
    case = cells.make_case(kind, rng, *shape, with_h0=with_h0)
    ref = cells.torch_reference(kind, case, final=final)
    got = cells.run(kind, cells.to_backend(case, put, xp.float64), final=final)
    check_against(got, ref, device, 1e-10, "torch")


@pytest.mark.parametrize("memory", ["long", "longer"])
def test_long_memory_matches_torch_autograd(kind, xp, device, put, rng, memory):
    """Gates that keep the state (``a`` near 0.98 and 0.9997) over 101 steps."""
    case = cells.make_case(kind, rng, 2, 101, 3, 4, memory=memory)
    check_against(cells.run(kind, cells.to_backend(case, put, xp.float64)),
                  cells.torch_reference(kind, case), device, 1e-10, "torch")


@pytest.mark.parametrize("as_lengths", [False, True], ids=["bool-mask", "lengths"])
def test_masks_match_torch_autograd(kind, xp, device, put, rng, as_lengths):
    """Padding anywhere (a boolean mask) or on the right (lengths, one of them 0): the state
    carried, the output zero, no gradient through a padded step; torch's masked loop agrees."""
    batch, time = 4, 13
    case = cells.make_case(kind, rng, batch, time, 3, 5)
    if as_lengths:
        lengths = np.array([13, 6, 0, 1])
        mask = np.arange(time)[None, :] < lengths[:, None]
        m = put(lengths)
    else:
        mask = rng.random((batch, time)) > 0.35
        m = put(mask)
    got = cells.run(kind, cells.to_backend(case, put, xp.float64), mask=m)
    check_against(got, cells.torch_reference(kind, case, mask=mask), device, 1e-10, "torch")
    assert not np.any(to_numpy(got["out"])[~mask])


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_parallel_form_matches_the_step_form(kind, xp, device, put, rng, masked):
    """The parallel forms (scan and adjoint scan) and the step form run as a loop agree to
    float64 rounding: the bound of rnnx.testing._scan for each array (sums over
    ``batch * time`` rows for the weight gradients, over ``G * hidden`` for ``dx``)."""
    batch, time, features, hidden = 3, 29, 4, 5
    case = cells.make_case(kind, rng, batch, time, features, hidden, memory="long")
    a = cells.to_backend(case, put, xp.float64)
    mask = rng.random((batch, time)) > 0.3 if masked else None
    m = None if mask is None else put(mask)
    got, ref = cells.run(kind, a, mask=m), cells.sequential(kind, a, mask=m)
    memory = scan_memory(cells.coefficients(kind, case))
    for name, value in got.items():
        rtol = scan_rtol(xp.float64, xp, memory=memory,
                         terms=features + 1 + MIN_RNN_GATE_ROUNDINGS,
                         sums=_sums(kind, name, batch, time, hidden))
        assert_close(value, ref[name], rtol=0.0,
                     atol=rtol * float(np.max(np.abs(to_numpy(ref[name])))), err_msg=name)


def _sums(kind, name, batch, time, hidden):
    return {"dx": cells.GATES[kind] * hidden, "dw_x": batch * time,
            "db": batch * time}.get(name, 0)


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_finite_differences(kind, xp, put, rng, masked):
    """Central differences (step 1e-6, float64): relative error ~1e-10 for a correct
    gradient; 1e-7 leaves margin, a wrong one scores ~1."""
    case = cells.make_case(kind, rng, 2, 5, 3, 4)
    a = cells.to_backend(case, put, xp.float64)
    m = put(np.array([[True, True, False, True, True], [False, True, True, True, False]])) \
        if masked else None
    grads = cells.run(kind, a, mask=m)
    numeric = finite_difference_grads(cells.loss_fn(kind, a, mask=m),
                                      {k: a[k] for k in cells.INPUTS})
    for name in cells.INPUTS:
        err = grad_check_error(grads["d" + name], numeric[name])
        assert err <= 1e-7, f"d{name}: finite-difference relative error {err:.2e}"


FLOAT32_SHAPE = (4, 12, 3, 8)  # (batch, time, features, hidden)


def _float32_bounds(kind, case, xp, shape):
    batch, time, features, hidden = shape
    memory = scan_memory(cells.coefficients(kind, case))
    return {name: scan_rtol(xp.float32, xp, memory=memory,
                            terms=features + 1 + MIN_RNN_GATE_ROUNDINGS,
                            sums=_sums(kind, name, batch, time, hidden))
            for name in cells.RESULTS}


def _assert_float32(got, ref, bounds, xp, device):
    for name, value in got.items():
        assert value.dtype == xp.float32 and device_of(value) == device, name
        assert bool(xp.all(xp.isfinite(value))), name
        want = from_host(to_numpy(ref[name]), xp=xp, device=device, dtype=xp.float32)
        assert_close(value, want, rtol=0.0,
                     atol=bounds[name] * float(np.max(np.abs(to_numpy(ref[name])))),
                     err_msg=name)


@pytest.mark.parametrize("memory", ["short", "longer"])
def test_float32_agrees_with_the_float64_step_form(kind, xp, device, put, rng, memory):
    """float32 parallel form on every backend against the NumPy float64 step form, every
    array within its bound (5e-6, 1.1e-5 with "longer" memory); the same results off by 2e-4
    relative fail. With
    "longer" memory the gates sit near 0 and 1 (``z``, ``i'`` about 3e-4), where a sigmoid
    with an absolute rather than relative error was off by 4e-5 in float32."""
    case = cells.make_case(kind, rng, *FLOAT32_SHAPE, memory=memory)
    ref = cells.sequential(kind, case)
    bounds = _float32_bounds(kind, case, xp, FLOAT32_SHAPE)
    assert max(bounds.values()) < 2e-4 / 10
    got = cells.run(kind, cells.to_backend(case, put, xp.float32))
    _assert_float32(got, ref, bounds, xp, device)
    with pytest.raises(AssertionError, match="not close"):
        _assert_float32({"dw_x": got["dw_x"] * (1.0 + 2e-4)}, ref, bounds, xp, device)


LONG_SHAPE = (2, 10_000, 3, 4)


@functools.cache
def _long_case(kind, memory):
    """The T = 10^4 case and its NumPy float64 step-form reference, made once per session.
    ``memory="constant"``: the "longer" case with the gates' weights zero, so every step has
    the same gates and the coefficients' rounding the same sign (the coherent part of the
    bound)."""
    rng = np.random.default_rng([cells.KINDS.index(kind), len(memory)])
    case = cells.make_case(kind, rng, *LONG_SHAPE, memory="longer" if memory == "constant"
                           else memory)
    if memory == "constant":
        case["w_x"][:, : (cells.GATES[kind] - 1) * LONG_SHAPE[3]] = 0.0
    return case, cells.sequential(kind, case)


@pytest.mark.parametrize("memory", ["long", "longer", "constant"])
def test_ten_thousand_steps_in_float32(kind, xp, device, put, memory):
    """T = 10^4 in float32: finite, and every array within the bound of the case against the
    float64 step form. "long" (memory ~60 steps) keeps the bound below 2e-4 / 2; "longer" and
    "constant" (~3000 steps, the latter with identical gates every step) are the float32
    limit: each coefficient near 0.9997 is stored to 6e-8, and thousands are multiplied."""
    case, ref = _long_case(kind, memory)
    bounds = _float32_bounds(kind, case, xp, LONG_SHAPE)
    if memory == "long":
        assert max(bounds.values()) < 2e-4 / 2
    got = cells.run(kind, cells.to_backend(case, put, xp.float32))
    _assert_float32(got, ref, bounds, xp, device)


def test_results_on_the_inputs_device(kind, xp, device, dtype, put, rng):
    """Every result in the inputs' namespace, dtype and device (array-api-strict's
    ``device1`` fails for an array created without ``device=``), with and without a mask."""
    case = cells.make_case(kind, rng, 2, 7, 2, 4, with_h0=False)
    a = cells.to_backend(case, put, dtype)
    for mask in (None, put(np.array([3, 7]))):
        outs = list(cells.run(kind, a, mask=mask).values())
        _, cache = cells.forward(kind, a, mask=mask)
        outs += list(cells.backward(kind, cache, a["dhs"][:, -1, :]).values())
        for out in outs:
            assert type(out) is type(a["x"])
            assert device_of(out) == device and out.dtype == dtype


def test_final_state_gradient_forms_agree(kind, rng):
    """A 2-D ``dhs`` (the final state's gradient) equals passing it as ``dh_n``, bit for bit,
    and equals a 3-D one with zeros before the last step to rounding."""
    case = cells.make_case(kind, rng, 3, 6, 4, 5)
    _, cache = cells.forward(kind, case)
    last = case["dhs"][:, -1, :]
    padded = np.zeros_like(case["dhs"])
    padded[:, -1, :] = last
    g2, gn, g3 = (cells.backward(kind, cache, last), cells.backward(kind, cache, None, last),
                  cells.backward(kind, cache, padded))
    for name in g2:
        np.testing.assert_array_equal(g2[name], gn[name], err_msg=name)
        np.testing.assert_allclose(g2[name], g3[name], rtol=1e-14, atol=1e-14, err_msg=name)


def test_state_grads_are_the_total_gradients(kind, rng):
    """``state_grads`` receives ``dL/dh_t``: at the last step ``dhs_T + dh_n``, and the
    adjoint recurrence between steps (``G_t = dhs_t + a_{t+1} G_{t+1}``)."""
    case = cells.make_case(kind, rng, 2, 6, 3, 4)
    _, cache = cells.forward(kind, case)
    slots = [None] * 6
    cells.backward(kind, cache, case["dhs"], case["dh_n"], state_grads=slots)
    a = to_numpy(cache.keep if kind == "min_gru" else cache.f_norm)
    np.testing.assert_allclose(slots[5], case["dhs"][:, 5] + case["dh_n"], rtol=1e-15)
    for t in range(5):
        np.testing.assert_allclose(slots[t], case["dhs"][:, t] + a[:, t + 1] * slots[t + 1],
                                   rtol=1e-13)


def test_inputs_are_not_written(kind, rng):
    """Forward and backward never write into the caller's arrays (read-only NumPy arrays raise
    on any in-place update)."""
    case = cells.make_case(kind, rng, 2, 12, 3, 5)
    for v in case.values():
        v.flags.writeable = False
    cells.run(kind, case)
    cells.run(kind, case, mask=np.array([[True] * 6 + [False] * 6, [False, True] * 6]))


def test_bad_inputs_name_the_argument(kind, rng):
    case = cells.make_case(kind, rng, 2, 4, 3, 5)
    gates = cells.GATES[kind]
    with pytest.raises(ValueError, match=rf"w_x must have shape \(features, {gates}\*hidden\)"):
        cells.forward(kind, {**case, "w_x": case["w_x"][:, :-1]})
    with pytest.raises(ValueError, match=rf"w_x must have shape \(features, {gates}\*hidden\)"):
        cells.forward(kind, {**case, "w_x": case["w_x"][:-1]})
    with pytest.raises(ValueError, match=rf"b must have shape \({gates}\*hidden,\)"):
        cells.forward(kind, {**case, "b": case["b"][:-1]})
    with pytest.raises(ValueError, match=r"h0 must have shape \(batch, hidden\)"):
        cells.forward(kind, {**case, "h0": case["h0"][:1]})
    with pytest.raises(TypeError, match="w_x must have the same dtype as x"):
        cells.forward(kind, {**case, "w_x": case["w_x"].astype(np.float32)})
    with pytest.raises(ValueError, match="x must be 3-D"):
        cells.forward(kind, {**case, "x": case["x"][0]})
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, time\]"):
        cells.forward(kind, case, mask=np.array([4, 5]))
    _, cache = cells.forward(kind, case)
    with pytest.raises(ValueError, match=r"dhs must have shape \(batch, time, hidden\)"):
        cells.backward(kind, cache, case["dhs"][:, :-1])
    with pytest.raises(ValueError, match="nothing to backpropagate"):
        cells.backward(kind, cache, None)
    with pytest.raises(TypeError, match="dh_n must have the forward pass's dtype float64"):
        cells.backward(kind, cache, None, case["dh_n"].astype(np.float32))


def test_candidate_activation_and_its_derivative(kind):
    """``g(a) = a + 1/2`` for ``a >= 0``, ``sigmoid(a)`` below, to full relative precision on
    both sides of the kink; ``g'`` is 1 at and above 0, ``sigmoid'(a)`` below (0.25 just below
    the kink, where ``sigmoid(a)`` rounds to 1/2)."""
    a = np.array([-700.0, -40.0, -1.0, -1e-20, 0.0, 1e-20, 2.0, 1e300])
    want = np.where(a >= 0, a + 0.5, 1.0 / (1.0 + np.exp(-a)))
    g = _minimal.g_act(a, xp=np)
    np.testing.assert_allclose(g, want, rtol=4e-16, atol=0)
    s = 1.0 / (1.0 + np.exp(-a))
    np.testing.assert_allclose(_minimal.g_grad(a, g, xp=np), np.where(a >= 0, 1.0, s * (1 - s)),
                               rtol=1e-15, atol=0)
    z, keep = _minimal.sigmoid_pair(np.array([-40.0, 40.0], dtype=np.float32), xp=np)
    np.testing.assert_allclose(z, [4.248354e-18, 1.0], rtol=3e-7)  # sigmoid(-40): relative
    np.testing.assert_allclose(keep, [1.0, 4.248354e-18], rtol=3e-7)


def test_normalised_gates_where_both_sigmoids_underflow(kind):
    """``f / (f + i)`` is 0/0 in float32 once ``u_f, u_i < -104``; the softplus form gives
    ``sigmoid(u_f - u_i)`` there, the limit, to full precision, and ``f' + i' = 1``."""
    u_f = np.array([-200.0, -120.0, 30.0], dtype=np.float32)
    u_i = np.array([-201.0, -110.0, 31.0], dtype=np.float32)
    f_norm, i_norm = min_lstm.normalised_gates(u_f, u_i, xp=np)
    want = 1.0 / (1.0 + np.exp(-(np.log1p(np.exp(-u_i.astype(np.float64)))
                                  - np.log1p(np.exp(-u_f.astype(np.float64))))))
    np.testing.assert_allclose(f_norm, want, rtol=4e-7)
    np.testing.assert_allclose(i_norm, 1.0 - want, rtol=4e-7)
    np.testing.assert_allclose(f_norm[:2], 1.0 / (1.0 + np.exp(-(u_f - u_i)[:2].astype(float))),
                               rtol=4e-7)
    assert min_gru.GATE_ORDER == ("z", "h") and min_lstm.GATE_ORDER == ("f", "i", "h")
