"""What the minimal RNNs (:mod:`rnnx.functional.min_gru`, :mod:`rnnx.functional.min_lstm`)
share: their argument checks, the input projection and its gradients, the candidate
activation ``g`` and the incoming gradients of a backward call.

These cells have no recurrent weights: every gate reads ``x_t`` only, through one fused
``w_x (features, G*hidden)`` and ``b (G*hidden,)``.
"""

from __future__ import annotations

import math
from typing import Any

from .._backend import device
from ._mask import mask_outputs
from ._validate import check_float, check_sequence, check_shape, dtype_name, resolve


def check_min_inputs(x: Any, w_x: Any, b: Any, h0: Any, gates: int) -> Any:
    """One namespace, device and float dtype; ``x (B, T, F)``, ``w_x (F, gates*H)``,
    ``b (gates*H,)``, ``h0 (B, H)``. Returns the namespace."""
    xp = resolve({"x": x, "w_x": w_x, "b": b, "h0": h0})
    batch, _, features = check_sequence("x", x, xp=xp)
    labels = f"(features, {gates}*hidden)"
    if getattr(w_x, "ndim", None) != 2 or w_x.shape[1] % gates or w_x.shape[1] == 0:
        raise ValueError(f"w_x must have shape {labels} with features = {features}; got shape "
                         f"{tuple(getattr(w_x, 'shape', ()))}")
    hidden = w_x.shape[1] // gates
    check_shape("w_x", w_x, (features, gates * hidden), labels)
    check_shape("b", b, (gates * hidden,), f"({gates}*hidden,)")
    check_float("w_x", w_x, xp=xp, like=("x", x))
    check_float("b", b, xp=xp, like=("x", x))
    if h0 is not None:
        check_shape("h0", h0, (batch, hidden), "(batch, hidden)")
        check_float("h0", h0, xp=xp, like=("x", x))
    return xp


def project(xp: Any, x: Any, w_x: Any, b: Any, gates: int) -> list[Any]:
    """``u = x w_x + b`` for every step, one ``(batch, time, hidden)`` array per gate block:
    one GEMM per block over all ``batch*time`` rows, so that each gate's elementwise passes
    run on contiguous memory (on NumPy 15-20 % faster than on a strided view of one fused
    result, and the GEMMs are no slower). New arrays the caller owns, in ``x``'s namespace
    and on its device."""
    batch, time, features = x.shape
    hidden = w_x.shape[1] // gates
    x2 = xp.reshape(x, (batch * time, features))  # (B*T, F)
    out = []
    for k in range(gates):
        u = x2 @ w_x[:, k * hidden : (k + 1) * hidden]  # (B*T, H)
        u += b[k * hidden : (k + 1) * hidden]  # own array (an immutable JAX array rebinds)
        out.append(xp.reshape(u, (batch, time, hidden)))  # (B, T, H)
    return out


def project_grads(xp: Any, x: Any, w_x: Any, dus: list[Any]) -> tuple[Any, Any, Any]:
    """``(dx, dw_x, db)`` from the gradients of the gate blocks ``dus``, each ``(batch, time,
    hidden)``: ``dx = sum_k du_k w_k^T``, ``dw_x = [X^T du_k]`` and ``db = [sum du_k]`` in
    ``w_x``'s column order, one GEMM per block and product over all ``batch*time`` rows."""
    batch, time, features = x.shape
    hidden = dus[0].shape[2]
    x2 = xp.reshape(x, (batch * time, features))  # (B*T, F)
    rows = [xp.reshape(du, (batch * time, hidden)) for du in dus]  # (B*T, H) each
    dw_x = xp.concat([x2.T @ du for du in rows], axis=1)  # (F, GH)
    db = xp.concat([xp.sum(du, axis=0) for du in rows])  # (GH,)
    dx = rows[0] @ w_x[:, :hidden].T  # (B*T, F)
    for k in range(1, len(rows)):
        dx += rows[k] @ w_x[:, k * hidden : (k + 1) * hidden].T
    return xp.reshape(dx, (batch, time, features)), dw_x, db


def _exp_floor(dtype: Any, xp: Any) -> float:
    """``-c`` with ``exp(c)`` finite and ``1 / (1 + exp(c))`` a normal number in ``dtype``:
    ``log(max) - 8`` (80.7 in float32, 701.8 in float64)."""
    return 8.0 - math.log(float(xp.finfo(dtype).max))


def sigmoid_pair(a: Any, *, xp: Any) -> tuple[Any, Any]:
    """``(sigmoid(a), sigmoid(-a)) = (1 / (1 + e), e / (1 + e))`` with ``e = exp(-a)``, each
    to a few ulp *relative* error. ``a`` is floored at ``-c`` (:func:`_exp_floor`) so that
    ``e`` stays finite: below it ``sigmoid(a)`` is ``sigmoid(-c)`` (1e-35 in float32, 1e-305
    in float64) instead of less, ``sigmoid(-a)`` still rounds to 1.

    Relative accuracy matters here: a gate near 0 multiplies every gradient through it (minGRU
    ``du_z = ... z (1 - z)``), and ``(1 + tanh(a/2)) / 2``, the other cells' form, has an
    absolute error of ``eps / 2``: at ``z = 3.4e-4`` (``a = -8``) that is a relative error of
    1e-4 in float32, which the float32 gradients of a long-memory minGRU showed
    (tests/test_functional_min_rnn.py). Written without ``where``, which NumPy runs about
    five times slower than an arithmetic pass (docs/min-rnn.md). New arrays."""
    e = xp.maximum(a, xp.full((), _exp_floor(a.dtype, xp), dtype=a.dtype, device=device(a)))
    e = xp.exp(-e)  # (..): in [0, exp(c)]
    s = 1.0 + e
    s = 1.0 / s  # sigmoid(a)
    e *= s  # sigmoid(-a) = e / (1 + e): own array, in place (JAX rebinds)
    return s, e


def sigmoid(a: Any, *, xp: Any) -> Any:
    """``1 / (1 + exp(-a))`` to a few ulp relative error (:func:`sigmoid_pair`). A new
    array."""
    e = xp.maximum(a, xp.full((), _exp_floor(a.dtype, xp), dtype=a.dtype, device=device(a)))
    e = xp.exp(-e)
    e += 1.0
    return 1.0 / e


def softplus(a: Any, *, xp: Any) -> Any:
    """``log(1 + exp(a)) = max(a, 0) + log(1 + exp(-|a|))``: no overflow, an absolute error of
    a few ulp of ``max(a, 0) + 1`` (what the normalised gates' difference of two softplus needs).
    NumPy's ``logaddexp(a, 0)`` computes the same about six times slower. A new array."""
    zero = xp.zeros((), dtype=a.dtype, device=device(a))
    e = xp.exp(-xp.abs(a))
    e += 1.0
    out = xp.log(e)
    out += xp.maximum(a, zero)
    return out


def g_act(a: Any, *, xp: Any) -> Any:
    """The candidate activation of Feng et al. (2024), ``g(a) = a + 1/2`` for ``a >= 0`` and
    ``sigmoid(a)`` below: continuous, positive, ``g(0) = 1/2``. Evaluated as
    ``max(a, 0) + sigmoid(min(a, 0))`` (``sigmoid(0) = 1/2`` exactly), the sigmoid as
    ``e / (1 + e)`` with ``e = exp(min(a, 0)) <= 1``: a few ulp relative error, no ``where``.
    A new array."""
    zero = xp.zeros((), dtype=a.dtype, device=device(a))
    e = xp.exp(xp.minimum(a, zero))  # (..): in [0, 1]
    g = e / (1.0 + e)  # sigmoid(min(a, 0))
    g += xp.maximum(a, zero)
    return g


def g_grad(a: Any, g: Any, *, xp: Any) -> Any:
    """``g'(a)``: 1 for ``a >= 0``, ``sigmoid'(a) = g (1 - g)`` below, from the
    pre-activation ``a`` and ``g = g_act(a)``, as ``s (1 - s) + 3/4 [a >= 0]`` with ``s =
    min(g, 1/2)``: exactly ``1/4 + 3/4`` above the kink (``g >= 1/2`` there), and no product
    of a large ``g`` that could overflow. A new array."""
    s = xp.minimum(g, xp.full((), 0.5, dtype=g.dtype, device=device(g)))
    out = 1.0 - s
    out *= s
    out += 0.75 * xp.astype(a >= 0.0, g.dtype)
    return out


def incoming(xp: Any, hs: Any, dhs: Any, dh_n: Any, mask: Any) -> tuple[Any, Any]:
    """Validate a backward call's gradients and split them into the per-step part ``(batch,
    time, hidden)`` (zero at padded steps: a padded output is a constant) and the final-state
    part ``(batch, hidden)`` (a 2-D ``dhs`` plus ``dh_n``; ``None`` if neither is given)."""
    batch, time, hidden = hs.shape
    if dhs is None and dh_n is None:
        raise ValueError("nothing to backpropagate: dhs is None and no final-state gradient given")
    for name, g in (("dhs", dhs), ("dh_n", dh_n)):
        if g is None:
            continue
        if name == "dhs" and g.ndim == 3:
            check_shape("dhs", g, (batch, time, hidden), "(batch, time, hidden)")
        else:
            check_shape(name, g, (batch, hidden), "(batch, hidden)")
        if g.dtype != hs.dtype:
            raise TypeError(f"{name} must have the forward pass's dtype "
                            f"{dtype_name(xp, hs.dtype)}; got {dtype_name(xp, g.dtype)}")
    seq = dhs if dhs is not None and dhs.ndim == 3 else None
    finals = [g for g in (None if seq is not None else dhs, dh_n) if g is not None]
    g_n = finals[0] if len(finals) == 1 else (finals[0] + finals[1] if finals else None)
    if seq is None:
        seq = xp.zeros((batch, time, hidden), dtype=hs.dtype, device=device(hs))
    elif mask is not None:
        seq = mask_outputs(seq, mask, xp=xp)
    return seq, g_n


def previous_states(xp: Any, hs: Any, h0: Any) -> Any:
    """``h_{t-1}`` for every step: ``h0`` (zeros if ``None``) then ``hs[:, :-1]``, a new
    ``(batch, time, hidden)`` array."""
    batch, time, hidden = hs.shape
    first = (xp.zeros((batch, 1, hidden), dtype=hs.dtype, device=device(hs)) if h0 is None
             else xp.reshape(h0, (batch, 1, hidden)))
    return xp.concat([first, hs[:, : time - 1, :]], axis=1)  # (B, T, H)


def keep_steps(xp: Any, mask: Any, a: Any, value: float) -> Any:
    """``a (batch, time, hidden)`` with the padded steps set to ``value`` (``a`` itself without
    a mask)."""
    if mask is None:
        return a
    fill = xp.full((), value, dtype=a.dtype, device=device(a))
    return xp.where(mask[:, :, None], a, fill)
