"""Checks and hoisted sums shared by the gated cells (LSTM, GRU)."""

from __future__ import annotations

from typing import Any

from .._backend import device
from ._validate import check_float, check_sequence, check_shape, dtype_name, resolve


def check_inputs(x: Any, w_x: Any, w_h: Any, biases: dict[str, Any], h0: Any, c0: Any,
                 gates: int, *, widths: dict[str, int] | None = None) -> Any:
    """Shared by the gated cells (``gates`` blocks): one namespace, one device, one float
    dtype, and shapes ``x (B, T, F)``, ``w_x (F, G*H)``, ``w_h (H, G*H)``, the 1-D parameters
    ``biases`` ``(G*H,)`` or, for a name in ``widths``, ``(widths[name]*H,)``. ``w_h=None``:
    a cell without recurrent weights (the minimal RNNs), ``hidden`` read from ``w_x``."""
    arrays = {"x": x, "w_x": w_x, "w_h": w_h, "h0": h0, "c0": c0}
    arrays.update(biases)
    xp = resolve(arrays)
    batch, _, features = check_sequence("x", x, xp=xp)
    labels = f"(features, {gates}*hidden)"
    if w_h is None:
        if getattr(w_x, "ndim", None) != 2 or w_x.shape[1] % gates or w_x.shape[1] == 0:
            raise ValueError(f"w_x must have shape {labels} with features = {features}; got "
                             f"shape {tuple(getattr(w_x, 'shape', ()))}")
        hidden = w_x.shape[1] // gates
    else:
        if getattr(w_h, "ndim", None) != 2 or w_h.shape[1] != gates * w_h.shape[0]:
            raise ValueError(
                f"w_h must have shape (hidden, {gates}*hidden); got shape {tuple(w_h.shape)}"
            )
        hidden = w_h.shape[0]
    check_shape("w_x", w_x, (features, gates * hidden), labels)
    for name, a in biases.items():
        w = (widths or {}).get(name, gates)
        check_shape(name, a, (w * hidden,), f"({w}*hidden,)" if w != 1 else "(hidden,)")
    for name, a in (("w_x", w_x), ("w_h", w_h), *biases.items()):
        if a is None:
            continue
        check_float(name, a, xp=xp, like=("x", x))
    for name, a in (("h0", h0), ("c0", c0)):
        if a is not None:
            check_shape(name, a, (batch, hidden), "(batch, hidden)")
            check_float(name, a, xp=xp, like=("x", x))
    return xp


#: The layer norm's variance floor, as in the paper's reference code and torch.nn.LayerNorm
#: (the layer-normalised LSTM's, readable and tuned).
LAYER_NORM_EPS = 1e-5

# Up to this many elements of w_h times steps, the backward multiplies by the transposed view.
_VIEW_MAX_STEP_ELEMENTS = 512


def per_step_transpose(xp: Any, w: Any, *, steps: int) -> Any:
    """``w.T`` for the per-step ``g @ w_h^T`` of a backward call of ``steps`` steps, made once
    per call: an array of its own in row-major order, except for short, small cases (below).
    OpenBLAS ran that GEMM on a transposed view up to 2x slower; the copy costs one pass over
    the weights (docs/performance.md, "Figures once in the code"). The standard's ``reshape``
    reads elements in row-major order, so flattening the transposed view writes them in that
    order, on every backend, with no layout flag outside the standard.

    For a few steps with small weights the view itself is returned: there the copy's two calls
    cost more than the view costs over all steps, which is what the seed-sized case pays in
    overhead."""
    rows, cols = w.shape
    if steps * rows * cols <= _VIEW_MAX_STEP_ELEMENTS:
        return w.T
    return xp.reshape(xp.reshape(w.T, (rows * cols,)), (cols, rows))


# Elements of one block of the gated cells' per-step backward factors (see `step_blocks`).
_BLOCK_ELEMENTS = 1 << 17


def step_blocks(time: int, row_elements: int) -> list[tuple[int, int]]:
    """Ranges ``[s, e)`` covering ``0 .. time`` from the end, for a backward loop that computes
    its gradient-independent factors (``row_elements`` per step) a block at a time, just before
    it needs them. Over whole ``(time, batch, G*hidden)`` arrays each of those elementwise passes
    ran at memory bandwidth (LSTM, (64,100,32,128) float32: 13-33 ms of a 63 ms backward); a
    block of about ``_BLOCK_ELEMENTS`` elements stays in cache. Short sequences are one block,
    so small shapes make no more calls than before."""
    steps = max(1, _BLOCK_ELEMENTS // max(1, row_elements))
    return [(max(0, e - steps), e) for e in range(time, 0, -steps)]


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


# Below this many elements in the ``(time*batch, width)`` projection, appending the column of
# ones costs more (two extra calls) than the whole-array pass it saves.
_FOLD_MIN_ELEMENTS = 1 << 14


def _folds_bias(rows: int, width: int) -> bool:
    return rows * width >= _FOLD_MIN_ELEMENTS


def time_major_rows(xp: Any, x: Any, *, ones: bool = False) -> Any:
    """``x (batch, time, features)`` as time-major rows ``(time*batch, features)``, a copy; with
    ``ones=True`` a column of ones is appended, ``(time*batch, features + 1)``, in the same copy.

    Against that column, one GEMM does what would otherwise take a second pass over its
    ``(time*batch, width)`` result: ``[x, 1] @ [w; b]`` adds the bias and ``[x, 1]^T @ dA`` gives
    ``[dW; db]``. NumPy, (64, 100, 32, 128) float32: projection 1.08 -> 0.80 ms, its gradients
    1.33 -> 0.98 ms (``sum(axis=0)`` over many rows is slower than the extra GEMM row)."""
    batch, time, features = x.shape
    x_tm = xp.permute_dims(x, (1, 0, 2))  # (T, B, F): a view
    if ones:
        column = xp.ones((time, batch, 1), dtype=x.dtype, device=device(x))  # (T, B, 1)
        x_tm = xp.concat([x_tm, column], axis=2)  # (T, B, F+1)
        features += 1
    return xp.reshape(x_tm, (time * batch, features))  # (T*B, F[+1])


def input_projection(xp: Any, x: Any, w_x: Any, b: Any) -> Any:
    """``x_t @ w_x + b`` for every step at once, time-major ``(time, batch, width)``: one GEMM
    over all ``time*batch`` rows, hoisted out of the recurrence. A new array that the caller
    owns (the time loops write the states into it), in ``x``'s namespace and on its device."""
    batch, time, _ = x.shape
    width = w_x.shape[1]
    if _folds_bias(time * batch, width):
        w_b = xp.concat([w_x, b[None, :]], axis=0)  # (F+1, GH)
        xw = time_major_rows(xp, x, ones=True) @ w_b  # (T*B, GH)
    else:
        xw = time_major_rows(xp, x) @ w_x  # (T*B, GH)
        xw += b  # own array, in place (an immutable JAX array rebinds)
    return xp.reshape(xw, (time, batch, width))  # (T, B, GH)


def input_grads(xp: Any, x: Any, dxw: Any) -> tuple[Any, Any]:
    """``(dw_x, db) = (sum_t x_t^T dxw_t, sum_t dxw_t)`` from the caller's ``x (batch, time,
    features)`` and the time-major rows ``dxw (time*batch, width)``: one GEMM."""
    features = x.shape[2]
    if _folds_bias(dxw.shape[0], dxw.shape[1]):
        dwb = time_major_rows(xp, x, ones=True).T @ dxw  # (F+1, GH): [dw_x; db]
        return dwb[:features, :], dwb[features, :]
    return time_major_rows(xp, x).T @ dxw, xp.sum(dxw, axis=0)  # (F, GH), (GH,)


def weight_grads(xp: Any, x: Any, hs_tm: Any, h0: Any, dxw_tm: Any, dhw_tm: Any, w_x: Any
                 ) -> tuple[Any, Any, Any, Any]:
    """The hoisted sums over all ``time * batch`` rows, each one GEMM:
    ``dw_x = X^T dxw`` with ``db = sum dxw`` (:func:`input_grads`), ``dw_h = H_prev^T dhw`` and
    ``dx = dxw w_x^T``.

    Time-major in: the states ``hs_tm (time, batch, hidden)`` and the gradients of the input and
    recurrent projections ``dxw_tm``/``dhw_tm`` ``(time, batch, G*hidden)``, so the shifted ranges
    (states 1..T-1 against steps 2..T) are contiguous slices, not copies. ``x`` is the caller's
    ``(batch, time, features)``; ``dx`` comes back in that layout."""
    time, batch, hidden = hs_tm.shape
    features = x.shape[2]
    width = dxw_tm.shape[2]
    dxw2 = xp.reshape(dxw_tm, (time * batch, width))  # (T*B, GH)
    dw_x, db = input_grads(xp, x, dxw2)  # (F, GH), (GH,)
    h_prev = xp.reshape(hs_tm[: time - 1, ...], ((time - 1) * batch, hidden))  # ((T-1)*B, H)
    dw_h = h_prev.T @ xp.reshape(dhw_tm[1:, ...], ((time - 1) * batch, dhw_tm.shape[2]))  # (H, GH)
    if h0 is not None:
        dw_h = dw_h + h0.T @ dhw_tm[0, ...]  # (H, GH): step 1 sees h0 (zero when omitted)
    dx = xp.permute_dims(xp.reshape(dxw2 @ w_x.T, (time, batch, features)), (1, 0, 2))  # (B, T, F)
    return dw_x, dw_h, db, dx
