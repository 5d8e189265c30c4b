"""LSTM: one-step cell, the time loop, and backpropagation through time.

References
----------
- S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural Computation 9 (1997).
- F. Gers, J. Schmidhuber, F. Cummins, "Learning to forget: continual prediction with LSTM",
  Neural Computation 12 (2000): the forget gate, eq. (3.1)-(3.3).
- A. Graves, "Supervised sequence labelling with recurrent neural networks" (2012), sec. 4.6,
  eqs. (4.2)-(4.11) (forward) and (4.12)-(4.17) (backward).
- PyTorch ``torch.nn.LSTM``: gate order and layout, so weights move across unchanged.

Layout (row-vector convention, PyTorch's gate order ``i, f, g, o``)::

    w_x (features, 4*hidden) = [W_xi | W_xf | W_xg | W_xo]   (torch: weight_ih_l0 = w_x.T)
    w_h (hidden,   4*hidden) = [W_hi | W_hf | W_hg | W_ho]   (torch: weight_hh_l0 = w_h.T)
    b   (4*hidden,)          = b_ih + b_hh                    (one combined bias)

PyTorch keeps two bias vectors whose sum is all that enters the maths; rnnx keeps the sum.

Forward, with ``a_t = x_t w_x + h_{t-1} w_h + b`` split into the four gate blocks::

    i = sigmoid(a_i)  f = sigmoid(a_f)  g = tanh(a_g)  o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g         h_t = o * tanh(c_t)

Backward, ``G_t = dL/dh_t`` and ``K_t = dL/dc_t`` the total gradients reaching the state::

    K~   = K_t + G_t * o * (1 - tanh(c_t)^2)
    da_i = K~ * g * i(1-i)   da_f = K~ * c_{t-1} * f(1-f)   da_g = K~ * i * (1-g^2)
    da_o = G_t * tanh(c_t) * o(1-o)
    G_{t-1} = dhs_{t-1} + da_t w_h^T       K_{t-1} = K~ * f
    dw_x = sum_t x_t^T da_t   dw_h = sum_t h_{t-1}^T da_t   db = sum_t da_t   dx_t = da_t w_x^T

Only the ``G``/``K`` recurrence is sequential; the weight gradients are one GEMM each over all
``batch * time`` rows. The sigmoid is evaluated as ``(1 + tanh(a/2)) / 2`` so that one ``tanh``
over all ``4*hidden`` columns gives every gate (no overflow for large ``|a|``; absolute error one
ulp, which is what the products above need).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from .._backend import device, on_input_device, writeable
from ._common import (
    check_grads,
    check_inputs,
    final_grad,
    input_projection,
    per_step_transpose,
    weight_grads,
)
from ._loop import scan_backward, scan_forward
from ._mask import as_step_mask, mask_outputs
from ._validate import resolve
from ._workspace import Workspace

__all__ = ["LSTMCache", "LSTMGrads", "gate_affine", "lstm_backward", "lstm_backward_factors",
           "lstm_cell", "lstm_cell_backward", "lstm_first_step", "lstm_forward", "lstm_gates",
           "scaled_weights"]


class LSTMCache(NamedTuple):
    """What :func:`lstm_backward` needs.

    New arrays: ``hs`` and ``cs`` (the recurrent states ``(batch, time, hidden)``) and ``gates``
    (the activated gates ``i, f, g, o``, ``(batch, time, 4*hidden)``) so the backward pass needs
    no transcendental but one ``tanh(cs)``. ``x``, the weights, ``h0``/``c0`` (``None`` for zeros)
    and ``mask`` are references. Without a mask, ``hs`` is the array :func:`lstm_forward`
    returned; with one, ``hs`` holds the carried states (the returned outputs are zero where the
    mask is off). ``h_n``/``c_n`` are the final states ``(batch, hidden)``.
    """

    x: Any  # (batch, time, features)
    w_x: Any  # (features, 4*hidden)
    w_h: Any  # (hidden, 4*hidden)
    h0: Any  # (batch, hidden) or None
    c0: Any  # (batch, hidden) or None
    hs: Any  # (batch, time, hidden)
    cs: Any  # (batch, time, hidden)
    gates: Any  # (batch, time, 4*hidden)
    mask: Any  # (batch, time) bool or None

    @property
    def h_n(self) -> Any:
        """Final hidden state ``(batch, hidden)``: each sample's last valid state under a mask."""
        return self.hs[:, -1, :]

    @property
    def c_n(self) -> Any:
        """Final cell state ``(batch, hidden)``."""
        return self.cs[:, -1, :]


class LSTMGrads(NamedTuple):
    """Gradients with the shapes of the corresponding forward arguments."""

    dx: Any  # (batch, time, features)
    dh0: Any  # (batch, hidden)
    dc0: Any  # (batch, hidden)
    dw_x: Any  # (features, 4*hidden)
    dw_h: Any  # (hidden, 4*hidden)
    db: Any  # (4*hidden,)


def gate_affine(hidden: int, *, xp: Any, dtype: Any, dev: Any) -> tuple[Any, Any, Any]:
    """``(scale, mul, add)`` rows ``(4*hidden,)`` such that ``tanh(a*scale)*mul + add`` is
    sigmoid on the ``i, f, o`` blocks and tanh on the ``g`` block. Constants, made once per
    (namespace, size, dtype, device) and shared: the cells only read them (their five array
    calls cost ~5 µs, a tenth of a seed-sized forward)."""
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
    # last axis copies in runs of `hidden` elements and costs more than the products (NumPy,
    # 16 steps of (32, 256) float32: 206 -> 134 µs a block). The same bits as above.
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


@on_input_device
def lstm_forward(
    x: Any, w_x: Any, w_h: Any, b: Any, h0: Any = None, c0: Any = None, *, mask: Any = None,
    workspace: Workspace | None = None,
) -> tuple[Any, LSTMCache]:
    """Run an LSTM over a whole sequence.

    Parameters
    ----------
    x : array (batch, time, features)
    w_x : array (features, 4*hidden)
        Input weights, gate blocks ``i, f, g, o`` (``torch weight_ih_l0.T``).
    w_h : array (hidden, 4*hidden)
        Recurrent weights, same blocks (``torch weight_hh_l0.T``).
    b : array (4*hidden,)
        Combined bias (``torch bias_ih_l0 + bias_hh_l0``).
    h0, c0 : array (batch, hidden), optional
        Initial hidden and cell states; zeros (on ``x``'s device) if omitted.
    mask : optional
        Boolean ``(batch, time)`` step mask (padding on either side) or integer ``(batch,)``
        lengths, in ``x``'s namespace on any device, or host data; see :mod:`rnnx.functional._mask`.
        Masked-out steps carry the state and output zeros.
    workspace : Workspace, optional
        Buffers kept across calls (:class:`rnnx.functional.Workspace`): the cache's ``cs``
        is written into it, overwritten by the next forward given the same workspace, so a
        cache made with one is valid until then. ``hs`` is always a new array (and so are the
        ``gates``, which take the input projection's memory).
        Without one every array is new, as before. Ignored for JAX.

    Returns
    -------
    hs : array (batch, time, hidden)
        The hidden state at every step (zero where the mask is off). Same namespace, device and
        dtype as ``x``.
    cache : LSTMCache
        Pass to :func:`lstm_backward`; ``cache.h_n`` and ``cache.c_n`` are the final states
        ``(batch, hidden)``.
    """
    xp = check_inputs(x, w_x, w_h, {"b": b}, h0, c0, 4)
    m = as_step_mask(mask, x=x, xp=xp)
    batch = x.shape[0]
    hidden = w_h.shape[0]
    dev = device(x)
    # Hoisted input projection: one GEMM over all rows, time-major so that each step reads one
    # contiguous (B, 4H) block.
    affine = gate_affine(hidden, xp=xp, dtype=x.dtype, dev=dev)
    # The sigmoids' halving folded into the weights, once per call (exact: powers of two).
    w_xs, b_s, w_hs = scaled_weights(affine[0], w_x, b, w_h)  # (F, 4H), (4H,), (H, 4H)
    xw = input_projection(xp, x, w_xs, b_s)  # (T, B, 4H), pre-scaled
    state0 = None  # the zero state: step 1 without the GEMM of zeros (lstm_first_step)
    if h0 is not None or c0 is not None or m is not None:
        zeros = xp.zeros((batch, hidden), dtype=x.dtype, device=dev)  # (B, H)
        state0 = (h0 if h0 is not None else zeros, c0 if c0 is not None else zeros)

    # Each step's gates overwrite its own projection row where the namespace allows: the row
    # was read at that step only, and is still in cache when the gates are stored (no gates
    # buffer; one (T, B, 4H) array fewer). Immutable arrays (JAX) go to the driver's lists.
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

    (hs, cs), saved = scan_forward(step, xw, state0, saved_widths=() if in_rows else (4 * hidden,),
                                   mask=m, xp=xp, workspace=workspace, first=first,
                                   state_widths=(hidden, hidden))
    gs = xw if in_rows else saved[0]  # (T, B, 4H)
    # (B, T, .) views of the time-major buffers: the layout every caller and the backward use.
    states, cs, gs = (xp.permute_dims(a, (1, 0, 2)) for a in (hs, cs, gs))
    cache = LSTMCache(x, w_x, w_h, h0, c0, states, cs, gs, m)
    out = states if m is None else mask_outputs(states, m, xp=xp)
    return out, cache


@on_input_device
def lstm_backward(dhs: Any, cache: LSTMCache, dh_n: Any = None, dc_n: Any = None, *,
                  state_grads: list | None = None, workspace: Workspace | None = None
                  ) -> LSTMGrads:
    """Backpropagation through time for :func:`lstm_forward`.

    Parameters
    ----------
    dhs : array (batch, time, hidden) or (batch, hidden), or None
        Gradient of the returned ``hs``. A 2-D array is the gradient of the final hidden state
        alone (many-to-one; without a mask that is ``hs[:, -1]``). ``None``: no output gradient
        (then ``dh_n`` or ``dc_n`` must be given).
    cache : LSTMCache
    dh_n, dc_n : array (batch, hidden), optional
        Gradients of the final states ``cache.h_n``/``cache.c_n`` (stacked layers, seq2seq).
    state_grads : list, optional
        ``time`` slots that receive ``dL/dh_t`` ``(batch, hidden)`` (:mod:`rnnx.diagnostics`).
    workspace : Workspace, optional
        Buffers kept across calls for the backward's internal scratch (the stored per-step
        gradients); the returned gradients are new arrays either way. Ignored for JAX.

    Returns
    -------
    LSTMGrads
        ``(dx, dh0, dc0, dw_x, dw_h, db)`` in the forward inputs' namespace and device; ``dh0``
        and ``dc0`` are returned even when the forward pass started from zeros.
    """
    x, w_x, w_h, h0, c0, hs, cs, gates, m = cache
    xp = resolve({"dhs": dhs, "hs": hs, "dh_n": dh_n, "dc_n": dc_n})
    batch, time, hidden = hs.shape
    dev = device(hs)
    seq = check_grads(xp, hs, dhs, {"dh_n": dh_n, "dc_n": dc_n})
    if seq is not None and m is not None:
        seq = mask_outputs(seq, m, xp=xp)  # a padded output is a constant zero: no gradient
    g_h = final_grad(xp, hs, dhs if seq is None else None, dh_n, seq)
    g_c = dc_n if dc_n is not None else xp.zeros((batch, hidden), dtype=hs.dtype, device=dev)

    w_hT = per_step_transpose(xp, w_h, steps=time)  # (4H, H), once
    c_init = c0 if c0 is not None else xp.zeros((batch, hidden), dtype=hs.dtype, device=dev)
    # Time-major again (views of the forward's buffers): each step reads contiguous rows.
    hs_tm, cs_tm, gates_tm = (xp.permute_dims(a, (1, 0, 2)) for a in (hs, cs, gates))
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
        buffered=writeable(hs_tm), xp=xp, in_factors=1, workspace=workspace)
    dw_x, dw_h, db, dx = weight_grads(xp, x, hs_tm, h0, da, da, w_x)
    return LSTMGrads(dx, g_h, g_c, dw_x, dw_h, db)
