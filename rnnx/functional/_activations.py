"""The activations of the cells: the logistic sigmoid of the readable steps, and the tanh of
the tuned NumPy forms: the namespace's own, or an exp-based one where that is faster.

NumPy's float64 ``tanh`` is a scalar libm call on x86 CPUs without AVX-512, several times
slower than its ``exp``, so there :func:`exp_tanh` evaluates ``1 - 2 / (1 + exp(2a))`` in seven
whole-array calls and is about 2x faster (measured in docs/performance.md). With AVX-512
NumPy's own ``tanh`` is vectorised and ~2x faster than the formula, and in float32 it is faster
on both, so it is kept there. Which backend gets which is decided in ``rnnx._backend.prefers_exp_tanh``.

Accuracy: the result's absolute error is at most ~2 ulp of 1.0 (asserted against Python's
``math.tanh`` in tests/test_activations.py), the precision a recurrent state needs, since it
enters sums of O(1) terms next; its *relative* error grows for ``|a| << 1`` (``tanh(1e-8)``
carries ~1e-8 relative error), which is why the namespace's ``tanh`` stays the default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._backend import device, prefers_exp_tanh

# tanh(20) rounds to 1.0 in float32 and float64: clamping to +-20 keeps exp(2a) normal (no
# overflow or underflow, which NumPy reports under np.seterr) without changing any result.
_CLAMP = 20.0


def exp_tanh(a: Any, *, xp: Any) -> Any:
    """``tanh(a)`` as ``1 - 2 / (1 + exp(2a))``, pure Array API: a new array in ``a``'s
    namespace, on its device, of its dtype (``a`` is not written to). Exact at ``±inf``
    (``±1``), NaN in, NaN out."""
    # minimum/maximum rather than clip: array-api-compat's clip wrapper costs ten times as much
    # a call on NumPy (docs/performance.md, "Figures once in the code").
    u = xp.minimum(a, _CLAMP)
    u = xp.maximum(u, -_CLAMP)
    u *= 2.0
    e = xp.exp(u)
    e += 1.0
    h = -2.0 / e
    h += 1.0
    return h


def sigmoid(a: Any, *, xp: Any) -> Any:
    """The logistic function ``1 / (1 + exp(-a))``, evaluated as ``(1 + tanh(a/2)) / 2``: the
    same function, with no overflow of ``exp`` for large ``|a|`` (NumPy would warn). A new array
    in ``a``'s namespace, on its device."""
    return 0.5 + 0.5 * xp.tanh(0.5 * a)


def relu(a: Any, *, xp: Any) -> Any:
    """``max(a, 0)``, a new array in ``a``'s namespace, on its device. The zero is a 0-d array
    of ``a``'s dtype and device: a Python ``0.0`` in a namespace function becomes a host ->
    device copy behind array-api-compat's torch wrapper."""
    return xp.maximum(a, xp.zeros((), dtype=a.dtype, device=device(a)))


def tanh_for(xp: Any, dtype: Any) -> Callable[[Any], Any]:
    """The tanh to use for arrays of ``dtype`` in namespace ``xp``: ``xp.tanh`` or
    :func:`exp_tanh` (see the module docstring)."""
    if prefers_exp_tanh(xp, dtype):
        return lambda a: exp_tanh(a, xp=xp)
    return xp.tanh
