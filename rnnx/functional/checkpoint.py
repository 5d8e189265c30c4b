"""Checkpointed BPTT for the Elman RNN: memory O(sqrt(T)) instead of O(T), at one extra forward.

References
----------
- A. Griewank, "Achieving logarithmic growth of temporal and spatial complexity in reverse
  automatic differentiation", Optimization Methods and Software 1 (1992): checkpointing.
- T. Chen, B. Xu, C. Zhang, C. Guestrin, "Training deep nets with sublinear memory cost",
  arXiv:1604.06174 (2016), sec. 3: the sqrt(n) schedule used here.

The forward pass keeps the state at the start of every segment of ``every`` steps and nothing
else. The backward pass walks the segments last to first: it recomputes the segment's states
from its checkpoint (the same driver call as the forward's, so the recomputed states are
bitwise those the forward produced), runs the driver's backward over them
(:mod:`rnnx.functional._loop`) and adds the segment's share of the weight gradients. With
``every = ceil(sqrt(T))`` the working memory is about ``2 sqrt(T)`` states of ``(batch,
hidden)`` instead of ``2 T``; the price is one more forward pass.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._backend import device, on_input_device, writeable
from ._loop import drive_backward, drive_forward
from ._validate import check_shape, dtype_name, resolve
from .rnn import STEP, RNNGrads, check_rnn_inputs

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


def _segment(xp: Any, cache: RNNCheckpointCache | tuple, h: Any, s: int, e: int) -> Any:
    """The driver's forward over steps ``s .. e-1`` from ``h = h_s`` (``None`` for zeros):
    the same call in the forward and in the backward's recomputation, so both give the same
    bits. Returns its cache."""
    x, w_x, w_h, b = cache[:4]
    nonlinearity = cache[-1]
    _, seg = drive_forward(STEP, xp, x[:, s:e, :], {"w_x": w_x, "w_h": w_h, "b": b}, {"h0": h},
                           None, gates=1, options={"nonlinearity": nonlinearity})
    return seg


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
    namespace, on their device, in their dtype. Each segment is one run of the driver (on JAX
    one compiled call; segments of one length share their compilation).
    """
    xp = check_rnn_inputs(x, w_x, w_h, b, h0, nonlinearity)
    time = x.shape[1]
    if every is None:
        every = default_every(time)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"every must be a positive int (steps per segment); got {every!r}")
    args = (x, w_x, w_h, b, nonlinearity)
    h = h0
    checkpoints = []
    for s in range(0, time, every):
        checkpoints.append(h)
        seg = _segment(xp, args, h, s, min(s + every, time))
        # A copy, not a view: a view would keep the whole segment's states alive.
        h = xp.asarray(seg.h_n, copy=True)  # (B, H)
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
    args = (x, w_x, w_h, b, nonlinearity)
    dev = device(x)
    sums: dict[str, Any] = {}
    # dx is the one O(time) result; filled in place where the namespace allows it, so that it
    # is never held twice (parts and their concatenation).
    dx = xp.empty((batch, time, features), dtype=x.dtype, device=dev)  # (B, T, F)
    if not writeable(dx):
        dx = None
    dx_parts = [None] * len(checkpoints)
    g = dhs if last_only else None  # the gradient reaching the segment's final state
    for i in range(len(checkpoints) - 1, -1, -1):
        s = i * every
        e = min(s + every, time)
        seg = _segment(xp, args, checkpoints[i], s, e)  # the states again, the same bits
        seq = None if last_only else dhs[:, s:e, :]  # (B, L, H)
        grads = drive_backward(STEP, xp, seg, seq, (g,), gates=1)
        g = grads["dh0"]  # (B, H): reaches the state entering this segment
        for name in ("dw_x", "dw_h", "db"):
            sums[name] = grads[name] if name not in sums else sums[name] + grads[name]
        if dx is not None:
            dx[:, s:e, :] = grads["dx"]  # (B, L, F)
        else:
            dx_parts[i] = grads["dx"]
    if dx is None:
        dx = xp.concat(dx_parts, axis=1)  # (B, T, F)
    return RNNGrads(dx, g, sums["dw_x"], sums["dw_h"], sums["db"])
