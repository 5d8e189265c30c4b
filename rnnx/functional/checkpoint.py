"""Checkpointed BPTT for the Elman RNN: memory O(sqrt(T)) instead of O(T), at one extra forward.

References
----------
- A. Griewank, "Achieving logarithmic growth of temporal and spatial complexity in reverse
  automatic differentiation", Optimization Methods and Software 1 (1992): checkpointing.
- T. Chen, B. Xu, C. Zhang, C. Guestrin, "Training deep nets with sublinear memory cost",
  arXiv:1604.06174 (2016), sec. 3: the sqrt(n) schedule used here.

The forward pass keeps the state at the start of every segment of ``every`` steps and nothing
else. The backward pass walks the segments last to first: it recomputes the segment's states
from its checkpoint (with the same per-segment operations as the forward, so the recomputed
states are bitwise those the forward produced), runs the adjoint recurrence of
:mod:`rnnx.functional.rnn` over them and adds the segment's share of the weight gradients. With
``every = ceil(sqrt(T))`` the working memory is about ``2 sqrt(T)`` states of ``(batch,
hidden)`` instead of ``2 T``; the price is one more forward pass.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._backend import device, on_input_device, writeable
from ._common import input_grads, input_projection, per_step_transpose
from ._validate import check_shape, dtype_name, resolve
from .rnn import (
    RNNGrads,
    activation,
    check_rnn_inputs,
    elman_adjoint,
    elman_derivative,
    elman_states,
)

__all__ = ["RNNCheckpointCache", "rnn_backward_checkpointed", "rnn_forward_checkpointed"]


class RNNCheckpointCache(NamedTuple):
    """What :func:`rnn_backward_checkpointed` needs: the caller's arrays by reference and one
    state ``(batch, hidden)`` per segment (``checkpoints[i]`` is the state entering segment
    ``i``; ``None`` for the zero initial state)."""

    x: Any  # (batch, time, features)
    w_x: Any  # (features, hidden)
    w_h: Any  # (hidden, hidden)
    b: Any  # (hidden,)
    h0: Any  # (batch, hidden) or None for zeros
    checkpoints: list  # ceil(time / every) arrays (batch, hidden), the first may be None
    every: int
    nonlinearity: str


def default_every(time: int) -> int:
    """``ceil(sqrt(time))``: segments and their count balance, so memory is ~2 sqrt(T) states."""
    return math.isqrt(time - 1) + 1  # ceil(sqrt(time)) for time >= 1


def _segment_states(x, w_x, w_h, b, h, s, e, *, xp, nonlinearity):
    """States ``h_{s+1} .. h_e`` as ``(e - s, batch, hidden)``, time-major, from ``h = h_s``
    (``None`` for zeros). The same operations in the forward and in the backward's
    recomputation, so both give the same bits."""
    xw = input_projection(xp, x[:, s:e, :], w_x, b)  # (L, B, H): the segment's, one GEMM
    f = activation(nonlinearity, xp=xp, like=x)
    return elman_states(xw, h, w_h, f, xp=xp)  # (L, B, H)


@on_input_device
def rnn_forward_checkpointed(
    x: Any, w_x: Any, w_h: Any, b: Any, h0: Any = None, *, nonlinearity: str = "tanh",
    every: int | None = None,
) -> tuple[Any, RNNCheckpointCache]:
    """Elman RNN forward that keeps only every ``every``-th state for the backward pass.

    Parameters are those of :func:`rnnx.functional.rnn_forward`, plus ``every`` (steps per
    segment; default ``ceil(sqrt(time))``, which minimises memory). Returns the final state
    ``h_T`` ``(batch, hidden)`` — not every state, which would cost the O(time) memory this
    avoids — and the cache for :func:`rnn_backward_checkpointed`. Results are in the inputs'
    namespace, on their device, in their dtype.
    """
    xp = check_rnn_inputs(x, w_x, w_h, b, h0, nonlinearity)
    time = x.shape[1]
    if every is None:
        every = default_every(time)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"every must be a positive int (steps per segment); got {every!r}")
    h = h0
    checkpoints = []
    for s in range(0, time, every):
        checkpoints.append(h)
        e = min(s + every, time)
        hs = _segment_states(x, w_x, w_h, b, h, s, e, xp=xp, nonlinearity=nonlinearity)  # (L, B, H)
        # A copy, not a view: a view would keep the whole segment buffer alive as a checkpoint.
        h = xp.asarray(hs[e - s - 1, ...], copy=True)  # (B, H)
    return h, RNNCheckpointCache(x, w_x, w_h, b, h0, checkpoints, every, nonlinearity)


@on_input_device
def rnn_backward_checkpointed(dhs: Any, cache: RNNCheckpointCache):
    """BPTT for :func:`rnn_forward_checkpointed`, recomputing each segment's states.

    ``dhs`` is ``dL/dh_T`` ``(batch, hidden)`` or ``dL/dh_t`` for every step ``(batch, time,
    hidden)``. Returns :class:`rnnx.functional.RNNGrads` ``(dx, dh0, dw_x, dw_h, db)`` as
    :func:`rnnx.functional.rnn_backward` does, in the forward inputs' namespace and device.

    The gradients equal the full-cache ones to rounding, not bit for bit: each weight gradient
    is summed segment by segment (a different summation order from one GEMM over all steps) and
    the input projection is one GEMM per segment, which BLAS may block differently.
    """
    x, w_x, w_h, b, _, checkpoints, every, nonlinearity = cache
    xp = resolve({"dhs": dhs, "x": x})
    batch, time, features = x.shape
    hidden = w_x.shape[1]
    last_only = dhs.ndim == 2
    if last_only:
        check_shape("dhs", dhs, (batch, hidden), "(batch, hidden)")
    else:
        check_shape("dhs", dhs, (batch, time, hidden), "(batch, time, hidden)")
    if dhs.dtype != x.dtype:
        raise TypeError(
            f"dhs must have the forward pass's dtype {dtype_name(xp, x.dtype)}; "
            f"got {dtype_name(xp, dhs.dtype)}"
        )
    dev = device(x)
    w_hT = per_step_transpose(xp, w_h, steps=time)  # (H, H), once
    dw_x = xp.zeros((features, hidden), dtype=x.dtype, device=dev)  # (F, H)
    dw_h = xp.zeros((hidden, hidden), dtype=x.dtype, device=dev)  # (H, H)
    db = xp.zeros((hidden,), dtype=x.dtype, device=dev)  # (H,)
    # dx is the one O(time) result; filled in place where the namespace allows it, so that it
    # is never held twice (parts and their concatenation).
    dx = xp.empty((batch, time, features), dtype=x.dtype, device=dev) if writeable(dw_x) else None
    dx_parts = [None] * len(checkpoints)
    g = dhs if last_only else dhs[:, time - 1, :]  # (B, H)
    for i in range(len(checkpoints) - 1, -1, -1):
        s = i * every
        e = min(s + every, time)
        n = e - s
        h_start = checkpoints[i]
        hs = _segment_states(x, w_x, w_h, b, h_start, s, e, xp=xp, nonlinearity=nonlinearity)
        da, g = elman_adjoint(elman_derivative(hs, nonlinearity, xp=xp), g, w_hT,
                              None if last_only else dhs, offset=s, xp=xp)  # (L, B, H)
        da2 = xp.reshape(da, (n * batch, hidden))  # (L*B, H)
        dw_x_seg, db_seg = input_grads(xp, x[:, s:e, :], da2)  # (F, H), (H,)
        dw_x += dw_x_seg
        db += db_seg
        if n > 1:
            dw_h += xp.reshape(hs[: n - 1, ...], ((n - 1) * batch, hidden)).T @ xp.reshape(
                da[1:, ...], ((n - 1) * batch, hidden)
            )  # (H, H): states s+1..e-1 feed steps s+2..e
        if h_start is not None:
            dw_h += h_start.T @ da[0, ...]  # (H, H): the state entering the segment
        dx_seg = xp.permute_dims(xp.reshape(da2 @ w_x.T, (n, batch, features)), (1, 0, 2))  # (B, L, F)
        if dx is not None:
            dx[:, s:e, :] = dx_seg
        else:
            dx_parts[i] = dx_seg
    if dx is None:
        dx = xp.concat(dx_parts, axis=1)  # (B, T, F)
    return RNNGrads(dx, g, dw_x, dw_h, db)
