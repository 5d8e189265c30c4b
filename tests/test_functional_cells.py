"""Every registered cell against outside truth: torch autograd with the same weights (torch.nn
where torch has the cell, a torch-ops implementation of its equations where it has not;
float64, 1e-10), central finite differences on every backend, float32 agreement, device
placement, bad inputs. Parametrized over the registry: a new cell is covered with no new code
here."""

from __future__ import annotations

import pytest

from . import _cell_checks as checks
from ._cells import KINDS

pytestmark = pytest.mark.parametrize("kind", KINDS, ids=KINDS)


@pytest.mark.parametrize("final", [True, False], ids=["with-final-grads", "outputs-only"])
@pytest.mark.parametrize("shape", checks.SHAPES, ids=checks.SHAPE_IDS)
@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "zeros"])
def test_matches_torch_autograd(kind, xp, device, put, rng, shape, with_h0, final):
    checks.check_matches_torch(kind, xp, device, put, rng, shape, with_h0, final)


@pytest.mark.parametrize("steps", [1, 3])
def test_backward_in_blocks_matches_torch(kind, xp, device, put, rng, monkeypatch, steps):
    checks.check_blocked_backward(kind, xp, device, put, rng, monkeypatch, steps)


def test_folded_shape_folds_the_bias(kind):
    checks.check_folded_shape(kind)


@pytest.mark.parametrize("shape", [(2, 4, 3, 5), (1, 3, 2, 4)], ids=["general", "small"])
def test_finite_differences(kind, xp, put, rng, shape):
    checks.check_finite_differences(kind, xp, put, rng, shape)


def test_last_step_gradient_equals_zero_padded(kind, put, dtype, rng):
    checks.check_last_step_gradient(kind, put, dtype, rng)


def test_float32_agrees_with_numpy_float64(kind, xp, device, put, rng):
    checks.check_float32(kind, xp, device, put, rng)


def test_every_result_on_input_device(kind, xp, device, dtype, put, rng):
    checks.check_device(kind, xp, device, dtype, put, rng)


def test_inputs_are_not_written(kind, rng):
    checks.check_inputs_not_written(kind, rng)


def test_bad_inputs_name_the_argument(kind, rng):
    checks.check_bad_inputs(kind, rng)


def test_cache_is_minimal(kind, rng):
    checks.check_cache_is_minimal(kind, rng)


def test_omitted_state_is_the_zero_state_bit_for_bit(kind, rng):
    checks.check_zero_state_step(kind, rng)


def test_tuned_form_check_catches_a_2e_4_error_in_the_step(kind, rng, monkeypatch):
    """The check that NumPy's tuned form, or a cell's parallel form, equals the readable step
    (run by every case of ``tests/_cells.run``) fails when the readable step's new state is
    off by 2e-4."""
    import dataclasses
    import importlib

    from rnnx.functional.registry import CELLS

    from . import _cells

    spec = CELLS[kind]
    step = spec.step
    last = step.forward[-1]

    def mutant(*args, **kwargs):
        new, saved = last(*args, **kwargs)
        return tuple(a * (1.0 + 2e-4) for a in new), saved

    case = _cells.make_case(kind, rng, 2, 4, 3, 5)
    _cells.run(kind, case)  # the cell passes
    mutated = dataclasses.replace(step, forward=(*step.forward[:-1], mutant))
    if spec.forward.__module__ == "rnnx.functional._loop":  # functions made from the step
        monkeypatch.setitem(CELLS, kind, dataclasses.replace(spec, step=mutated, forward=None,
                                                             backward=None))
    else:  # the cell's own functions, which run its module's STEP
        monkeypatch.setattr(importlib.import_module(spec.forward.__module__), "STEP", mutated)
    with pytest.raises(AssertionError, match="fast form against its step"):
        _cells.run(kind, case)
