"""Test helpers that work on every backend: dtype-derived tolerances and a central-difference
gradient checker.

Tolerance rule (:func:`default_rtol`): ``rtol = 4 * sqrt(eps)`` of the dtype, i.e. about
``6e-8`` for float64 and ``1.4e-3`` for float32. A recurrence of ``T`` steps loses a few ulps per
step, and ``sqrt(eps)`` leaves room for that growth while still catching any mistake in the maths
(a wrong sign, index or transposition changes results at order 1). Comparisons with an external
oracle that performs the same float64 operations (PyTorch) use a much tighter explicit ``rtol``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .._backend import backend_name, device, host_namespace, namespace, to_numpy

__all__ = ["assert_close", "default_rtol", "finite_difference_grads", "grad_check_error"]


def default_rtol(dtype: Any, xp: Any) -> float:
    """``4 * sqrt(eps)`` of a floating ``dtype`` in namespace ``xp``."""
    return 4.0 * math.sqrt(float(xp.finfo(dtype).eps))


def assert_close(
    actual: Any,
    desired: Any,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    check_device: bool = True,
    err_msg: str = "",
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


def grad_check_error(analytic: Any, numeric: Any) -> float:
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
