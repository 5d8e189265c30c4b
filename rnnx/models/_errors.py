"""The estimators' exceptions and warning.

They are defined here so that the training loop (:mod:`rnnx.models._training`) and the
estimators can both raise them; their public home, and the module they report (tracebacks,
pickles), is :mod:`rnnx.models.estimators`.
"""

from __future__ import annotations

import functools

__all__ = ["ClusterLostError", "DataConversionWarning", "NotFittedError",
           "TrainingDivergedError", "not_fitted_error_class"]

# The module the classes report: the one users import them from.
PUBLIC_MODULE = "rnnx.models.estimators"


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted model is called before ``fit`` (the same bases
    as scikit-learn's, so ``except ValueError`` and ``except AttributeError`` both catch it)."""

    __module__ = PUBLIC_MODULE


@functools.cache
def not_fitted_error_class(sk_error: type | None) -> type:
    # When scikit-learn is already loaded, raise an exception that is also its NotFittedError so
    # `except sklearn.exceptions.NotFittedError` works; scikit-learn is never imported for this.
    if sk_error is None:
        return NotFittedError
    return type("NotFittedError", (NotFittedError, sk_error), {"__module__": PUBLIC_MODULE})


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite loss or non-finite weights.

    Raised by ``fit``/``partial_fit`` after the model has been put back to the weights,
    optimizer state and history of the last epoch that ended finite. ``epoch`` is the epoch
    (counting from 1) in which training diverged and ``loss`` its mean mini-batch loss.
    """

    __module__ = PUBLIC_MODULE

    def __init__(self, message: str, *, epoch: int, loss: float) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.loss = loss


class ClusterLostError(RuntimeError):
    """A data-parallel ``fit``/``partial_fit`` on dask arrays lost its dask client or scheduler
    (or its workers for good). Raised after the model has been put back to the weights,
    optimizer state and history of the last completed epoch (its initial weights if none
    completed); the original error is the ``__cause__``."""

    __module__ = PUBLIC_MODULE


class DataConversionWarning(UserWarning):
    """A column-vector ``y`` was flattened (named like scikit-learn's warning of the same case)."""

    __module__ = PUBLIC_MODULE
