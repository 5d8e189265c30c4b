"""LSTM, tuned for NumPy: the readable step of :mod:`rnnx.functional.lstm` (whose docstring has
the equations) rearranged for fewer, in-place array calls; checked against it on every test
case.

What is tuned: ``sigmoid(a) = (1 + tanh(a/2)) / 2`` with the halving folded into ``w_x``, ``b``
and ``w_h`` once per call (powers of two: exact), so one ``tanh`` over all ``4*hidden`` columns
gives every gate; the gates written over the step's own input-projection row; a first step from
the zero state without the product of zeros; the backward's gradient-independent factors
``p = [g, c_{t-1}, i, tanh(c_t)] * [i(1-i), f(1-f), 1-g^2, o(1-o)]`` and
``q = o (1 - tanh(c_t)^2)``, a block of steps at a time, so that a step is
``da_t = [K~, K~, K~, G_t] * p_t`` with ``K~ = K_t + G_t q_t``, multiplied in place.
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

__all__ = ["backward", "forward", "gate_affine", "lstm_backward_factors", "lstm_cell",
           "lstm_cell_backward", "lstm_first_step", "lstm_gates", "scaled_weights"]


def gate_affine(hidden: int, *, xp: Any, dtype: Any, dev: Any) -> tuple[Any, Any, Any]:
    """``(scale, mul, add)`` rows ``(4*hidden,)`` such that ``tanh(a*scale)*mul + add`` is
    sigmoid on the ``i, f, o`` blocks and tanh on the ``g`` block. Constants, made once per
    (namespace, size, dtype, device) and shared: the cells only read them (their five array
    calls are a tenth of a seed-sized forward)."""
    try:
        return _affine(xp, hidden, dtype, dev)
    except TypeError:  # a dtype or device that cannot be a cache key: make them afresh
        return _affine.__wrapped__(xp, hidden, dtype, dev)


@functools.lru_cache(maxsize=64)
def _affine(xp: Any, hidden: int, dtype: Any, dev: Any) -> tuple[Any, Any, Any]:
    half = xp.full((hidden,), 0.5, dtype=dtype, device=dev)  # (H,)
    one = xp.ones((hidden,), dtype=dtype, device=dev)  # (H,)
    zero = xp.zeros((hidden,), dtype=dtype, device=dev)  # (H,)
    scale = xp.concat([half, half, one, half])  # (4H,)
    return scale, scale, xp.concat([half, half, zero, half])  # (4H,) each


def scaled_weights(scale: Any, *arrays: Any) -> tuple[Any, ...]:
    """Each of ``arrays`` (whose last axis is ``4*hidden``) times ``scale`` (:func:`gate_affine`),
    new arrays, for a forward that folds the gates' scaling into its weights once per call
    instead of scaling the pre-activation every step. ``scale`` holds 0.5 and 1: powers of two,
    so ``(x w + b) * scale`` and ``x (w * scale) + b * scale`` are the same bits (barring
    subnormals), and so are the gates and states."""
    return tuple(a * scale for a in arrays)


def lstm_gates(a: Any, c_prev: Any, affine: tuple[Any, Any, Any], *, xp: Any,
               prescaled: bool = False) -> tuple[Any, Any]:
    """The gates and the new cell state from the gates' pre-activation ``a (batch, 4*hidden)``
    (an array the caller owns: it is overwritten) and ``c_prev (batch, hidden)``:
    ``(gates, c_t)`` with ``gates = [sigmoid(a_i), sigmoid(a_f), tanh(a_g), sigmoid(a_o)]`` and
    ``c_t = f * c_prev + i * g``. Shared by the LSTM and the layer-normalised LSTM.

    ``prescaled=True``: ``a`` is already ``a * scale`` (the caller folded ``scale`` into its
    weights once per call, :func:`scaled_weights`): one array call fewer a step, the same bits
    (``scale`` holds powers of two)."""
    scale, mul, add = affine
    hidden = c_prev.shape[1]
    if not prescaled:
        a *= scale
    gates = xp.tanh(a)  # (B, 4H)
    gates *= mul
    gates += add  # (B, 4H): sigmoid(i, f, o), tanh(g)
    i = gates[:, :hidden]  # (B, H)
    f = gates[:, hidden : 2 * hidden]  # (B, H)
    g = gates[:, 2 * hidden : 3 * hidden]  # (B, H)
    c = f * c_prev  # (B, H)
    c += i * g
    return gates, c


def lstm_cell(
    xw_t: Any, h_prev: Any, c_prev: Any, w_h: Any, affine: tuple[Any, Any, Any], *, xp: Any,
    prescaled: bool = False,
) -> tuple[Any, Any, Any]:
    """One LSTM step from the precomputed input projection ``xw_t = x_t @ w_x + b``
    ``(batch, 4*hidden)``; ``affine`` from :func:`gate_affine`. Returns ``(h_t, c_t, gates)``:
    ``(batch, hidden)``, ``(batch, hidden)``, ``(batch, 4*hidden)``, on ``h_prev``'s device.
    ``prescaled=True``: ``xw_t`` and ``w_h`` are already multiplied by the affine's ``scale``
    columns (:func:`scaled_weights`, once per call), which saves one call a step."""
    # In place on arrays this step made itself (four allocations fewer per step; an immutable
    # JAX array rebinds instead, with the same values): the same operations in the same order.
    a = h_prev @ w_h  # (B, 4H)
    a += xw_t
    gates, c = lstm_gates(a, c_prev, affine, xp=xp, prescaled=prescaled)  # (B, 4H), (B, H)
    o = gates[:, 3 * h_prev.shape[1] :]  # (B, H)
    h = xp.tanh(c)  # (B, H)
    h *= o
    return h, c, gates


def lstm_first_step(xw_0: Any, affine: tuple[Any, Any, Any], *, xp: Any
                    ) -> tuple[Any, Any, Any]:
    """:func:`lstm_cell` from the zero state, ``prescaled``: ``a = xw_0`` (no GEMM of zeros)
    and ``c_1 = i * g`` (no ``f * 0``). The same bits as the general step but for the sign of
    a zero (``0 + (-0.0)`` is ``+0.0`` there) and a non-finite ``w_h`` (``0 * inf`` is NaN
    there). ``xw_0 (batch, 4*hidden)`` is only read."""
    _, mul, add = affine
    hidden = xw_0.shape[1] // 4
    gates = xp.tanh(xw_0)  # (B, 4H)
    gates *= mul
    gates += add  # (B, 4H): sigmoid(i, f, o), tanh(g)
    c = gates[:, :hidden] * gates[:, 2 * hidden : 3 * hidden]  # (B, H): i * g
    h = xp.tanh(c)  # (B, H)
    h *= gates[:, 3 * hidden :]
    return h, c, gates


def lstm_backward_factors(gates: Any, cs: Any, c_init: Any, *, xp: Any, out_tanh: Any = None
                          ) -> tuple[Any, Any]:
    """Everything of the backward step that does not depend on the incoming gradient, for a
    block of steps at once, time-major: from ``gates (steps, batch, 4*hidden)``, ``cs (steps,
    batch, hidden)`` and the cell state before the block's first step ``c_init (batch, hidden)``,
    return ``p (steps, batch, 4*hidden)`` and ``q (steps, batch, hidden)`` with

        da_t = [K~, K~, K~, G_t] * p_t,   K~ = K_t + G_t * q_t

    i.e. ``p = [g, c_{t-1}, i, tanh(c_t)] * [i(1-i), f(1-f), 1-g^2, o(1-o)]`` and
    ``q = o * (1 - tanh(c_t)^2)``. :func:`lstm_backward` calls it block by block
    (:func:`rnnx.functional._common.step_blocks`). ``out_tanh`` replaces ``tanh(c_t)`` where
    the output gate multiplies something else (the layer-normalised LSTM's ``tanh(LN(c_t))``)."""
    hidden = cs.shape[2]
    i = gates[:, :, :hidden]  # (T, B, H)
    g = gates[:, :, 2 * hidden : 3 * hidden]  # (T, B, H)
    o = gates[:, :, 3 * hidden :]  # (T, B, H)
    tanh_c = xp.tanh(cs) if out_tanh is None else out_tanh  # (T, B, H)
    if not writeable(gates):  # immutable arrays (JAX): the same values by concatenation
        c_prev = xp.concat([c_init[None, ...], cs[:-1, ...]], axis=0)  # (T, B, H)
        sig = gates * (1.0 - gates)  # (T, B, 4H): sigmoid' (the g block is replaced below)
        deriv = xp.concat([sig[:, :, : 2 * hidden], 1.0 - g * g, sig[:, :, 3 * hidden :]],
                          axis=2)  # (T, B, 4H)
        p = xp.concat([g, c_prev, i, tanh_c], axis=2)  # (T, B, 4H)
        p *= deriv
        return p, o * (1.0 - tanh_c * tanh_c)  # (T, B, 4H), (T, B, H)
    # Written block by block into arrays of its own, not concatenated: a concat along the
    # last axis copies in runs of `hidden` elements and costs more than the products
    # (docs/performance.md, "Figures once in the code"). The same bits as above.
    deriv = 1.0 - gates  # (T, B, 4H)
    deriv *= gates  # sigmoid' (the g block is replaced next)
    deriv[:, :, 2 * hidden : 3 * hidden] = 1.0 - g * g  # tanh'
    p = xp.empty(gates.shape, dtype=gates.dtype, device=device(gates))  # (T, B, 4H)
    p[:, :, :hidden] = g
    p[0, :, hidden : 2 * hidden] = c_init  # c_{t-1}: the state before the block, then cs
    p[1:, :, hidden : 2 * hidden] = cs[:-1, ...]
    p[:, :, 2 * hidden : 3 * hidden] = i
    p[:, :, 3 * hidden :] = tanh_c
    p *= deriv
    q = tanh_c * tanh_c  # (T, B, H)
    q *= -1.0
    q += 1.0
    q *= o  # (T, B, H): o (1 - tanh(c)^2)
    return p, q


def lstm_cell_backward(
    g_h: Any, g_c: Any, p_t: Any, q_t: Any, f_t: Any, w_hT: Any, *, xp: Any,
    in_place: bool = False,
) -> tuple[Any, Any, Any]:
    """Backward of one step. ``g_h``/``g_c`` are ``dL/dh_t``/``dL/dc_t`` ``(batch, hidden)``;
    ``p_t (batch, 4*hidden)`` and ``q_t (batch, hidden)`` come from :func:`lstm_backward_factors`,
    ``f_t`` is the forget gate ``(batch, hidden)``. Returns ``(da_t (batch, 4*hidden),
    dL/dh_{t-1}, dL/dc_{t-1})`` through this step. ``w_hT`` is ``w_h`` transposed once.
    ``in_place=True``: ``p_t`` is an array of the caller's own and takes ``da_t`` where the
    namespace allows (the time loop keeps the gradients in its factors: no copy a step);
    otherwise every result is a new array."""
    k = g_h * q_t  # (B, H)
    k += g_c  # (B, H): K~, the total dL/dc_t (own array, in place)
    # One call replicates K~ over three blocks whichever way the standard allows (concat,
    # take, where); multiplying the blocks through views instead would take four more.
    kkkg = xp.concat([k, k, k, g_h], axis=1)  # (B, 4H)
    if in_place:
        da = p_t
        da *= kkkg  # (B, 4H): an immutable JAX array rebinds, with the same values
    else:
        da = kkkg * p_t  # (B, 4H)
    # The other two are new arrays: the caller may update them in place.
    return da, da @ w_hT, k * f_t  # (B, 4H), (B, H), (B, H)


def forward(xp: Any, x: Any, params: dict, state0: dict, m: Any, options: dict,
            workspace: Workspace | None) -> tuple[Any, Cache]:
    """:func:`rnnx.functional.lstm_forward` after its checks: the cache's ``cs`` lives in the
    ``workspace`` (overwritten by the next forward given it); the gates take the input
    projection's memory."""
    w_x, w_h, b = params["w_x"], params["w_h"], params["b"]
    h0, c0 = state0.get("h0"), state0.get("c0")
    batch = x.shape[0]
    hidden = w_h.shape[0]
    dev = device(x)
    # Hoisted input projection: one GEMM over all rows, time-major so that each step reads one
    # contiguous (B, 4H) block.
    affine = gate_affine(hidden, xp=xp, dtype=x.dtype, dev=dev)
    # The sigmoids' halving folded into the weights, once per call (exact: powers of two).
    w_xs, b_s, w_hs = scaled_weights(affine[0], w_x, b, w_h)  # (F, 4H), (4H,), (H, 4H)
    xw = input_projection(xp, x, w_xs, b_s)  # (T, B, 4H), pre-scaled
    state0_ = None  # the zero state: step 1 without the GEMM of zeros (lstm_first_step)
    if h0 is not None or c0 is not None or m is not None:
        zeros = xp.zeros((batch, hidden), dtype=x.dtype, device=dev)  # (B, H)
        state0_ = (h0 if h0 is not None else zeros, c0 if c0 is not None else zeros)

    # Each step's gates overwrite its own projection row where the namespace allows: the row
    # was read at that step only, and is still in cache when the gates are stored (no gates
    # buffer; one (T, B, 4H) array fewer). Immutable arrays go to the loop's lists.
    in_rows = writeable(xw)

    def keep(xw_t: Any, h_t: Any, c_t: Any, gates: Any
             ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        if in_rows:
            xw_t[...] = gates  # (B, 4H)
            return (h_t, c_t), ()
        return (h_t, c_t), (gates,)

    def step(xw_t: Any, state: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return keep(xw_t, *lstm_cell(xw_t, state[0], state[1], w_hs, affine, xp=xp,
                                     prescaled=True))

    def first(xw_0: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return keep(xw_0, *lstm_first_step(xw_0, affine, xp=xp))

    (hs, cs), saved = scan_forward(step, xw, state0_, saved_widths=() if in_rows else (4 * hidden,),
                                   mask=m, xp=xp, workspace=workspace, first=first,
                                   state_widths=(hidden, hidden))
    gs = xw if in_rows else saved[0]  # (T, B, 4H)
    states = xp.permute_dims(hs, (1, 0, 2))  # (B, T, H): a view of the time-major buffer
    out = states if m is None else mask_outputs(states, m, xp=xp)
    return out, Cache(x, params, state0, states, (hs, cs), m, extra=gs, tuned=True)


def backward(xp: Any, cache: Cache, dhs: Any, finals: tuple[Any, ...], state_grads: list | None,
             workspace: Workspace | None) -> dict[str, Any]:
    """:func:`rnnx.functional.lstm_backward` of a :func:`forward` cache, after its checks."""
    x, w_x, w_h = cache.x, cache.params["w_x"], cache.params["w_h"]
    h0, c0, m, hs = cache.h0, cache.c0, cache.mask, cache.hs
    dh_n, dc_n = finals
    batch, time, hidden = hs.shape
    dev = device(hs)
    seq = dhs if dhs is not None and dhs.ndim == 3 else None
    if seq is not None and m is not None:
        seq = mask_outputs(seq, m, xp=xp)  # a padded output is a constant zero: no gradient
    g_h = final_grad(xp, hs, dhs if seq is None else None, dh_n, seq)
    g_c = dc_n if dc_n is not None else xp.zeros((batch, hidden), dtype=hs.dtype, device=dev)

    w_hT = per_step_transpose(xp, w_h, steps=time)  # (4H, H), once
    c_init = c0 if c0 is not None else xp.zeros((batch, hidden), dtype=hs.dtype, device=dev)
    # Time-major (the forward's own buffers): each step reads contiguous rows.
    hs_tm, cs_tm = cache.states
    gates_tm = cache.extra
    f = gates_tm[:, :, hidden : 2 * hidden]  # (T, B, H)

    def factors(s: int, e: int) -> tuple[Any, Any]:
        c_before = c_init if s == 0 else cs_tm[s - 1, ...]  # (B, H): c_{s-1}
        return lstm_backward_factors(gates_tm[s:e, ...], cs_tm[s:e, ...], c_before, xp=xp)

    def step_back(g: tuple[Any, ...], pq: tuple[Any, Any], t: int, i: int
                  ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        da, gh, gc = lstm_cell_backward(g[0], g[1], pq[0][i, ...], pq[1][i, ...], f[t, ...], w_hT,
                                        xp=xp, in_place=True)
        return (da,), (gh, gc)

    (da,), (g_h, g_c) = scan_backward(
        step_back, factors, (g_h, g_c), time=time, row_elements=batch * 4 * hidden,
        stored_widths=(4 * hidden,), seq=seq, mask=m, state_grads=state_grads,
        buffered=writeable(hs_tm), xp=xp, workspace=workspace)
    dw_x, dw_h, db, dx = weight_grads(xp, x, hs_tm, h0, da, da, w_x)
    return {"dx": dx, "dh0": g_h, "dc0": g_c, "dw_x": dw_x, "dw_h": dw_h, "db": db}
