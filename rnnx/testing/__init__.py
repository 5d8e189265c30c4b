"""Testing tools that work on every backend: closeness with tolerances from a rounding-error analysis, a
central-difference gradient checker (:mod:`rnnx.testing._checks`), and seeded cases for every
registered cell with the cross-backend agreement and seed tables that ``rnnx check`` prints
(:mod:`rnnx.testing.agreement`)."""

from ._checks import (
    SAFETY,
    assert_close,
    assert_equal,
    default_rtol,
    finite_difference_grads,
    grad_check_error,
    recurrence_rtol,
    rounding_rtol,
)
from .agreement import (
    agreement_rows,
    cell_variants,
    differentiable,
    float64_skips,
    loss_fn,
    make_case,
    run_case,
    seed_rows,
    seed_tolerance,
)

__all__ = [
    "SAFETY",
    "agreement_rows",
    "assert_close",
    "assert_equal",
    "cell_variants",
    "default_rtol",
    "differentiable",
    "finite_difference_grads",
    "float64_skips",
    "grad_check_error",
    "loss_fn",
    "make_case",
    "recurrence_rtol",
    "rounding_rtol",
    "run_case",
    "seed_rows",
    "seed_tolerance",
]
