"""Softmax cross-entropy and MSE against PyTorch autograd and central finite differences, with
and without masks, on every backend and device."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import to_numpy
from rnnx.losses import log_softmax, mse, softmax, softmax_cross_entropy
from rnnx.testing import assert_close, default_rtol, finite_difference_grads, grad_check_error

torch = pytest.importorskip("torch")

# (leading shape, classes): one label per sequence, and one per step.
SHAPES = [((5,), 4), ((3, 6), 3)]


def _torch_ce(logits, labels, mask):
    """Reference loss and gradient: torch's cross_entropy per entry, masked mean, autograd."""
    z = torch.from_numpy(logits.copy()).requires_grad_(True)
    per = torch.nn.functional.cross_entropy(
        z.reshape(-1, logits.shape[-1]), torch.from_numpy(labels.reshape(-1)), reduction="none")
    w = torch.ones_like(per) if mask is None else torch.from_numpy(mask.reshape(-1).astype(float))
    loss = (per * w).sum() / w.sum().clamp(min=1.0)
    loss.backward()
    return loss.item(), z.grad.numpy()


def _torch_mse(pred, target, mask):
    p = torch.from_numpy(pred.copy()).requires_grad_(True)
    t = torch.from_numpy(target)
    if mask is None:
        loss = torch.nn.functional.mse_loss(p, t)
    else:
        w = torch.from_numpy(mask.astype(float))[..., None]
        loss = (((p - t) ** 2) * w).sum() / (w.sum() * pred.shape[-1])
    loss.backward()
    return loss.item(), p.grad.numpy()


@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
@pytest.mark.parametrize(("lead", "classes"), SHAPES, ids=["per-sequence", "per-step"])
def test_cross_entropy_matches_torch(xp, device, put, rng, lead, classes, masked):
    """Tolerance 1e-12 relative: both sides evaluate the same float64 formula in a different order
    (log-sum-exp, one division), so agreement is a few ulps."""
    logits = rng.normal(size=(*lead, classes)) * 3
    labels = rng.integers(0, classes, size=lead)
    mask = rng.random(lead) < 0.6 if masked else None
    ref_loss, ref_grad = _torch_ce(logits, labels, mask)
    loss, grad = softmax_cross_entropy(
        put(logits, xp.float64), put(labels, xp.int64),
        mask=None if mask is None else put(mask))
    assert device_of(loss) == device and device_of(grad) == device
    np.testing.assert_allclose(float(to_numpy(loss)), ref_loss, rtol=1e-12)
    assert_close(grad, put(ref_grad, xp.float64), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
def test_mse_matches_torch(xp, device, put, rng, masked):
    pred, target = rng.normal(size=(4, 5, 3)), rng.normal(size=(4, 5, 3))
    mask = rng.random((4, 5)) < 0.5 if masked else None
    ref_loss, ref_grad = _torch_mse(pred, target, mask)
    loss, grad = mse(put(pred, xp.float64), put(target, xp.float64),
                     mask=None if mask is None else put(mask))
    assert device_of(grad) == device
    np.testing.assert_allclose(float(to_numpy(loss)), ref_loss, rtol=1e-12)
    assert_close(grad, put(ref_grad, xp.float64), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
def test_gradients_match_finite_differences(xp, put, rng, masked):
    """Central differences in float64: a correct gradient scores ~1e-9 or better."""
    logits = put(rng.normal(size=(3, 4, 5)), xp.float64)
    labels = put(rng.integers(0, 5, size=(3, 4)), xp.int64)
    target = put(rng.normal(size=(3, 4, 5)), xp.float64)
    mask = put(rng.random((3, 4)) < 0.5) if masked else None
    _, g_ce = softmax_cross_entropy(logits, labels, mask=mask)
    num = finite_difference_grads(lambda z: softmax_cross_entropy(z, labels, mask=mask)[0],
                                  {"z": logits})["z"]
    assert grad_check_error(g_ce, num) < 1e-7
    _, g_mse = mse(logits, target, mask=mask)
    num = finite_difference_grads(lambda p: mse(p, target, mask=mask)[0], {"p": logits})["p"]
    assert grad_check_error(g_mse, num) < 1e-7


def test_cross_entropy_is_stable_for_extreme_logits(xp, device, dtype, put):
    """Logits of +-1e4 overflow a naive exp; the shifted form gives the exact answer: loss is the
    margin (2e4) for the wrong class, 0 for the right one, gradient softmax - onehot exactly."""
    logits = put(np.array([[1e4, -1e4], [1e4, -1e4]]), dtype)
    labels = put(np.array([0, 1]), xp.int64)
    loss, grad = softmax_cross_entropy(logits, labels)
    assert loss.dtype == dtype and device_of(loss) == device
    np.testing.assert_allclose(float(to_numpy(loss)), 1e4, rtol=1e-6)  # (0 + 2e4) / 2
    np.testing.assert_array_equal(to_numpy(grad), np.array([[0.0, 0.0], [0.5, -0.5]]))


def test_softmax_and_log_softmax(xp, device, dtype, put, rng):
    zh = rng.normal(size=(4, 6)) * 10
    z = put(zh, dtype)
    p = softmax(z)
    assert device_of(p) == device and p.dtype == dtype
    assert_close(xp.sum(p, axis=-1), put(np.ones(4), dtype))  # 6 terms: a few roundings
    # log_softmax carries an absolute rounding error of eps * |z - max z| (a shift and a log),
    # which exp turns into that relative error.
    spread = float(np.max(np.abs(zh - zh.max(axis=1, keepdims=True))))
    assert_close(xp.exp(log_softmax(z)), p, rtol=default_rtol(dtype, xp) * spread)


def test_all_false_mask_gives_zero_not_nan(xp, put):
    logits = put(np.zeros((2, 3)), xp.float64)
    loss, grad = softmax_cross_entropy(logits, put(np.array([0, 1]), xp.int64),
                                       mask=put(np.array([False, False])))
    assert float(to_numpy(loss)) == 0.0
    assert not np.any(to_numpy(grad))


def test_bad_arguments_are_named(xp, put):
    logits = put(np.zeros((2, 3)), xp.float64)
    with pytest.raises(ValueError, match=r"labels must have shape logits.shape\[:-1\]"):
        softmax_cross_entropy(logits, put(np.array([0, 1, 2]), xp.int64))
    with pytest.raises(TypeError, match="labels must be integer"):
        softmax_cross_entropy(logits, put(np.array([0.0, 1.0]), xp.float64))
    with pytest.raises(ValueError, match="mask must be boolean"):
        softmax_cross_entropy(logits, put(np.array([0, 1]), xp.int64),
                              mask=put(np.array([True, False, True])))
    with pytest.raises(ValueError, match="target must have the shape of pred"):
        mse(logits, put(np.zeros((3, 2)), xp.float64))
