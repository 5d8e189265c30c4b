"""Checks and hoisted sums shared by the gated cells (LSTM, GRU)."""

from __future__ import annotations

from typing import Any

from .._backend import device
from ._validate import check_float, check_sequence, check_shape, dtype_name, resolve


def check_inputs(x: Any, w_x: Any, w_h: Any, biases: dict[str, Any], h0: Any, c0: Any,
                 gates: int) -> Any:
    """Shared by LSTM (``gates=4``) and GRU (``gates=3``): one namespace, one device, one float
    dtype, and shapes ``x (B, T, F)``, ``w_x (F, G*H)``, ``w_h (H, G*H)``, biases ``(G*H,)``."""
    arrays = {"x": x, "w_x": w_x, "w_h": w_h, "h0": h0, "c0": c0}
    arrays.update(biases)
    xp = resolve(arrays)
    batch, _, features = check_sequence("x", x, xp=xp)
    if getattr(w_h, "ndim", None) != 2 or w_h.shape[1] != gates * w_h.shape[0]:
        raise ValueError(
            f"w_h must have shape (hidden, {gates}*hidden); got shape {tuple(w_h.shape)}"
        )
    hidden = w_h.shape[0]
    check_shape("w_x", w_x, (features, gates * hidden), f"(features, {gates}*hidden)")
    for name, a in biases.items():
        check_shape(name, a, (gates * hidden,), f"({gates}*hidden,)")
    for name, a in (("w_x", w_x), ("w_h", w_h), *biases.items()):
        check_float(name, a, xp=xp, like=("x", x))
    for name, a in (("h0", h0), ("c0", c0)):
        if a is not None:
            check_shape(name, a, (batch, hidden), "(batch, hidden)")
            check_float(name, a, xp=xp, like=("x", x))
    return xp


def check_grads(xp: Any, hs: Any, dhs: Any, finals: dict[str, Any]) -> Any:
    """Validate the incoming gradients; return ``dhs`` if it is per-step (3-D), else ``None``."""
    batch, time, hidden = hs.shape
    if dhs is None and all(v is None for v in finals.values()):
        raise ValueError("nothing to backpropagate: dhs is None and no final-state gradient given")
    for name, a in (("dhs", dhs), *finals.items()):
        if a is None:
            continue
        if name == "dhs" and a.ndim == 3:
            check_shape("dhs", a, (batch, time, hidden), "(batch, time, hidden)")
        else:
            check_shape(name, a, (batch, hidden), "(batch, hidden)")
        if a.dtype != hs.dtype:
            raise TypeError(
                f"{name} must have the forward pass's dtype {dtype_name(xp, hs.dtype)}; "
                f"got {dtype_name(xp, a.dtype)}"
            )
    return dhs if dhs is not None and dhs.ndim == 3 else None


def final_grad(xp: Any, hs: Any, last: Any, dh_n: Any, seq: Any) -> Any:
    """``dL/dh_T`` from a 2-D ``dhs`` (final state), ``dh_n`` and the last step of a per-step
    ``seq`` (already masked), summed; zeros if none applies."""
    parts = [a for a in (last, dh_n, None if seq is None else seq[:, -1, :]) if a is not None]
    if not parts:
        return xp.zeros((hs.shape[0], hs.shape[2]), dtype=hs.dtype, device=device(hs))
    g = parts[0]
    for p in parts[1:]:
        g = g + p  # (B, H)
    return g


def weight_grads(xp: Any, x: Any, hs: Any, h0: Any, dxw: Any, dhw: Any, w_x: Any
                  ) -> tuple[Any, Any, Any, Any]:
    """The hoisted sums: ``dw_x = X^T dxw``, ``dw_h = H_prev^T dhw``, ``sum dxw`` and
    ``dx = dxw w_x^T``, each one GEMM (or reduction) over all ``batch * time`` rows.
    ``dxw``/``dhw`` are the gradients of the input and recurrent projections ``(B, T, G*H)``."""
    batch, time, hidden = hs.shape
    features = x.shape[2]
    width = dxw.shape[2]
    dxw2 = xp.reshape(dxw, (batch * time, width))  # (B*T, GH)
    dw_x = xp.reshape(x, (batch * time, features)).T @ dxw2  # (F, GH)
    h_prev = xp.reshape(hs[:, : time - 1, :], (batch * (time - 1), hidden))  # (B*(T-1), H)
    dw_h = h_prev.T @ xp.reshape(dhw[:, 1:, :], (batch * (time - 1), width))  # (H, GH)
    if h0 is not None:
        dw_h = dw_h + h0.T @ dhw[:, 0, :]  # (H, GH): step 1 sees h0 (zero when omitted)
    db = xp.sum(dxw2, axis=0)  # (GH,)
    dx = xp.reshape(dxw2 @ w_x.T, (batch, time, features))  # (B, T, F)
    return dw_x, dw_h, db, dx
