"""The GRU cell against outside truth: torch.nn.GRU with the same weights (float64, 1e-10),
central finite differences on every backend, float32 agreement, device placement."""

from __future__ import annotations

import pytest

from . import _cell_checks as checks

KIND = "gru"


@pytest.mark.parametrize("final", [True, False], ids=["with-final-grads", "outputs-only"])
@pytest.mark.parametrize("shape", checks.SHAPES, ids=checks.SHAPE_IDS)
@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "zeros"])
def test_matches_torch_autograd(xp, device, put, rng, shape, with_h0, final):
    checks.check_matches_torch(KIND, xp, device, put, rng, shape, with_h0, final)


@pytest.mark.parametrize("steps", [1, 3])
def test_backward_in_blocks_matches_torch(xp, device, put, rng, monkeypatch, steps):
    checks.check_blocked_backward(KIND, xp, device, put, rng, monkeypatch, steps)


def test_folded_shape_folds_the_bias():
    checks.check_folded_shape(KIND)


@pytest.mark.parametrize("shape", [(2, 4, 3, 5), (1, 3, 2, 4)], ids=["general", "small"])
def test_finite_differences(xp, put, rng, shape):
    checks.check_finite_differences(KIND, xp, put, rng, shape)


def test_last_step_gradient_equals_zero_padded(put, dtype, rng):
    checks.check_last_step_gradient(KIND, put, dtype, rng)


def test_float32_agrees_with_numpy_float64(xp, device, put, rng):
    checks.check_float32(KIND, xp, device, put, rng)


def test_every_result_on_input_device(xp, device, dtype, put, rng):
    checks.check_device(KIND, xp, device, dtype, put, rng)


def test_inputs_are_not_written(rng):
    checks.check_inputs_not_written(KIND, rng)


def test_bad_inputs_name_the_argument(rng):
    checks.check_bad_inputs(KIND, rng)


def test_cache_is_minimal(rng):
    checks.check_cache_is_minimal(KIND, rng)
