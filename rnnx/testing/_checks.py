"""Test helpers that work on every backend: tolerances from a rounding-error analysis of the
computation, per dtype, and a central-difference gradient checker.

Tolerance rule (:func:`rounding_rtol`). With unit roundoff ``u = eps / 2``, a sum of ``K``
products carries a rounding error of about ``sqrt(K) * u`` times the sum of the magnitudes of its
terms (the probabilistic bound of Higham and Mary, 2019: exceeded by ``lambda * sqrt(K) * u``
with probability below ``2 exp(-lambda**2 / 2)``). A recurrence of ``T`` steps adds one such
error per step to the carried state; with a contracting step (``|tanh'| <= 1``, the weights of
the test cases) they add like a random walk, ``sqrt(T)``. So a result of ``steps`` steps of sums
of ``terms`` terms is compared with ``rtol = SAFETY * gain * eps * sqrt(steps * terms)``,
relative to the largest magnitude of the reference array (rounding errors scale with a sum's
largest terms, not with an element that cancels to near zero). ``SAFETY = 4`` covers
``lambda = 4`` (a failure by chance below 1e-3 per element is not expected at these sizes, and
none has been seen) and the few-ulp errors of ``tanh``/``exp``; ``gain`` is a cell's own
amplification of rounding errors (:attr:`rnnx.functional.registry.Cell.rounding_gain`).

For a recurrent layer (:func:`recurrence_rtol`): each step sums ``K = features + hidden + 1``
products per state, and each weight gradient sums ``batch * time`` products whose factors carry
the states' error, so ``steps = time`` and ``terms = K + batch``. At the test cases' sizes this
is ~1e-5 in float32 and ~2e-14 in float64: measured deviations are 10-40x below it, and an error
of 2e-4 relative (a wrong constant, a float32-only code path that drops precision) is 10x above.
Results that must be bitwise equal (the same backend and seed through two code paths that do the
same operations) are compared exactly, not with a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .._backend import backend_name, device, host_namespace, namespace, to_numpy
from .._typing import Array, DType, Namespace

__all__ = [
    "SAFETY",
    "assert_close",
    "assert_equal",
    "default_rtol",
    "finite_difference_grads",
    "grad_check_error",
    "recurrence_rtol",
    "rounding_rtol",
]

#: Multiple of the probabilistic rounding bound that a tolerance allows (see the module notes).
SAFETY = 4.0


def rounding_rtol(dtype: DType, xp: Namespace, *, steps: int = 1, terms: int = 1,
                  gain: float = 1.0) -> float:
    """``SAFETY * gain * eps * sqrt(steps * terms)`` for a floating ``dtype`` of namespace
    ``xp``: the relative tolerance of ``steps`` dependent steps of ``terms``-term sums."""
    return SAFETY * gain * float(xp.finfo(dtype).eps) * math.sqrt(steps * terms)


def recurrence_rtol(dtype: DType, xp: Namespace, *, batch: int, time: int, features: int, hidden: int,
                    gain: float = 1.0) -> float:
    """Tolerance (relative to each array's largest magnitude) for the forward states and every
    gradient of a recurrent layer run on ``(batch, time, features)`` inputs with ``hidden``
    units: :func:`rounding_rtol` with ``steps = time`` and ``terms = features + hidden + 1 +
    batch``."""
    return rounding_rtol(dtype, xp, steps=time, terms=features + hidden + 1 + batch, gain=gain)


def default_rtol(dtype: DType, xp: Namespace) -> float:
    """:func:`rounding_rtol` of one step of one term, ``4 * eps``: a few roundings, for results
    of a handful of elementwise operations. Anything longer passes its own tolerance."""
    return rounding_rtol(dtype, xp)


def assert_equal(actual: Array, desired: Array, *, err_msg: str = "") -> None:
    """Assert bitwise-equal values (NaN equal to NaN) after the checks of :func:`assert_close`:
    for two code paths that must do the same operations on the same backend."""
    assert_close(actual, desired, rtol=0.0, err_msg=err_msg, _nan_equal=True)


def assert_close(
    actual: Array,
    desired: Array,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    check_device: bool = True,
    err_msg: str = "",
    _nan_equal: bool = False,
) -> None:
    """Assert ``|actual - desired| <= atol + rtol * |desired|`` element by element, after checking
    that both arrays share namespace, shape, dtype and (unless ``check_device=False``) device.

    ``rtol`` defaults to :func:`default_rtol` of the dtype. ``atol`` is 0 unless the caller has a
    reason (say so in a comment where you pass one).
    """
    xp = namespace(actual)
    xp_d = namespace(desired)
    where = f" ({err_msg})" if err_msg else ""
    if backend_name(xp) != backend_name(xp_d):
        raise AssertionError(
            f"namespaces differ{where}: actual is {backend_name(xp)}, desired is {backend_name(xp_d)}"
        )
    if tuple(actual.shape) != tuple(desired.shape):
        raise AssertionError(
            f"shapes differ{where}: actual {tuple(actual.shape)}, desired {tuple(desired.shape)}"
        )
    if actual.dtype != desired.dtype:
        raise AssertionError(f"dtypes differ{where}: actual {actual.dtype}, desired {desired.dtype}")
    if check_device and device(actual) != device(desired):
        raise AssertionError(
            f"devices differ{where}: actual {device(actual)}, desired {device(desired)}"
        )
    if rtol is None:
        rtol = default_rtol(actual.dtype, xp)
    a, d = to_numpy(actual), to_numpy(desired)
    err = abs(a - d)
    bound = atol + rtol * abs(d)
    bad = ~(err <= bound)  # NaN counts as a mismatch
    if _nan_equal:
        bad &= ~((a != a) & (d != d))
    if bad.any():
        idx = tuple(int(i) for i in (bad.nonzero()[k][0] for k in range(bad.ndim)))
        rel = err / abs(d).clip(min=1e-300)
        raise AssertionError(
            f"arrays not close{where}: {int(bad.sum())} of {bad.size} elements exceed "
            f"atol={atol:g} + rtol={rtol:g}*|desired|; first at index {idx}: actual {a[idx]!r}, "
            f"desired {d[idx]!r}; max abs err {float(err.max()):.3e}, max rel err "
            f"{float(rel.max()):.3e}"
        )


def finite_difference_grads(
    f: Callable[..., Any],
    args: Mapping[str, Any],
    wrt: list[str] | None = None,
    *,
    step: float = 1e-6,
) -> dict[str, Any]:
    """Central-difference gradients of a scalar function ``f(**args)``.

    Each element of each array named in ``wrt`` (default: all) is moved by ``±step`` with a
    one-hot array built in the argument's own namespace and device, so the checker runs on any
    backend, including immutable ones. Returns host (NumPy) arrays with the arguments' shapes.
    Cost: ``2 * size`` evaluations per argument: meant for small test cases.
    """
    wrt = list(args) if wrt is None else wrt
    out = {}
    for name in wrt:
        a = args[name]
        xp = namespace(a)
        n = math.prod(a.shape)
        flat_idx = xp.arange(n, device=device(a))
        g = []
        for i in range(n):
            e = xp.reshape(xp.astype(flat_idx == i, a.dtype), a.shape) * step
            plus = float(to_numpy(f(**{**args, name: a + e})))
            minus = float(to_numpy(f(**{**args, name: a - e})))
            g.append((plus - minus) / (2.0 * step))
        out[name] = _host_reshape(g, tuple(a.shape))
    return out


def _host_reshape(values: list[float], shape: tuple[int, ...]) -> Any:
    hnp = host_namespace()
    return hnp.reshape(hnp.asarray(values, dtype=hnp.float64), shape)


def grad_check_error(analytic: Array, numeric: Array) -> float:
    """Relative error ``||a - n|| / max(||a||, ||n||)`` (Euclidean norms, on the host).

    Norm-wise rather than element-wise so that gradient entries that are zero up to rounding do
    not dominate; an exact gradient scores about ``eps / step`` (~1e-10 in float64 with the
    default step), a wrong one scores order 1.
    """
    a = to_numpy(analytic).astype("float64")
    n = to_numpy(numeric).astype("float64")
    scale = max(float((a**2).sum()) ** 0.5, float((n**2).sum()) ** 0.5)
    if scale == 0.0:
        return 0.0
    return float(((a - n) ** 2).sum()) ** 0.5 / scale
