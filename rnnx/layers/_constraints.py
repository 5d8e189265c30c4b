"""The layers' parameters, checked from a declarative table
(:data:`LAYER_CONSTRAINTS`; the mechanism is :mod:`rnnx._constraints`). The estimators' table
takes these rules for the parameters it shares with the layers, so each is written once."""

from __future__ import annotations

from typing import Any

from .._constraints import Interval, StrOptions
from ..init import INITIALIZERS

__all__ = ["LAYER_CONSTRAINTS"]

_POSITIVE_INT = [Interval(int, 1, None)]
_INITIALIZER = [StrOptions(INITIALIZERS)]

# In the order of the checks.
LAYER_CONSTRAINTS: dict[str, list[Any]] = {
    "input_size": _POSITIVE_INT,
    "hidden_size": _POSITIVE_INT,
    "output_size": _POSITIVE_INT,  # a dense layer's
    "num_layers": _POSITIVE_INT,
    "init": _INITIALIZER,
    "recurrent_init": _INITIALIZER,
    "dropout": [Interval(float, 0, 1, closed="left", what="a probability",
                         note="the share of a layer's outputs zeroed between stacked layers "
                              "while training")],
}
