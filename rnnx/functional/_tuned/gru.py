"""GRU (reset after the product), tuned for NumPy: the readable step of
:mod:`rnnx.functional.gru` (whose docstring has the equations) rearranged for fewer, in-place
array calls; checked against it on every test case.

What is tuned: the sigmoids' halving folded into the weights and both biases once per call
(exact); the gates and the candidate written over the step's input-projection row; a first step
from the zero state without the product of zeros; the backward's gradient-independent factors
``[(1-z)(1-n^2), (1-z)(1-n^2) v_n r(1-r), (h_{t-1}-n) z(1-z), (1-z)(1-n^2) r, z]`` computed a
block of steps at a time, ordered so that one product with ``G_t`` gives ``du_t`` and ``dv_t``
as contiguous views.
"""

from __future__ import annotations

import functools
from typing import Any

from ..._backend import device, writeable
from .._common import final_grad, input_projection, per_step_transpose, weight_grads
from .._mask import mask_outputs
from .._step import Cache
from .._workspace import Workspace
from ._loop import scan_backward, scan_forward

__all__ = ["backward", "forward", "gate_scale", "gru_backward_factors", "gru_cell",
           "gru_cell_backward", "gru_first_step"]


def gate_scale(hidden: int, *, xp: Any, dtype: Any, dev: Any) -> Any:
    """``(3*hidden,)`` row ``[0.5, 0.5, 1]`` over the blocks ``r, z, n``: the sigmoids' halving
    (``sigmoid(a) = (1 + tanh(a/2)) / 2``), folded into ``w_x``, ``w_h`` and both biases once per
    call. Powers of two, so the gates, ``vn`` and the states are the same bits as scaling the
    pre-activation every step (barring subnormals). A shared constant: read only."""
    try:
        return _scale(xp, hidden, dtype, dev)
    except TypeError:  # a dtype or device that cannot be a cache key: make it afresh
        return _scale.__wrapped__(xp, hidden, dtype, dev)


@functools.lru_cache(maxsize=64)
def _scale(xp: Any, hidden: int, dtype: Any, dev: Any) -> Any:
    half = xp.full((2 * hidden,), 0.5, dtype=dtype, device=dev)  # (2H,)
    return xp.concat([half, xp.ones((hidden,), dtype=dtype, device=dev)])  # (3H,)


def gru_cell(u_t: Any, h_prev: Any, w_h: Any, b_hh: Any, *, xp: Any, prescaled: bool = False
             ) -> tuple[Any, Any, Any, Any]:
    """One GRU step from the precomputed input projection ``u_t = x_t @ w_x + b_ih``
    ``(batch, 3*hidden)``. Returns ``(h_t, rz, n, vn)``: ``(batch, hidden)``,
    ``(batch, 2*hidden)``, ``(batch, hidden)``, ``(batch, hidden)`` on ``h_prev``'s device.
    ``prescaled=True``: ``u_t``, ``w_h`` and ``b_hh`` are already multiplied by
    :func:`gate_scale` (their ``r, z`` blocks halved, once per call): one call fewer a step."""
    hidden = h_prev.shape[1]
    # In place on arrays this step made itself (seven allocations fewer per step; an immutable
    # JAX array rebinds instead, with the same values): the same operations in the same order.
    v = h_prev @ w_h  # (B, 3H)
    v += b_hh
    # sigmoid(a) = (1 + tanh(a/2)) / 2: no overflow for large |a|, one transcendental.
    a = u_t[:, : 2 * hidden] + v[:, : 2 * hidden]  # (B, 2H)
    if not prescaled:
        a *= 0.5
    rz = xp.tanh(a)  # (B, 2H)
    rz *= 0.5
    rz += 0.5  # (B, 2H): sigmoid(r), sigmoid(z)
    vn = v[:, 2 * hidden :]  # (B, H)
    an = rz[:, :hidden] * vn  # (B, H)
    an += u_t[:, 2 * hidden :]
    n = xp.tanh(an)  # (B, H)
    z = rz[:, hidden:]  # (B, H)
    h = h_prev - n  # (B, H)
    h *= z
    h += n
    return h, rz, n, vn


def gru_first_step(u_0: Any, b_hh: Any, *, xp: Any) -> tuple[Any, Any, Any, Any]:
    """:func:`gru_cell` from the zero state, ``prescaled``: ``v = b_hh`` (no GEMM of zeros) and
    ``h_1 = n - n * z`` (the general step's ``(0 - n) z + n``, the same bits). ``u_0 (batch,
    3*hidden)`` is only read; ``vn`` is ``b_hn`` broadcast to ``(batch, hidden)`` (a view)."""
    batch, width = u_0.shape
    hidden = width // 3
    a = u_0[:, : 2 * hidden] + b_hh[: 2 * hidden]  # (B, 2H)
    rz = xp.tanh(a)  # (B, 2H)
    rz *= 0.5
    rz += 0.5  # (B, 2H): sigmoid(r), sigmoid(z)
    vn = xp.broadcast_to(b_hh[2 * hidden :], (batch, hidden))  # (B, H)
    an = rz[:, :hidden] * vn  # (B, H)
    an += u_0[:, 2 * hidden :]
    n = xp.tanh(an)  # (B, H)
    h = n * rz[:, hidden:]  # (B, H)
    return n - h, rz, n, vn


def gru_backward_factors(rz: Any, n: Any, vn: Any, hs: Any, h_init: Any, *, xp: Any
                         ) -> tuple[Any, Any]:
    """The gradient-independent part of the backward steps of a block, time-major: from
    ``rz (steps, batch, 2*hidden)``, ``n``, ``vn``, ``hs`` ``(steps, batch, hidden)`` and the state
    before the block's first step ``h_init (batch, hidden)``, return ``p (steps, batch,
    5*hidden)`` and ``p4``, the same array as ``(steps, batch, 5, hidden)``, such that, for the
    incoming ``G_t``,

        [da_n, da_r, da_z, da_n * r, G-through-z] = G_t * p_t          (blocks of ``hidden``)

    i.e. ``p = [(1-z)(1-n^2), (1-z)(1-n^2) v_n r(1-r), (h_{t-1}-n) z(1-z), (1-z)(1-n^2) r, z]``.
    In this order ``du_t`` (blocks 0-2, ``n, r, z``) and ``dv_t`` (blocks 1-3, ``r, z, n``: the
    order of ``w_h``) are contiguous, one product of ``G_t`` broadcast over the blocks gives
    both, and a step needs no concatenation. :func:`gru_backward` calls it block by block
    (:func:`rnnx.functional._common.step_blocks`)."""
    steps, batch, hidden = n.shape
    r = rz[:, :, :hidden]  # (T, B, H)
    z = rz[:, :, hidden:]  # (T, B, H)
    h_prev = xp.concat([h_init[None, ...], hs[:-1, ...]], axis=0)  # (T, B, H)
    an = (1.0 - z) * (1.0 - n * n)  # (T, B, H)
    ar = an * vn * r * (1.0 - r)  # (T, B, H)
    az = (h_prev - n) * z * (1.0 - z)  # (T, B, H)
    p4 = xp.stack([an, ar, az, an * r, z], axis=2)  # (T, B, 5, H)
    return xp.reshape(p4, (steps, batch, 5 * hidden)), p4  # (T, B, 5H), the same memory


def gru_cell_backward(g: Any, p4_t: Any, w_hT: Any, *, xp: Any) -> tuple[Any, Any]:
    """Backward of one step: ``g = dL/dh_t`` ``(batch, hidden)`` and ``p4_t`` from
    :func:`gru_backward_factors` ``(batch, 5, hidden)``, an array of the caller's own that takes
    the step's gradients in place where the namespace allows. Returns ``(d_t, dL/dh_{t-1})``:
    ``d_t = [da_n, da_r, da_z, da_n * r, g * z]`` ``(batch, 5*hidden)``, of which ``du_t =
    d_t[:, :3H]`` (blocks ``n, r, z``) and ``dv_t = d_t[:, H:4H]`` (``r, z, n``), and
    ``dL/dh_{t-1} = dv_t w_h^T + g z`` ``(batch, hidden)``, a new array."""
    batch, hidden = g.shape
    d4 = p4_t
    d4 *= g[:, None, :]  # (B, 5, H): an immutable JAX array rebinds, with the same values
    d = xp.reshape(d4, (batch, 5 * hidden))  # (B, 5H): a view of the own, contiguous array
    g_prev = d[:, hidden : 4 * hidden] @ w_hT  # (B, H): dv_t w_h^T
    g_prev += d[:, 4 * hidden :]  # (B, H): + g z, the state's direct path
    return d, g_prev


def forward(xp: Any, x: Any, params: dict, state0: dict, m: Any, options: dict,
            workspace: Workspace | None) -> tuple[Any, Cache]:
    """:func:`rnnx.functional.gru_forward` after its checks: the cache's ``vn`` lives in the
    ``workspace`` (overwritten by the next forward given it); ``rz`` and ``n`` take the input
    projection's memory."""
    w_x, w_h, b_ih, b_hh = params["w_x"], params["w_h"], params["b_ih"], params["b_hh"]
    h0 = state0.get("h0")
    batch = x.shape[0]
    hidden = w_h.shape[0]
    dev = device(x)
    # Hoisted input projection: one GEMM over all rows, time-major so that each step reads one
    # contiguous (B, 3H) block.
    # The sigmoids' halving folded into the weights, once per call (exact: powers of two).
    scale = gate_scale(hidden, xp=xp, dtype=x.dtype, dev=dev)  # (3H,)
    w_hs, b_hhs = w_h * scale, b_hh * scale  # (H, 3H), (3H,)
    u = input_projection(xp, x, w_x * scale, b_ih * scale)  # (T, B, 3H), pre-scaled
    s0 = None  # the zero state: step 1 without the GEMM of zeros (gru_first_step)
    if h0 is not None or m is not None:
        s0 = (h0 if h0 is not None else xp.zeros((batch, hidden), dtype=x.dtype, device=dev),)

    # Each step's gates rz and candidate n overwrite its own input-projection row (3H wide,
    # read only at that step, still in cache) where the namespace allows: no buffers for
    # them, two (T, B, .) arrays fewer. Immutable arrays (JAX) go to the driver's lists.
    in_rows = writeable(u)

    def keep(u_t: Any, h_t: Any, rz: Any, n: Any, vn: Any
             ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        if in_rows:
            u_t[:, : 2 * hidden] = rz  # (B, 2H)
            u_t[:, 2 * hidden :] = n  # (B, H)
            return (h_t,), (vn,)
        return (h_t,), (rz, n, vn)

    def step(u_t: Any, state: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return keep(u_t, *gru_cell(u_t, state[0], w_hs, b_hhs, xp=xp, prescaled=True))

    def first(u_0: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return keep(u_0, *gru_first_step(u_0, b_hhs, xp=xp))

    widths = (hidden,) if in_rows else (2 * hidden, hidden, hidden)
    (hs,), saved = scan_forward(step, u, s0, saved_widths=widths, mask=m, xp=xp,
                                workspace=workspace, first=first, state_widths=(hidden,))
    rzs, ns, vns = (u[:, :, : 2 * hidden], u[:, :, 2 * hidden :], saved[0]) if in_rows else saved
    # (B, T, .) views of the time-major buffers: the layout every caller and the backward use.
    states, rzs, ns, vns = (xp.permute_dims(a, (1, 0, 2)) for a in (hs, rzs, ns, vns))
    out = states if m is None else mask_outputs(states, m, xp=xp)
    return out, Cache(x, params, state0, states, (hs,), m, extra=(rzs, ns, vns), tuned=True)


def backward(xp: Any, cache: Cache, dhs: Any, finals: tuple[Any, ...], state_grads: list | None,
             workspace: Workspace | None) -> dict[str, Any]:
    """:func:`rnnx.functional.gru_backward` of a :func:`forward` cache, after its checks."""
    x, w_x, w_h = cache.x, cache.params["w_x"], cache.params["w_h"]
    h0, m, hs = cache.h0, cache.mask, cache.hs
    rz, n, vn = cache.extra
    (dh_n,) = finals
    batch, time, hidden = hs.shape
    seq = dhs if dhs is not None and dhs.ndim == 3 else None
    if seq is not None and m is not None:
        seq = mask_outputs(seq, m, xp=xp)  # a padded output is a constant zero: no gradient
    g = final_grad(xp, hs, dhs if seq is None else None, dh_n, seq)

    w_hT = per_step_transpose(xp, w_h, steps=time)  # (3H, H), once
    dev = device(hs)
    h_init = h0 if h0 is not None else xp.zeros((batch, hidden), dtype=hs.dtype, device=dev)
    # Time-major again (views of the forward's buffers): each step reads contiguous rows.
    hs_tm, rz_tm, n_tm, vn_tm = (xp.permute_dims(a, (1, 0, 2)) for a in (hs, rz, n, vn))

    def factors(s: int, e: int) -> tuple[Any, Any]:
        h_before = h_init if s == 0 else hs_tm[s - 1, ...]  # (B, H): h_{s-1}
        return gru_backward_factors(rz_tm[s:e, ...], n_tm[s:e, ...], vn_tm[s:e, ...],
                                    hs_tm[s:e, ...], h_before, xp=xp)  # (L, B, 5H), (L, B, 5, H)

    def step_back(g: tuple[Any, ...], p: tuple[Any, Any], t: int, i: int
                  ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        d, g_prev = gru_cell_backward(g[0], p[1][i, ...], w_hT, xp=xp)
        return (d,), (g_prev,)

    # The weight sums read blocks 0-3 of each step's gradients (du, dv): a kept buffer stores
    # those four, not the fifth (g z, which only fed the recurrence).
    (ds,), (g,) = scan_backward(
        step_back, factors, (g,), time=time, row_elements=batch * 5 * hidden,
        stored_widths=(4 * hidden,), seq=seq, mask=m, state_grads=state_grads,
        buffered=writeable(hs_tm), xp=xp, workspace=workspace)
    # du in the blocks' order n, r, z: w_x's columns (r, z, n) are taken in that order for dx,
    # and dw_x, db_ih put back in w_x's order; dv is in w_h's order already.
    w_x_nrz = xp.concat([w_x[:, 2 * hidden :], w_x[:, : 2 * hidden]], axis=1)  # (F, 3H)
    dvs = ds[:, :, hidden : 4 * hidden]  # (T, B, 3H)
    dw_x, dw_h, db_ih, dx = weight_grads(xp, x, hs_tm, h0, ds[:, :, : 3 * hidden], dvs, w_x_nrz)
    dw_x = xp.concat([dw_x[:, hidden:], dw_x[:, :hidden]], axis=1)  # (F, 3H): r, z, n
    db_ih = xp.concat([db_ih[hidden:], db_ih[:hidden]])  # (3H,): r, z, n
    db_hh = xp.sum(xp.reshape(dvs, (time * batch, 3 * hidden)), axis=0)  # (3H,)
    return {"dx": dx, "dh0": g, "dw_x": dw_x, "dw_h": dw_h, "db_ih": db_ih, "db_hh": db_hh}
