"""Property-based tests (hypothesis) of the Elman core over random small shapes and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnx._backend import device as device_of
from rnnx._backend import to_numpy
from rnnx.functional import rnn_backward, rnn_forward
from rnnx.testing import assert_close, finite_difference_grads, grad_check_error

# Fixtures (xp, device) are the same for every example: tell hypothesis that is intended.
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

shapes = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.integers(1, 6))


def _case(seed, batch, time, features, hidden, put, dtype):
    rng = np.random.default_rng(seed)
    return (
        put(rng.normal(size=(batch, time, features)), dtype),
        put(rng.normal(size=(features, hidden)) / np.sqrt(features), dtype),
        put(rng.normal(size=(hidden, hidden)) * (0.9 / np.sqrt(hidden)), dtype),
        put(rng.normal(size=(hidden,)) * 0.1, dtype),
        put(rng.normal(size=(batch, hidden)), dtype),
        put(rng.normal(size=(batch, time, hidden)), dtype),
    )


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), f32=st.booleans(),
       nonlinearity=st.sampled_from(["tanh", "relu"]))
def test_shapes_and_finiteness(xp, device, put, shape, seed, f32, nonlinearity):
    dtype = xp.float32 if f32 else xp.float64
    x, w_x, w_h, b, h0, dhs = _case(seed, *shape, put, dtype)
    batch, time, features, hidden = shape
    hs, cache = rnn_forward(x, w_x, w_h, b, h0, nonlinearity=nonlinearity)
    grads = rnn_backward(dhs, cache)
    expected = {"hs": (batch, time, hidden), "dx": (batch, time, features),
                "dh0": (batch, hidden), "dw_x": (features, hidden), "dw_h": (hidden, hidden),
                "db": (hidden,)}
    for name, value in {"hs": hs, **grads._asdict()}.items():
        assert tuple(value.shape) == expected[name], name
        assert value.dtype == dtype and device_of(value) == device, name
        assert np.all(np.isfinite(to_numpy(value))), name


@SETTINGS
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4)),
       seed=st.integers(0, 2**32 - 1))
def test_float64_gradients_pass_finite_differences(xp, device, put, shape, seed):
    """Step 1e-6 central differences: a correct float64 gradient scores ~1e-10 relative error
    (see README). Random shapes also produce gradients far smaller than the loss (a saturated
    tanh, one hidden unit), where the difference quotient's rounding floor, about
    eps * |L| / step, dominates: the norm-wise error must then be within 10x that floor."""
    x, w_x, w_h, b, h0, dhs = _case(seed, *shape, put, xp.float64)
    args = {"x": x, "w_x": w_x, "w_h": w_h, "b": b, "h0": h0}
    _, cache = rnn_forward(**args)
    grads = rnn_backward(dhs, cache)._asdict()

    def loss(**kw):
        hs, _ = rnn_forward(**kw)
        return xp.sum(hs * dhs)

    numeric = finite_difference_grads(loss, args)
    floor = 10 * np.finfo(np.float64).eps * max(abs(float(to_numpy(loss(**args)))), 1.0) / 1e-6
    for name in args:
        a, n = to_numpy(grads["d" + name]), numeric[name]
        rel = grad_check_error(a, n)
        assert rel <= 1e-7 or np.linalg.norm(a - n) <= floor, (name, rel)


@SETTINGS
@given(batch=st.integers(1, 3), t1=st.integers(1, 5), t2=st.integers(1, 5),
       features=st.integers(1, 4), hidden=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       f32=st.booleans())
def test_carrying_the_state_equals_one_run(xp, device, put, batch, t1, t2, features, hidden,
                                           seed, f32):
    """T1 steps, then T2 more from the carried state, equals T1+T2 steps at once. Not bit for
    bit: BLAS may pick another kernel (another summation order) for the input GEMM when the
    row count changes; tanh states lie in [-1, 1], so 100 ulps absolute covers that rounding
    over these few steps while any change to the carried state shows at order 1e-2."""
    dtype = xp.float32 if f32 else xp.float64
    x, w_x, w_h, b, h0, _ = _case(seed, batch, t1 + t2, features, hidden, put, dtype)
    hs, _ = rnn_forward(x, w_x, w_h, b, h0)
    hs1, _ = rnn_forward(x[:, :t1, :], w_x, w_h, b, h0)
    hs2, _ = rnn_forward(x[:, t1:, :], w_x, w_h, b, hs1[:, -1, :])
    tol = 100 * float(xp.finfo(dtype).eps)
    assert_close(hs1, hs[:, :t1, :], rtol=0.0, atol=tol)
    assert_close(hs2, hs[:, t1:, :], rtol=0.0, atol=tol)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_split_backward_equals_one_backward(rng, nonlinearity):
    """Backward over two chunks, feeding the second chunk's dh0 into the first chunk's last
    step, gives the one-run gradients (up to summation order)."""
    B, T1, T2, F, H = 2, 3, 4, 3, 5
    x = rng.normal(size=(B, T1 + T2, F))
    w_x, w_h = rng.normal(size=(F, H)) * 0.5, rng.normal(size=(H, H)) * 0.3
    b, h0, dhs = rng.normal(size=H) * 0.1, rng.normal(size=(B, H)), rng.normal(size=(B, T1 + T2, H))
    _, c = rnn_forward(x, w_x, w_h, b, h0, nonlinearity=nonlinearity)
    g = rnn_backward(dhs, c)
    hs1, c1 = rnn_forward(x[:, :T1], w_x, w_h, b, h0, nonlinearity=nonlinearity)
    _, c2 = rnn_forward(x[:, T1:], w_x, w_h, b, hs1[:, -1], nonlinearity=nonlinearity)
    g2 = rnn_backward(dhs[:, T1:], c2)
    d1 = dhs[:, :T1].copy()
    d1[:, -1] += g2.dh0
    g1 = rnn_backward(d1, c1)
    np.testing.assert_allclose(np.concatenate([g1.dx, g2.dx], axis=1), g.dx, rtol=1e-12, atol=0)
    np.testing.assert_allclose(g1.dh0, g.dh0, rtol=1e-12)
    for a1, a2, full in ((g1.dw_x, g2.dw_x, g.dw_x), (g1.dw_h, g2.dw_h, g.dw_h),
                         (g1.db, g2.db, g.db)):
        np.testing.assert_allclose(a1 + a2, full, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ estimators

est_shapes = st.tuples(st.integers(2, 12), st.integers(1, 5), st.integers(1, 3), st.integers(1, 6))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=est_shapes, n_classes=st.integers(2, 4), two_d=st.booleans(), f32=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_estimator_outputs_have_documented_shapes(backend, shape, n_classes, two_d, f32, seed):
    """Random small problems: the classifier's labels are (n_samples,) from classes_, its
    probabilities (n_samples, n_classes) are finite and sum to 1 (float32: 1e-5, a few ulps of
    n_classes terms); the regressor predicts y's shape, finite; everything comes back in X's
    namespace and on its device, and the history has one finite loss per epoch."""
    from rnnx._backend import backend_name, float64_unavailable, from_host, namespace
    from rnnx.models import RNNClassifier, RNNRegressor

    name, xp, dev = backend
    if not f32 and float64_unavailable(xp):
        f32 = True  # JAX without x64: its float32 is what runs

    n, time, features, hidden = shape
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, time) if two_d else (n, time, features))
    y = np.arange(n) % n_classes  # every class present (n >= 2 covers 2 classes at least)
    dtype = "float32" if f32 else "float64"
    Xd = from_host(X, xp=xp, device=dev, dtype=getattr(xp, dtype))
    params = dict(hidden_size=hidden, epochs=2, batch_size=4, random_state=seed % 1000, dtype=dtype)
    k = len(np.unique(y))
    clf = RNNClassifier(**params).fit(Xd, from_host(y, xp=xp, device=dev))
    pred, proba = clf.predict(Xd), clf.predict_proba(Xd)
    for out in (pred, proba):
        assert backend_name(namespace(out)) == name
        assert device_of(out) == dev
    assert tuple(pred.shape) == (n,) and set(to_numpy(pred).tolist()) <= set(clf.classes_.tolist())
    p = to_numpy(proba)
    assert p.shape == (n, k) and p.dtype == np.dtype(dtype) and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-5 if f32 else 1e-12)
    assert len(clf.history_["loss"]) == 2 and np.all(np.isfinite(clf.history_["loss"]))
    target = rng.normal(size=(n, 2))
    reg = RNNRegressor(**params).fit(Xd, from_host(target, xp=xp, device=dev,
                                                   dtype=getattr(xp, dtype)))
    r = to_numpy(reg.predict(Xd))
    assert r.shape == (n, 2) and np.all(np.isfinite(r))
