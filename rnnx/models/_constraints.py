"""The estimators' hyper-parameters, checked from a declarative table
(:data:`PARAMETER_CONSTRAINTS`; the mechanism is :mod:`rnnx._constraints`). The table is the one
place an estimator hyper-parameter's rule is written, or, for a parameter of the recurrent layer
(``hidden_size``, ``num_layers``, ``dropout``, ``init``, ``recurrent_init``), the place it takes
the layer's rule from: the estimators check it at fit time, before any work, and ``rnnx train``
parses its options with it (:func:`accepts`, :func:`expected`, :func:`value_type`).

The checks that depend on the chosen cell (which options that cell takes) are in
:func:`check_cell_options` alone.
"""

from __future__ import annotations

from typing import Any

from .._constraints import Interval, Options, StrOptions, validate
from .._constraints import accepts as _accepts
from .._constraints import expected as _expected
from .._constraints import value_type as _value_type
from ..functional.registry import CELLS, get_cell
from ..layers._constraints import LAYER_CONSTRAINTS
from ..optim import OPTIMIZERS

__all__ = ["PARAMETER_CONSTRAINTS", "Interval", "Options", "StrOptions", "accepts",
           "check_cell_options", "expected", "validate", "value_type"]

_LAYER = LAYER_CONSTRAINTS

# Each parameter: the values it accepts (any one entry). The order is the order of the checks.
PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    "hidden_size": _LAYER["hidden_size"],
    "epochs": [Interval(int, 1, None)],
    "batch_size": [Interval(int, 1, None)],
    "n_iter_no_change": [Interval(int, 1, None)],
    "learning_rate": [Interval(float, 0, None, closed="neither")],
    "tol": [Interval(float, 0, None, closed="left")],
    "optimizer": [StrOptions(OPTIMIZERS)],
    # 0 and None both turn clipping off, as --clip 0 does (one meaning for one value).
    "clip_norm": [Interval(float, 0, None, closed="left", note="0: off"), None],
    "validation_fraction": [Interval(float, 0, 1, closed="neither"), None],
    "dtype": [Options(("float32", "float64", None))],
    "num_layers": _LAYER["num_layers"],
    "bidirectional": [Options((True, False))],
    "dropout": _LAYER["dropout"],
    "forget_bias": [Interval(float, None, None)],
    "cell": [StrOptions(CELLS)],  # the registry itself: a cell registered later is accepted
    "init": _LAYER["init"],
    "recurrent_init": _LAYER["recurrent_init"],
}


def accepts(name: str, value: object) -> bool:
    """Whether estimator hyper-parameter ``name`` accepts ``value``."""
    return _accepts(PARAMETER_CONSTRAINTS, name, value)


def expected(name: str, *, none: str | None = "None") -> str:
    """What estimator hyper-parameter ``name`` accepts, in words (``"a positive int"``)."""
    return _expected(PARAMETER_CONSTRAINTS, name, none=none)


def value_type(name: str) -> type:
    """The type a command line parses estimator hyper-parameter ``name``'s text into."""
    return _value_type(PARAMETER_CONSTRAINTS, name)


def check_cell_options(cell: str, options: dict[str, Any]) -> None:
    """The checks that depend on the chosen cell, read off its registry record
    (:mod:`rnnx.functional.registry`): ``forget_bias`` (0 means unset) needs a cell with a
    forget gate, and ``nonlinearity`` must be one the cell takes (``"tanh"``, implied, for a
    cell without that option). Run after :func:`validate`, so ``cell`` is a registered cell and
    the options' types are already checked."""
    spec = get_cell(cell)
    spec.check_forget_bias(options.get("forget_bias", 0))
    if "nonlinearity" in options:
        spec.layer_options(options["nonlinearity"])
