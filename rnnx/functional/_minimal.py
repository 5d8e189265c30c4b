"""What the minimal RNNs (:mod:`rnnx.functional.min_gru`, :mod:`rnnx.functional.min_lstm`)
share: their argument checks, the input projection and its gradients, the candidate
activation ``g`` and the incoming gradients of a backward call.

These cells have no recurrent weights: every gate reads ``x_t`` only, through one fused
``w_x (features, G*hidden)`` and ``b (G*hidden,)``.
"""

from __future__ import annotations

from typing import Any

from .._backend import device
from ._mask import mask_outputs
from ._validate import check_float, check_sequence, check_shape, dtype_name, resolve


def check_min_inputs(x: Any, w_x: Any, b: Any, h0: Any, gates: int) -> tuple[Any, int]:
    """One namespace, device and float dtype; ``x (B, T, F)``, ``w_x (F, gates*H)``,
    ``b (gates*H,)``, ``h0 (B, H)``. Returns ``(xp, hidden)``."""
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
    return xp, hidden


def project(xp: Any, x: Any, w_x: Any, b: Any) -> Any:
    """``u = x w_x + b`` for every step: one GEMM over all ``batch*time`` rows. A new array
    ``(batch, time, G*hidden)`` the caller owns, in ``x``'s namespace and on its device."""
    batch, time, features = x.shape
    u = xp.reshape(x, (batch * time, features)) @ w_x  # (B*T, GH)
    u += b  # own array (an immutable JAX array rebinds)
    return xp.reshape(u, (batch, time, w_x.shape[1]))  # (B, T, GH)


def project_grads(xp: Any, x: Any, w_x: Any, du: Any) -> tuple[Any, Any, Any]:
    """``(dx, dw_x, db)`` from ``du = dL/du`` ``(batch, time, G*hidden)``: ``dx = du w_x^T``,
    ``dw_x = X^T du`` (one GEMM each over all ``batch*time`` rows) and ``db = sum du``."""
    batch, time, features = x.shape
    du2 = xp.reshape(du, (batch * time, du.shape[2]))  # (B*T, GH)
    dw_x = xp.reshape(x, (batch * time, features)).T @ du2  # (F, GH)
    dx = xp.reshape(du2 @ w_x.T, (batch, time, features))  # (B, T, F)
    return dx, dw_x, xp.sum(du2, axis=0)


def sigmoid_pair(a: Any, *, xp: Any) -> tuple[Any, Any]:
    """``(sigmoid(a), sigmoid(-a)) = (1 / (1 + exp(-a)), 1 / (1 + exp(a)))``, each to a few
    ulp *relative* error for every ``a``, from ``e = exp(-|a|)`` (never overflows):
    ``1 / (1 + e)`` is the sigmoid of ``|a|``, ``e / (1 + e)`` that of ``-|a|``.

    Relative accuracy matters here: a gate near 0 multiplies every gradient through it (minGRU
    ``du_z = ... z (1 - z)``), and ``(1 + tanh(a/2)) / 2``, the other cells' form, has an
    absolute error of ``eps / 2``: at ``z = 3.4e-4`` (``a = -8``) that is a relative error of
    1e-4 in float32, which the float32 gradients of a long-memory minGRU showed
    (tests/test_functional_min_rnn.py). New arrays."""
    e = xp.exp(-xp.abs(a))
    big = 1.0 / (1.0 + e)  # sigmoid(|a|), in [1/2, 1)
    small = e * big  # sigmoid(-|a|), in (0, 1/2]
    pos = a >= 0.0
    return xp.where(pos, big, small), xp.where(pos, small, big)


def sigmoid(a: Any, *, xp: Any) -> Any:
    """``1 / (1 + exp(-a))`` to a few ulp relative error (:func:`sigmoid_pair`). A new
    array."""
    e = xp.exp(-xp.abs(a))
    big = 1.0 / (1.0 + e)  # sigmoid(|a|)
    return xp.where(a >= 0.0, big, e * big)


def g_act(a: Any, *, xp: Any) -> Any:
    """The candidate activation of Feng et al. (2024), ``g(a) = a + 1/2`` for ``a >= 0`` and
    ``sigmoid(a)`` below: continuous, positive, ``g(0) = 1/2``. The sigmoid branch as in
    :func:`sigmoid_pair`, to a few ulp relative (``g`` itself enters ``g' = g (1 - g)``).
    A new array."""
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0.0, a + 0.5, e / (1.0 + e))


def g_grad(a: Any, g: Any, *, xp: Any) -> Any:
    """``g'(a)``: 1 for ``a >= 0``, ``sigmoid'(a) = g (1 - g)`` below, from the
    pre-activation ``a`` and ``g = g_act(a)``. ``g`` is capped at 1/2 first (below the kink it
    is less), so the branch not taken cannot overflow for large ``a``. A new array."""
    dev = device(g)
    s = xp.minimum(g, xp.full((), 0.5, dtype=g.dtype, device=dev))  # (B, T, H): g where a < 0
    return xp.where(a >= 0.0, xp.ones((), dtype=g.dtype, device=dev), s * (1.0 - s))


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
