"""The estimators' entry points run with the model's device current: :func:`on_model_device`.

CuPy allocates new arrays on its current device whatever ``device=`` says, and refuses to
compute on another; an estimator on a second GPU (``device=1``, or fitted on data there) must
therefore make that device current for the whole call, validation and optimizer state included,
not only inside the maths. :func:`rnnx._backend.device_scope` does that, and is a no-op for every
other library.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from .._backend import backend_name, device, device_scope, namespace

__all__ = ["on_model_device"]

F = TypeVar("F", bound=Callable[..., Any])


def _target(est: Any, X: Any, refit: bool) -> tuple[Any, str | None]:
    """``(device, backend)`` the call will run on: a fitted model's own (unless it is being
    refitted), else the one :meth:`BaseRNN._place_fit_X` will choose from ``device``/``backend``
    and ``X`` (``None``: the backend's default device, which is current already)."""
    if not refit and hasattr(est, "network_"):
        return getattr(est, "_device", None), getattr(est, "_backend_name", None)
    src = None
    if hasattr(X, "shape") and hasattr(X, "dtype"):
        try:
            src = backend_name(namespace(X))
        except TypeError:  # not an array rnnx knows: the entry point refuses it, with its message
            src = None
    backend = est.backend or src
    if est.device is not None:
        return est.device, backend
    if src is not None and backend == src:
        return device(X), backend
    return None, backend


def on_model_device(method: F) -> F:
    """Decorator for ``fit``/``partial_fit``/``predict``/``predict_proba``/``score``: run the
    call under :func:`rnnx._backend.device_scope` of the model's device."""
    refit = method.__name__ == "fit"

    @functools.wraps(method)
    def run(self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
        dev, backend = _target(self, X, refit)
        with device_scope(dev, backend=backend):
            return method(self, X, *args, **kwargs)

    return run  # type: ignore[return-value]
