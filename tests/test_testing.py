"""The test helpers themselves must be able to fail."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx.testing import assert_close, assert_equal, default_rtol, finite_difference_grads, grad_check_error


def test_default_rtol_values(xp):
    """A few roundings: 4 eps of the dtype."""
    assert default_rtol(xp.float64, xp) == 4 * float(np.finfo(np.float64).eps)
    assert default_rtol(xp.float32, xp) == 4 * float(np.finfo(np.float32).eps)


def test_assert_equal_is_bitwise(xp, put):
    a = put([1.0, float("nan"), 3.0], xp.float64)
    assert_equal(a, put([1.0, float("nan"), 3.0], xp.float64))
    with pytest.raises(AssertionError, match="1 of 3 elements"):
        assert_equal(a, put([1.0, float("nan"), 3.0 + 4e-16], xp.float64))


def test_assert_close_accepts_within_and_refuses_beyond(xp, device, dtype, put):
    a = put([1.0, 2.0, 3.0], dtype)
    rtol = default_rtol(dtype, xp)
    assert_close(a * (1 + rtol / 2), a)
    with pytest.raises(AssertionError, match="1 of 3 elements"):
        assert_close(a + put([0.0, 0.0, 1e-2], dtype), a)


def test_assert_close_checks_dtype_shape_and_nan(put, xp):
    a = put([1.0, 2.0], xp.float64)
    with pytest.raises(AssertionError, match="dtypes differ"):
        assert_close(a, put([1.0, 2.0], xp.float32))
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_close(a, put([[1.0, 2.0]], xp.float64))
    with pytest.raises(AssertionError, match="not close"):
        assert_close(put([1.0, float("nan")], xp.float64), a)


def test_assert_close_checks_namespace_and_device():
    torch = pytest.importorskip("torch")
    with pytest.raises(AssertionError, match="namespaces differ"):
        assert_close(torch.ones(2, dtype=torch.float64), np.ones(2))
    strict = pytest.importorskip("array_api_strict")
    a = strict.ones(2, device=strict.Device("device1"))
    with pytest.raises(AssertionError, match="devices differ"):
        assert_close(a, strict.ones(2))


def test_gradient_checker_detects_a_wrong_gradient(xp, put):
    """d/dw sum(w^3) = 3 w^2: the true gradient scores ~1e-10, a 1 % error scores ~1e-2."""
    w = put([0.5, -1.0, 2.0], xp.float64)
    numeric = finite_difference_grads(lambda w: xp.sum(w * w * w), {"w": w})["w"]
    exact = 3 * np.array([0.5, -1.0, 2.0]) ** 2
    assert grad_check_error(exact, numeric) < 1e-9
    assert grad_check_error(exact * 1.01, numeric) > 1e-3
