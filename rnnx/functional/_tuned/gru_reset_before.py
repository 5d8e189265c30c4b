"""Reset-before GRU, tuned for NumPy: the readable step of
:mod:`rnnx.functional.gru_reset_before` (whose docstring has the equations) rearranged for
fewer, in-place array calls; checked against it on every test case.

What is tuned: the sigmoids' halving folded into the weights and the bias once per call
(exact); a first step from the zero state without the two products of zeros; the backward's
gradient-independent factors ``[r, h_{t-1} r (1-r), (h_{t-1}-n) z (1-z), (1-z)(1-n^2), z]`` a
block of steps at a time, multiplied in place first by ``G_t`` then by ``dq``, so that no step
concatenates.
"""

from __future__ import annotations

from typing import Any

from ..._backend import device, writeable
from .._common import final_grad, input_projection, per_step_transpose, weight_grads
from .._mask import mask_outputs
from .._step import Cache
from .._workspace import Workspace
from ._loop import scan_backward, scan_forward
from .gru import gate_scale

__all__ = ["backward", "forward", "gru_reset_before_backward_factors", "gru_reset_before_cell",
           "gru_reset_before_cell_backward"]


def gru_reset_before_cell(u_t: Any, h_prev: Any, w_hrz: Any, w_hn: Any, *, xp: Any,
                          prescaled: bool = False) -> tuple[Any, Any, Any]:
    """One reset-before GRU step from the precomputed input projection ``u_t = x_t @ w_x + b``
    ``(batch, 3*hidden)``, the recurrent weights of the gates ``w_hrz = [W_hr | W_hz]``
    ``(hidden, 2*hidden)`` and of the candidate ``w_hn`` ``(hidden, hidden)``. Returns ``(h_t,
    rz, n)``: ``(batch, hidden)``, ``(batch, 2*hidden)``, ``(batch, hidden)``, new arrays on
    ``h_prev``'s device. ``prescaled=True``: the ``r, z`` blocks of ``u_t`` and ``w_hrz`` are
    already halved (:func:`rnnx.functional.gru.gate_scale`, once per call): one call fewer a
    step."""
    hidden = h_prev.shape[1]
    a = h_prev @ w_hrz  # (B, 2H)
    a += u_t[:, : 2 * hidden]  # own array, in place (an immutable JAX array rebinds)
    if not prescaled:
        a *= 0.5
    # sigmoid(a) = (1 + tanh(a/2)) / 2: no overflow for large |a|, one transcendental.
    rz = xp.tanh(a)  # (B, 2H)
    rz *= 0.5
    rz += 0.5  # (B, 2H): sigmoid(r), sigmoid(z)
    q = rz[:, :hidden] * h_prev  # (B, H): the reset applied before the matmul
    an = q @ w_hn  # (B, H)
    an += u_t[:, 2 * hidden :]
    n = xp.tanh(an)  # (B, H)
    h = h_prev - n  # (B, H)
    h *= rz[:, hidden:]
    h += n  # (B, H): (1 - z) n + z h_{t-1}
    return h, rz, n


def gru_reset_before_backward_factors(rz: Any, n: Any, hs: Any, h_init: Any, *, xp: Any
                                      ) -> tuple[Any, Any]:
    """The gradient-independent part of the backward steps of a block, time-major: from
    ``rz (steps, batch, 2*hidden)``, ``n``, ``hs`` ``(steps, batch, hidden)`` and the state
    before the block's first step ``h_init (batch, hidden)``, return ``p (steps, batch,
    5*hidden)`` and ``p4``, the same array as ``(steps, batch, 5, hidden)``::

        p = [r, h_{t-1} r (1 - r), (h_{t-1} - n) z (1 - z), (1 - z)(1 - n^2), z]

    A step multiplies blocks 2-4 by ``G_t`` (giving ``da_z, da_n, G z``), then blocks 0-1 by
    ``dq = da_n W_hn^T`` (``dq r, da_r``): blocks 1-3 are ``du_t = [da_r, da_z, da_n]`` in
    ``w_x``'s order and blocks 1-2 ``[da_r, da_z]`` in ``w_h``'s, so no step concatenates.
    :func:`gru_reset_before_backward` calls it block by block
    (:func:`rnnx.functional._common.step_blocks`)."""
    steps, batch, hidden = n.shape
    r = rz[:, :, :hidden]  # (T, B, H)
    z = rz[:, :, hidden:]  # (T, B, H)
    h_prev = xp.concat([h_init[None, ...], hs[:-1, ...]], axis=0)  # (T, B, H)
    pr = h_prev * r * (1.0 - r)  # (T, B, H)
    pz = (h_prev - n) * z * (1.0 - z)  # (T, B, H)
    pn = (1.0 - z) * (1.0 - n * n)  # (T, B, H)
    p4 = xp.stack([r, pr, pz, pn, z], axis=2)  # (T, B, 5, H)
    return xp.reshape(p4, (steps, batch, 5 * hidden)), p4  # (T, B, 5H), the same memory


def gru_reset_before_cell_backward(g: Any, p4_t: Any, w_hnT: Any, w_hrzT: Any, *, xp: Any,
                                   in_place: bool) -> tuple[Any, Any]:
    """Backward of one step: ``g = dL/dh_t`` ``(batch, hidden)``, ``p4_t`` from
    :func:`gru_reset_before_backward_factors` ``(batch, 5, hidden)``, and the transposed
    recurrent weights ``w_hnT (hidden, hidden)``, ``w_hrzT (2*hidden, hidden)``. With
    ``in_place`` (an array of the caller's own, in a namespace that writes through views)
    ``p4_t`` takes the step's gradients; otherwise they are a new array. Returns ``(d_t,
    dL/dh_{t-1})``: ``d_t = [dq r, da_r, da_z, da_n, g z]`` ``(batch, 5*hidden)``, of which
    ``du_t = d_t[:, H:4H]``, and ``dL/dh_{t-1} = [da_r, da_z] w_hrz^T + dq r + g z``
    ``(batch, hidden)``, a new array."""
    batch, hidden = g.shape
    if in_place:
        tail = p4_t[:, 2:, :]  # (B, 3, H): a view
        tail *= g[:, None, :]  # [da_z, da_n, g z]
        dq = p4_t[:, 3, :] @ w_hnT  # (B, H)
        head = p4_t[:, :2, :]  # (B, 2, H): a view
        head *= dq[:, None, :]  # [dq r, da_r]
        d4 = p4_t
    else:  # immutable arrays (JAX): the same products, joined
        tail = p4_t[:, 2:, :] * g[:, None, :]  # (B, 3, H)
        dq = tail[:, 1, :] @ w_hnT  # (B, H)
        d4 = xp.concat([p4_t[:, :2, :] * dq[:, None, :], tail], axis=1)  # (B, 5, H)
    d = xp.reshape(d4, (batch, 5 * hidden))  # (B, 5H): a view of a contiguous array
    g_prev = d[:, hidden : 3 * hidden] @ w_hrzT  # (B, H): [da_r, da_z] w_hrz^T
    g_prev += d[:, 4 * hidden :]  # (B, H): + g z, the state's direct path
    g_prev += d[:, :hidden]  # (B, H): + dq r, through the reset product
    return d, g_prev


def forward(xp: Any, x: Any, params: dict, state0: dict, m: Any, options: dict,
            workspace: Workspace | None) -> tuple[Any, Cache]:
    """:func:`rnnx.functional.gru_reset_before_forward` after its checks: the cache's ``rz``
    and ``n`` live in the ``workspace`` (overwritten by the next forward given it)."""
    w_x, w_h, b = params["w_x"], params["w_h"], params["b"]
    h0 = state0.get("h0")
    batch = x.shape[0]
    hidden = w_h.shape[0]
    dev = device(x)
    # The sigmoids' halving folded into the weights, once per call (exact: powers of two).
    scale = gate_scale(hidden, xp=xp, dtype=x.dtype, dev=dev)  # (3H,): [0.5, 0.5, 1]
    u = input_projection(xp, x, w_x * scale, b * scale)  # (T, B, 3H), pre-scaled, time-major
    w_hs = w_h * scale  # (H, 3H): an array of its own, read through two column views
    w_hrz, w_hn = w_hs[:, : 2 * hidden], w_hs[:, 2 * hidden :]  # (H, 2H), (H, H)
    s0 = None  # the zero state: step 1 without the two GEMMs of zeros (first, below)
    if h0 is not None or m is not None:
        s0 = (h0 if h0 is not None else xp.zeros((batch, hidden), dtype=x.dtype, device=dev),)

    def step(u_t: Any, state: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        h_t, rz, n = gru_reset_before_cell(u_t, state[0], w_hrz, w_hn, xp=xp, prescaled=True)
        return (h_t,), (rz, n)

    def first(u_0: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        # gru_reset_before_cell at h = 0, the same bits: both matmuls add exact zeros, and
        # h = (0 - n) z + n is n - n z.
        rz = xp.tanh(u_0[:, : 2 * hidden])  # (B, 2H), pre-scaled
        rz *= 0.5
        rz += 0.5
        n = xp.tanh(u_0[:, 2 * hidden :])  # (B, H)
        return (n - n * rz[:, hidden:],), (rz, n)

    (hs,), (rzs, ns) = scan_forward(step, u, s0, saved_widths=(2 * hidden, hidden), mask=m,
                                    xp=xp, workspace=workspace, first=first,
                                    state_widths=(hidden,))
    # (B, T, .) views of the time-major buffers: the layout every caller and the backward use.
    states, rzs, ns = (xp.permute_dims(a, (1, 0, 2)) for a in (hs, rzs, ns))
    out = states if m is None else mask_outputs(states, m, xp=xp)
    return out, Cache(x, params, state0, states, (hs,), m, extra=(rzs, ns), tuned=True)


def backward(xp: Any, cache: Cache, dhs: Any, finals: tuple[Any, ...], state_grads: list | None,
             workspace: Workspace | None) -> dict[str, Any]:
    """:func:`rnnx.functional.gru_reset_before_backward` of a :func:`forward` cache, after its
    checks."""
    x, w_x, w_h = cache.x, cache.params["w_x"], cache.params["w_h"]
    h0, m, hs = cache.h0, cache.mask, cache.hs
    rz, n = cache.extra
    (dh_n,) = finals
    batch, time, hidden = hs.shape
    seq = dhs if dhs is not None and dhs.ndim == 3 else None
    if seq is not None and m is not None:
        seq = mask_outputs(seq, m, xp=xp)  # a padded output is a constant zero: no gradient
    g = final_grad(xp, hs, dhs if seq is None else None, dh_n, seq)

    w_hnT = per_step_transpose(xp, w_h[:, 2 * hidden :], steps=time)  # (H, H), once
    w_hrzT = per_step_transpose(xp, w_h[:, : 2 * hidden], steps=time)  # (2H, H), once
    dev = device(hs)
    h_init = h0 if h0 is not None else xp.zeros((batch, hidden), dtype=hs.dtype, device=dev)
    # Time-major again (views of the forward's buffers): each step reads contiguous rows.
    hs_tm, rz_tm, n_tm = (xp.permute_dims(a, (1, 0, 2)) for a in (hs, rz, n))
    buffered = writeable(hs_tm)

    def factors(s: int, e: int) -> tuple[Any, Any]:
        h_before = h_init if s == 0 else hs_tm[s - 1, ...]  # (B, H): h_{s-1}
        return gru_reset_before_backward_factors(rz_tm[s:e, ...], n_tm[s:e, ...],
                                                 hs_tm[s:e, ...], h_before, xp=xp)

    def step_back(g: tuple[Any, ...], p: tuple[Any, Any], t: int, i: int
                  ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        d, g_prev = gru_reset_before_cell_backward(g[0], p[1][i, ...], w_hnT, w_hrzT, xp=xp,
                                                   in_place=buffered)
        return (d,), (g_prev,)

    # The weight sums read blocks 0-3 of each step's gradients; a kept buffer stores those
    # four, not the fifth (g z, which only fed the recurrence).
    (ds,), (g,) = scan_backward(
        step_back, factors, (g,), time=time, row_elements=batch * 5 * hidden,
        stored_widths=(4 * hidden,), seq=seq, mask=m, state_grads=state_grads,
        buffered=buffered, xp=xp, workspace=workspace)
    du = ds[:, :, hidden : 4 * hidden]  # (T, B, 3H): [da_r, da_z, da_n], w_x's order
    # [dW_hr | dW_hz] = sum_t h_{t-1}^T [da_r, da_z] is the shared hoisted sum; dW_hn = sum_t
    # (r_t * h_{t-1})^T da_n is this cell's own: steps 1..T-1 in one GEMM, step 0 sees h0.
    dw_x, dw_rz, db, dx = weight_grads(xp, x, hs_tm, h0, du, ds[:, :, hidden : 3 * hidden], w_x)
    prev = (time - 1) * batch
    h_prev = xp.reshape(hs_tm[: time - 1, ...], (prev, hidden))  # ((T-1)*B, H)
    q = xp.reshape(rz_tm[1:, :, :hidden], (prev, hidden)) * h_prev  # ((T-1)*B, H): r_t h_{t-1}
    dw_n = q.T @ xp.reshape(ds[1:, :, 3 * hidden : 4 * hidden], (prev, hidden))  # (H, H)
    if h0 is not None:
        dw_n = dw_n + (rz_tm[0, :, :hidden] * h0).T @ ds[0, :, 3 * hidden : 4 * hidden]
    dw_h = xp.concat([dw_rz, dw_n], axis=1)  # (H, 3H): r, z, n
    return {"dx": dx, "dh0": g, "dw_x": dw_x, "dw_h": dw_h, "db": db}
