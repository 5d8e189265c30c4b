"""Testing tools that work on every backend: closeness with tolerances from a rounding-error
analysis, a central-difference gradient checker (:mod:`rnnx.testing._checks`), and seeded cases for every
registered cell with the cross-backend agreement and seed tables that ``rnnx check`` prints
(:mod:`rnnx.testing.agreement`), and a counter of array-API calls, per time step for every cell
(:mod:`rnnx.testing.counting`)."""

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
from .counting import (
    CallCounts,
    StepCalls,
    calls_per_step,
    cell_calls_rows,
    count_calls,
    scanned_ops_per_step,
)

__all__ = [
    "SAFETY",
    "CallCounts",
    "StepCalls",
    "agreement_rows",
    "assert_close",
    "assert_equal",
    "calls_per_step",
    "cell_calls_rows",
    "cell_variants",
    "count_calls",
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
    "scanned_ops_per_step",
    "seed_rows",
    "seed_tolerance",
]
