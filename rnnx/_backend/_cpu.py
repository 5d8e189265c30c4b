"""CPU tuning for the NumPy-based backends: whether tanh should be evaluated through ``exp`` on
this CPU (read from NumPy's CPU-feature table), a limit on BLAS/OpenMP and torch threads for
the duration of a block, and silencing NumPy's floating-point warnings where the caller checks
its results itself.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._namespaces import backend_name

__all__ = ["float_errors_checked_by_caller", "limit_threads", "prefers_exp_tanh"]


@functools.cache
def _numpy_tanh_f64_is_scalar() -> bool:
    """Whether NumPy's float64 ``tanh`` runs as a scalar libm loop here: on x86 CPUs without
    AVX-512 (NumPy vectorises it only for its ``AVX512_SKX`` dispatch target), read from
    NumPy's runtime CPU-feature table. Elsewhere (ARM, unknown) the answer is no, which keeps
    ``xp.tanh``."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return False
    return bool(features.get("AVX2")) and not features.get("AVX512_SKX")


@functools.cache
def prefers_exp_tanh(xp: Any, dtype: Any) -> bool:
    """Whether the cells should evaluate tanh as ``1 - 2/(1 + exp(2a))``
    (:func:`rnnx.functional._activations.exp_tanh`) rather than ``xp.tanh``.

    True only for NumPy (and array-api-strict, which computes with NumPy) in float64 on an x86
    CPU without AVX-512, where NumPy's ``tanh`` is a scalar loop (~14 ns an element) and the
    exp-based form measured ~2x faster at (128, 256); with AVX-512 NumPy's own is ~2x faster
    than the formula. torch, CuPy and JAX have vectorised tanh kernels of their own. Cached per
    (namespace, dtype): the cells ask once per call.
    """
    return (backend_name(xp) in ("numpy", "array_api_strict") and dtype == xp.float64
            and _numpy_tanh_f64_is_scalar())


@contextlib.contextmanager
def float_errors_checked_by_caller() -> Iterator[None]:
    """Silence NumPy's overflow/invalid/divide warnings (and ``np.seterr(all="raise")``) in the
    block, for NumPy and array-api-strict (which computes with NumPy). Only for code that checks
    its results itself: training looks at every epoch's loss and weights and raises
    ``TrainingDivergedError``, which a warning raised mid-batch (``-W error``) would pre-empt
    before the model is restored. Other backends do not warn; nothing to do there."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        yield


@contextlib.contextmanager
def limit_threads(n: int | None) -> Iterator[bool]:
    """Run the block with at most ``n`` CPU threads in BLAS/OpenMP (through ``threadpoolctl``,
    when it is installed) and in torch (if already imported); ``None`` changes nothing.

    Recurrent training multiplies small matrices step by step; extra BLAS threads do not speed
    those up, and on a busy machine their spin-waiting slows them down several times. Yields
    whether the BLAS limit could be applied. Previous settings are restored on exit.
    """
    if n is None:
        yield True
        return
    with contextlib.ExitStack() as stack:
        applied = False
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=n))
            applied = True
        except ImportError:
            pass
        torch = sys.modules.get("torch")
        if torch is not None:
            before = torch.get_num_threads()
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, before)
        yield applied
