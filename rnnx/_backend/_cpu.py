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
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._typing import DType, Namespace
from ._namespaces import backend_name

__all__ = ["ThreadLimit", "float_errors_checked_by_caller", "limit_threads", "prefers_exp_tanh"]


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
def prefers_exp_tanh(xp: Namespace, dtype: DType) -> bool:
    """Whether the cells should evaluate tanh as ``1 - 2/(1 + exp(2a))``
    (:func:`rnnx.functional._activations.exp_tanh`) rather than ``xp.tanh``.

    True only for NumPy (and array-api-strict, which computes with NumPy) in float64 on an x86
    CPU without AVX-512, where NumPy's ``tanh`` is a scalar loop and the exp-based form is the
    faster; with AVX-512 NumPy's own is the faster (measured: docs/performance.md, the tanh
    note). torch, CuPy and JAX have vectorised tanh kernels of their own. Cached per
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


@dataclass(frozen=True)
class ThreadLimit:
    """What :func:`limit_threads` did: the cap asked for (``None``: none), the thread pools it
    capped (``(internal_api, user_api, num_threads)`` as threadpoolctl names them, e.g.
    ``("openblas", "blas", 1)``), torch's threads if it set them, and, when the BLAS could not be
    capped, why not. True (``applied``) when a cap was asked for and every BLAS pool of the
    process is at or below it."""

    requested: int | None
    pools: tuple[tuple[str, str, int], ...] = ()
    torch_threads: int | None = None
    reason: str = ""

    @property
    def applied(self) -> bool:
        return self.requested is not None and not self.reason

    def __bool__(self) -> bool:
        return self.applied

    def describe(self) -> str:
        """One line: ``BLAS capped at 1 thread (openblas via threadpoolctl)``, or why not."""
        torch = "" if self.torch_threads is None else f"; torch at {_threads(self.torch_threads)}"
        blas = [p for p in self.pools if p[1] == "blas"]
        other = [p for p in self.pools if p[1] != "blas"]
        names = ", ".join(sorted({p[0] for p in blas}))
        extra = "".join(f"; {p[0] if p[0] == p[1] else f'{p[0]} ({p[1]})'} at {_threads(p[2])}"
                        for p in other)
        if self.requested is None:
            now = ", ".join(f"{p[0]} at {_threads(p[2])}" for p in blas) or self.reason
            return f"not capped (library defaults: {now or 'BLAS pools unknown'}){torch}"
        if self.reason:
            return f"BLAS NOT capped: {self.reason}{torch}"
        return f"BLAS capped at {_threads(self.requested)} ({names} via threadpoolctl){extra}{torch}"


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def _pools(controller: Any) -> tuple[tuple[str, str, int], ...]:
    return tuple((p["internal_api"], p["user_api"], int(p["num_threads"]))
                 for p in controller.info())


@contextlib.contextmanager
def limit_threads(n: int | None) -> Iterator[ThreadLimit]:
    """Run the block with at most ``n`` CPU threads in the BLAS and OpenMP pools loaded in this
    process (through ``threadpoolctl``, a dependency of rnnx) and in torch (if already
    imported); ``None`` changes nothing.

    Recurrent training multiplies small matrices step by step; extra BLAS threads do not speed
    those up, and on a busy machine their spin-waiting slows them down several times. Yields a
    :class:`ThreadLimit` saying what was capped (true when the BLAS cap holds; with ``None`` it
    reports the libraries' own thread counts and is false). Previous settings are restored on
    exit.
    """
    with contextlib.ExitStack() as stack:
        pools: tuple[tuple[str, str, int], ...] = ()
        reason = ""
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # an install that skipped rnnx's dependencies
            reason = "threadpoolctl is not installed (a dependency of rnnx: pip install threadpoolctl)"
        else:
            controller = ThreadpoolController()  # the pools loaded now: import numpy first
            if n is not None:
                stack.enter_context(controller.limit(limits=n))
            pools = _pools(controller)
            blas = [p for p in pools if p[1] == "blas"]
            if not blas:
                reason = "threadpoolctl found no BLAS library loaded in this process"
            elif n is not None and any(p[2] > n for p in blas):
                reason = "the BLAS kept " + ", ".join(
                    f"{p[0]} at {_threads(p[2])}" for p in blas if p[2] > n)
        torch = sys.modules.get("torch")
        torch_threads = None
        if torch is not None and n is not None:
            before = torch.get_num_threads()
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, before)
            torch_threads = torch.get_num_threads()
        yield ThreadLimit(n, pools, torch_threads, reason)
