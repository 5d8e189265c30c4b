"""The linear scan (rnnx.functional.scan) against a sequential loop (float64 rounding), torch
autograd of the same loop in torch operations (float64, 1e-10), central finite differences,
masks and lengths, float32 within the rounding bound of rnnx.testing._scan, T = 10^4 in
float32 (gates that keep, reset, or are exactly 0 and 1), and the inputs' device."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import from_host, to_numpy
from rnnx.functional.scan import chunk_length, linear_scan, linear_scan_backward
from rnnx.testing import assert_close, finite_difference_grads, grad_check_error
from rnnx.testing._scan import scan_memory, scan_rtol

# Chunk layouts: one chunk (1, 2, 5), padded (7, 101), exact (12, 48, 1000).
TIMES = [1, 2, 5, 7, 12, 48, 101]


def loop(a, b, h0=None, mask=None):
    """The recurrence on the host in float64, one step at a time."""
    batch, time, hidden = a.shape
    h = np.zeros((batch, hidden)) if h0 is None else h0
    out = np.empty((batch, time, hidden))
    for t in range(time):
        new = a[:, t] * h + b[:, t]
        h = new if mask is None else np.where(mask[:, t, None], new, h)
        out[:, t] = h
    return out


def loop_grads(a, b, h0, dhs, dh_n):
    """The adjoint on the host in float64, one step at a time, from the derivation
    (``G_t = dhs_t + a_{t+1} G_{t+1}``): host arrays ``hs``, ``da``, ``db``, ``dh0``. Checked
    against torch autograd below; the reference where torch's graph of 10^4 steps is slow."""
    hs = loop(a, b, h0)
    time = a.shape[1]
    G = np.empty_like(hs)
    g = dh_n
    for t in range(time - 1, -1, -1):
        g = dhs[:, t] + (a[:, t + 1] * g if t + 1 < time else g)
        G[:, t] = g
    h_prev = np.concatenate([h0[:, None], hs[:, :-1]], axis=1)
    return {"hs": hs, "da": G * h_prev, "db": G, "dh0": a[:, 0] * G[:, 0]}


def torch_scan(a, b, h0, dhs, dh_n, mask=None):
    """The loop in torch operations and its gradients by torch autograd (float64): host
    arrays ``hs``, ``da``, ``db``, ``dh0``."""
    torch = pytest.importorskip("torch")
    t = {k: torch.from_numpy(np.array(v, dtype=np.float64)).requires_grad_(True)
         for k, v in (("a", a), ("b", b), ("h0", h0))}
    h, outs = t["h0"], []
    for k in range(a.shape[1]):
        new = t["a"][:, k] * h + t["b"][:, k]
        h = new if mask is None else torch.where(torch.from_numpy(mask[:, k, None]), new, h)
        outs.append(h)
    hs = torch.stack(outs, dim=1)
    loss = (hs * torch.from_numpy(dhs)).sum()
    if dh_n is not None:
        loss = loss + (h * torch.from_numpy(dh_n)).sum()
    loss.backward()
    return {"hs": hs.detach().numpy(), "da": t["a"].grad.numpy(), "db": t["b"].grad.numpy(),
            "dh0": t["h0"].grad.numpy()}


def make(rng, batch, time, hidden, *, kind="uniform"):
    """Host float64 ``a, b, h0, dhs, dh_n``. ``kind``: ``uniform`` a in (0, 1); ``keep`` a
    near 1 (memory ~1500 steps); ``edges`` a mix of exact 0 and 1, tiny (1e-30) and
    uniform values; ``b`` of both signs throughout."""
    if kind == "uniform":
        a = rng.uniform(0.0, 1.0, size=(batch, time, hidden))
    elif kind == "keep":
        a = 1.0 - rng.uniform(0.0, 6e-4, size=(batch, time, hidden))
    else:
        a = rng.choice([0.0, 1.0, 1e-30, 0.5], size=(batch, time, hidden),
                       p=[0.01, 0.3, 0.04, 0.65])
        a = np.where(a == 0.5, rng.uniform(0.0, 1.0, size=a.shape), a)
    return (a, rng.normal(size=(batch, time, hidden)), rng.normal(size=(batch, hidden)),
            rng.normal(size=(batch, time, hidden)), rng.normal(size=(batch, hidden)))


def max_rel_dev(got, ref):
    """Max deviation relative to the reference array's largest magnitude."""
    return float(np.max(np.abs(to_numpy(got) - ref))) / max(float(np.max(np.abs(ref))), 1e-300)


def test_chunk_length_prefers_a_divisor_near_the_square_root():
    assert [chunk_length(t) for t in (1, 2, 5, 7, 12, 48, 101, 1000, 1024, 10000, 10007)] == \
        [1, 2, 5, 3, 4, 8, 11, 40, 32, 100, 101]


@pytest.mark.parametrize("time", TIMES)
@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "zeros"])
def test_matches_the_loop_to_float64_rounding(xp, device, put, rng, time, with_h0):
    a, b, h0, _, _ = make(rng, 3, time, 4)
    h0 = h0 if with_h0 else None
    got = linear_scan(put(a, xp.float64), put(b, xp.float64),
                      None if h0 is None else put(h0, xp.float64))
    assert device_of(got) == device and got.dtype == xp.float64
    rtol = scan_rtol(xp.float64, xp, memory=scan_memory(a), terms=2)
    err = max_rel_dev(got, loop(a, b, h0))
    assert err <= rtol, f"deviation from the loop {err:.2e} > {rtol:.2e}"


@pytest.mark.parametrize("time", [1, 7, 12, 101])
@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "zeros"])
@pytest.mark.parametrize("final", [True, False], ids=["with-dh_n", "dhs-only"])
def test_backward_matches_torch_autograd(xp, device, put, rng, time, with_h0, final):
    a, b, h0, dhs, dh_n = make(rng, 3, time, 4)
    ref = torch_scan(a, b, h0 if with_h0 else np.zeros_like(h0), dhs, dh_n if final else None)
    f64 = xp.float64
    h0_b = put(h0, f64) if with_h0 else None
    hs = linear_scan(put(a, f64), put(b, f64), h0_b)
    grads = linear_scan_backward(put(dhs, f64), put(a, f64), hs, h0_b,
                                 put(dh_n, f64) if final else None)
    got = {"hs": hs, **grads._asdict()}
    for name, value in got.items():
        assert device_of(value) == device, name
        err = max_rel_dev(value, ref[name])
        assert err <= 1e-10, f"{name}: deviation from torch {err:.2e}"


def test_the_host_adjoint_loop_matches_torch(rng):
    """The float64 reference of the long cases below agrees with torch autograd."""
    case = make(rng, 2, 30, 3, kind="edges")
    ref, got = torch_scan(*case), loop_grads(*case)
    for name in ref:
        assert max_rel_dev(got[name], ref[name]) <= 1e-13, name


@pytest.mark.parametrize("as_lengths", [False, True], ids=["bool-mask", "lengths"])
def test_padded_steps_carry_the_state_and_get_no_gradient(xp, device, put, rng, as_lengths):
    """A padded step is ``a = 1, b = 0``: the state (and the adjoint) pass through it and its
    ``da``, ``db`` are zero; torch autograd of the masked loop agrees (float64, 1e-10)."""
    batch, time, hidden = 3, 13, 4
    a, b, h0, dhs, dh_n = make(rng, batch, time, hidden)
    if as_lengths:
        lengths = np.array([13, 6, 0])
        mask = np.arange(time)[None, :] < lengths[:, None]
        m = put(lengths)
    else:
        mask = rng.random((batch, time)) > 0.35  # padding anywhere
        m = put(mask)
    f64 = xp.float64
    hs = linear_scan(put(a, f64), put(b, f64), put(h0, f64), mask=m)
    a_run = np.where(mask[..., None], a, 1.0)
    rtol = scan_rtol(f64, xp, memory=scan_memory(a_run), terms=2)
    assert max_rel_dev(hs, loop(a_run, np.where(mask[..., None], b, 0.0), h0)) <= rtol
    grads = linear_scan_backward(put(dhs, f64), put(a, f64), hs, put(h0, f64), put(dh_n, f64),
                                 mask=m)
    ref = torch_scan(a, b, h0, dhs, dh_n, mask=mask)
    for name, value in {"hs": hs, **grads._asdict()}.items():
        assert device_of(value) == device, name
        err = max_rel_dev(value, ref[name])
        assert err <= 1e-10, f"{name}: deviation from torch {err:.2e}"
    assert not np.any(to_numpy(grads.da)[~mask]) and not np.any(to_numpy(grads.db)[~mask])


def test_finite_differences(xp, put, rng):
    """Central differences (step 1e-6, float64) of ``sum(hs*dhs) + sum(h_n*dh_n)``: relative
    error ~1e-10 for a correct gradient; 1e-7 leaves margin, a wrong one scores ~1."""
    a, b, h0, dhs, dh_n = make(rng, 2, 7, 3)
    args = {"a": put(a, xp.float64), "b": put(b, xp.float64), "h0": put(h0, xp.float64)}
    d_hs, d_n = put(dhs, xp.float64), put(dh_n, xp.float64)

    def loss(a, b, h0):
        hs = linear_scan(a, b, h0)
        return xp.sum(hs * d_hs) + xp.sum(hs[:, -1, :] * d_n)

    numeric = finite_difference_grads(loss, args)
    hs = linear_scan(**args)
    grads = linear_scan_backward(d_hs, args["a"], hs, args["h0"], d_n)._asdict()
    for name in args:
        err = grad_check_error(grads["d" + name], numeric[name])
        assert err <= 1e-7, f"d{name}: finite-difference relative error {err:.2e}"


def _float32_case(xp, device, put, a, b, h0, dhs, dh_n, *, ref=None, memory=None):
    """float32 results (forward and backward) and their float64 host references, with the
    rounding bound of each: the float32 conversion of ``a`` and ``b`` plus the step's two
    roundings (``terms = 4``)."""
    f32 = xp.float32
    a32, h0_32 = put(a, f32), put(h0, f32)
    hs = linear_scan(a32, put(b, f32), h0_32)
    grads = linear_scan_backward(put(dhs, f32), a32, hs, h0_32, put(dh_n, f32))
    ref = torch_scan(a, b, h0, dhs, dh_n) if ref is None else ref
    rtol = scan_rtol(f32, xp, memory=scan_memory(a) if memory is None else memory, terms=4)
    return {"hs": hs, **grads._asdict()}, ref, rtol


def _assert_within(got, ref, rtol, xp, device):
    for name, value in got.items():
        assert device_of(value) == device and value.dtype == xp.float32, name
        want = from_host(ref[name], xp=xp, device=device, dtype=xp.float32)
        assert_close(value, want, rtol=0.0, atol=rtol * float(np.max(np.abs(ref[name]))),
                     err_msg=name)


def test_float32_within_the_rounding_bound(xp, device, put, rng):
    """float32 against torch's float64, every array within the derived bound (~2e-6 here);
    the same results off by 2e-4 relative fail it."""
    case = make(rng, 3, 48, 5)
    got, ref, rtol = _float32_case(xp, device, put, *case)
    assert rtol < 2e-4 / 20
    _assert_within(got, ref, rtol, xp, device)
    with pytest.raises(AssertionError, match="not close"):
        _assert_within({"hs": got["hs"] * (1.0 + 2e-4)}, ref, rtol, xp, device)


@functools.cache
def _long_case(kind):
    """The T = 10^4 case of ``kind``, its float64 reference (the loops) and memory, made once
    per session (the same for every backend)."""
    case = make(np.random.default_rng(["uniform", "keep", "edges"].index(kind)), 2, 10_000, 3,
                kind=kind)
    return case, loop_grads(*case), scan_memory(case[0])


@pytest.mark.parametrize("kind", ["uniform", "keep", "edges"])
def test_ten_thousand_steps_in_float32(xp, device, put, kind):
    """T = 10^4 in float32: finite, and forward and backward within the bound of the case
    against the float64 loops (memory ~2 for uniform gates, ~3000 for ``keep``; exact 0, 1
    and 1e-30 coefficients)."""
    case, ref, memory = _long_case(kind)
    got, _, rtol = _float32_case(xp, device, put, *case, ref=ref, memory=memory)
    for name, value in got.items():
        assert bool(xp.all(xp.isfinite(value))), name
    _assert_within(got, ref, rtol, xp, device)
    if kind != "keep":
        assert rtol < 2e-4 / 10  # tight enough to catch a 2e-4 error


def test_results_on_the_inputs_device(xp, device, dtype, put, rng):
    a, b, h0, dhs, _ = make(rng, 2, 7, 3)
    args = [put(v, dtype) for v in (a, b)]
    mask = put(np.array([[True] * 7, [False, True, True, True, False, False, False]]))
    for h in (None, put(h0, dtype)):
        hs = linear_scan(*args, h, mask=mask)
        grads = linear_scan_backward(put(dhs, dtype), args[0], hs, h, None, mask=mask)
        for value in (hs, *grads):
            assert type(value) is type(args[0])
            assert device_of(value) == device and value.dtype == dtype


def test_inputs_are_not_written(rng):
    a, b, h0, dhs, dh_n = make(rng, 2, 12, 3)
    for v in (a, b, h0, dhs, dh_n):
        v.flags.writeable = False
    hs = linear_scan(a, b, h0)
    linear_scan_backward(dhs, a, hs, h0, dh_n)
    linear_scan_backward(None, a, hs, None, dh_n, mask=np.array([3, 12]))


def test_bad_inputs_name_the_argument(rng):
    a, b, h0, dhs, _ = make(rng, 2, 5, 3)
    with pytest.raises(ValueError, match=r"b must have shape \(batch, time, hidden\)"):
        linear_scan(a, b[:, :-1])
    with pytest.raises(ValueError, match=r"h0 must have shape \(batch, hidden\)"):
        linear_scan(a, b, h0[:, :-1])
    with pytest.raises(ValueError, match="a must be 3-D"):
        linear_scan(a[0], b[0])
    with pytest.raises(TypeError, match="b must have the same dtype as a"):
        linear_scan(a, b.astype(np.float32))
    with pytest.raises(TypeError, match="a must have a real floating dtype"):
        linear_scan(a.astype(np.int64), b)
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\)"):
        linear_scan(a, b, mask=np.ones((2, 4), dtype=bool))
    hs = linear_scan(a, b)
    with pytest.raises(ValueError, match="nothing to backpropagate"):
        linear_scan_backward(None, a, hs)
    with pytest.raises(ValueError, match=r"dhs must have shape \(batch, time, hidden\)"):
        linear_scan_backward(dhs[:, :-1], a, hs)
    with pytest.raises(TypeError, match="dhs must have the forward's dtype float64"):
        linear_scan_backward(dhs.astype(np.float32), a, hs)
    with pytest.raises(ValueError, match=r"hs must have shape \(batch, time, hidden\)"):
        linear_scan_backward(dhs, a, hs[:, :-1])
