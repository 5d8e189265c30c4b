"""Elman RNN, tuned for NumPy: the lean loops (the NumPy fast path of :mod:`rnnx.functional.rnn`,
whose docstring has the equations; checked against the readable step on every test case).

Without a mask the forward writes each state into its own input-projection slot and the
backward multiplies the precomputed ``f'(a_t)`` (from the states, for all steps at once) in
place: two array calls a step. A masked or observed run goes through the tuned loop
(:mod:`rnnx.functional._tuned._loop`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..._backend import device, writeable
from .._activations import tanh_for
from .._common import final_grad, input_projection, per_step_transpose, weight_grads
from .._mask import mask_outputs
from .._step import Cache
from ._loop import scan_backward, scan_forward

__all__ = ["activation", "backward", "elman_adjoint", "elman_derivative", "elman_states",
           "forward", "rnn_cell", "rnn_cell_backward"]


def activation(nonlinearity: str, *, xp: Any, like: Any) -> Callable[[Any], Any]:
    """The elementwise ``f`` of an Elman step for arrays of ``like``'s dtype and device in
    ``xp``: ``"relu"`` is ``max(a, 0)``; ``"tanh"`` is the namespace's tanh or, where that is
    slow, an exp-based one accurate to ~2 ulp of 1.0 (:mod:`rnnx.functional._activations`)."""
    if nonlinearity == "tanh":
        return tanh_for(xp, like.dtype)
    # maximum, not clip: the same values (a -0.0 becomes 0.0 either way, NaN stays NaN), and
    # array-api-compat's clip wrapper costs ten times as much a call, once per step. The zero
    # is an array made once: a Python 0.0 would become a new array every step behind
    # array-api-compat's torch wrapper (a host -> device copy on a GPU).
    zero = xp.zeros((), dtype=like.dtype, device=device(like))
    return lambda a: xp.maximum(a, zero)


def rnn_cell(xw_t: Any, h_prev: Any, w_h: Any, *, xp: Any,
             nonlinearity: str | Callable[[Any], Any] = "tanh") -> Any:
    """One Elman step from a precomputed input projection.

    ``xw_t = x_t @ w_x + b`` is ``(batch, hidden)``; returns ``h_t`` ``(batch, hidden)`` in ``xp``
    on ``h_prev``'s device. Neither input is written to. ``nonlinearity`` is ``"tanh"``,
    ``"relu"`` or a function from :func:`activation` (the time loops pick it once per call).
    """
    f = nonlinearity if callable(nonlinearity) else activation(nonlinearity, xp=xp, like=h_prev)
    a = h_prev @ w_h  # (B, H)
    # `a` is this function's own array: add in place, one allocation fewer per step (an
    # immutable JAX array rebinds `a` instead, with the same result).
    a += xw_t  # (B, H)
    return f(a)


def rnn_cell_backward(
    g_t: Any, h_t: Any, w_hT: Any, *, xp: Any, nonlinearity: str = "tanh"
) -> tuple[Any, Any]:
    """Backward of one step: from ``g_t = dL/dh_t`` and the stored ``h_t`` (both ``(batch,
    hidden)``) return ``(da_t, dL/dh_{t-1} through this step)``, both ``(batch, hidden)`` and
    both new arrays (the caller may update them in place).

    ``w_hT`` is ``w_h`` transposed, passed in so the loop does not transpose it every step.
    """
    if nonlinearity == "tanh":
        da = 1.0 - h_t * h_t  # (B, H): tanh' = 1 - tanh^2, from the state, no transcendental
        da *= g_t  # (B, H): own array, in place
    else:
        da = xp.where(h_t > 0, g_t, 0.0)  # (B, H): relu' = [a > 0] = [h > 0]
    return da, da @ w_hT  # (B, H), (B, H)


# ---------------------------------------------------------------------------------------------
# The lean loops: the one documented exception to rnnx.functional._loop. Without a mask the
# forward writes each state into its own projection slot and the backward multiplies the
# factors in place, two array calls a step; the checkpointed BPTT runs its segments through
# the same two functions.
# ---------------------------------------------------------------------------------------------


def elman_states(xw: Any, h: Any, w_h: Any, f: Callable[[Any], Any], *, xp: Any) -> Any:
    """The states ``h_1 .. h_T`` ``(time, batch, hidden)`` from the time-major projection
    ``xw (time, batch, hidden)``, an array the caller owns and this function overwrites (where
    the namespace allows: step ``t``'s projection is read once, at step ``t``, so its slot
    takes ``h_t`` and the states need no buffer of their own). ``h`` is the state before the
    first step, ``None`` for zeros."""
    time = xw.shape[0]
    start = 0
    if h is None:
        # From a zero state, step 1 is f(x_1 W_x + b): no zeros array, no GEMM with them.
        h, start = f(xw[0, ...]), 1  # (B, H)
    if writeable(xw):
        if start:
            xw[0, ...] = h
        for t in range(start, time):
            h = rnn_cell(xw[t, ...], h, w_h, xp=xp, nonlinearity=f)  # (B, H)
            xw[t, ...] = h
        return xw  # (T, B, H)
    steps = [h] if start else []
    for t in range(start, time):
        h = rnn_cell(xw[t, ...], h, w_h, xp=xp, nonlinearity=f)  # (B, H)
        steps.append(h)
    return xp.stack(steps, axis=0)  # (T, B, H)


def elman_derivative(hs_tm: Any, nonlinearity: str, *, xp: Any) -> Any:
    """``f'(a_t)`` for every step at once from the states ``(steps, batch, hidden)``: a new
    array (tanh: ``1 - h^2``, no transcendental; relu: ``[h > 0]``)."""
    if nonlinearity == "tanh":
        das = hs_tm * hs_tm  # (T, B, H)
        das *= -1.0
        das += 1.0  # (T, B, H): 1 - h^2, bit for bit as computed per step
        return das
    return xp.astype(hs_tm > 0, hs_tm.dtype)  # (T, B, H): relu' = [a > 0] = [h > 0]


def elman_adjoint(das: Any, g: Any, w_hT: Any, dhs: Any, *, offset: int, xp: Any
                  ) -> tuple[Any, Any]:
    """The adjoint recurrence over one run of steps, last to first: ``das (steps, batch,
    hidden)`` holds ``f'(a_t)`` (from :func:`elman_derivative`, an array the caller owns) and
    takes ``da_t`` in place where the namespace allows; ``g = dL/dh`` at the last step.
    ``dhs (batch, time, hidden)`` (or ``None``) adds each earlier step's output gradient; the
    run starts at global step ``offset``. Returns ``(da (steps, batch, hidden), dL/dh`` before
    the first step``)``."""
    steps = das.shape[0]
    buffered = writeable(das)
    kept = None if buffered else [None] * steps
    for t in range(steps - 1, -1, -1):
        if buffered:
            # In place through the view, not `das[t, ...] *= g`: Python runs that as
            # `das[t] = das[t].__imul__(g)`, whose assignment of the view to itself is a copy
            # kernel a step on CuPy and torch. Basic indexing gives a view on every writeable
            # namespace rnnx runs on (NumPy, CuPy, torch, array-api-strict).
            da = das[t, ...]
            da *= g  # (B, H): da_t
        else:
            da = kept[t] = g * das[t, ...]  # (B, H)
        g = da @ w_hT  # (B, H)
        if dhs is not None and offset + t > 0:
            g += dhs[:, offset + t - 1, :]  # (B, H): `g` is the step's own new array
    return (das if buffered else xp.stack(kept, axis=0)), g


def forward(xp: Any, x: Any, params: dict, state0: dict, m: Any, options: dict,
            workspace: Any) -> tuple[Any, Cache]:
    """:func:`rnnx.functional.rnn_forward` after its checks: without a mask each state is
    written into its own input-projection slot (:func:`elman_states`)."""
    w_x, w_h, b = params["w_x"], params["w_h"], params["b"]
    h0 = state0.get("h0")
    nonlinearity = options.get("nonlinearity", "tanh")
    # Time-major inside: each step then reads and writes one contiguous (B, H) block, and the
    # backward's weight-gradient GEMMs take shifted time ranges without copying. The copy of x
    # this costs is (T, B, F), or (T, B, F+1) with the bias column (_common.time_major_rows):
    # smaller than the (T, B, H) state buffer whenever F < H.
    xw = input_projection(xp, x, w_x, b)  # (T, B, H): x_t W_x + b for all steps, one GEMM
    f = activation(nonlinearity, xp=xp, like=x)
    if m is None:
        hs_tm = elman_states(xw, h0, w_h, f, xp=xp)  # (T, B, H)
    else:
        h = h0 if h0 is not None else xp.zeros(xw.shape[1:], dtype=x.dtype, device=device(x))

        def step(xw_t: Any, state: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
            return (rnn_cell(xw_t, state[0], w_h, xp=xp, nonlinearity=f),), ()

        (hs_tm,), _ = scan_forward(step, xw, (h,), saved_widths=(), mask=m, xp=xp)
    hs = xp.permute_dims(hs_tm, (1, 0, 2))  # (B, T, H): a view of the time-major buffer
    cache = Cache(x, params, state0, hs, (hs_tm,), m, options=options, tuned=True)
    return (hs if m is None else mask_outputs(hs, m, xp=xp)), cache


def backward(xp: Any, cache: Cache, dhs: Any, finals: tuple[Any, ...], state_grads: list | None,
             workspace: Any) -> dict[str, Any]:
    """:func:`rnnx.functional.rnn_backward` of a :func:`forward` cache, after its checks:
    without a mask or observer, the lean adjoint loop (:func:`elman_adjoint`)."""
    x, w_x, w_h, h0, hs, m = (cache.x, cache.params["w_x"], cache.params["w_h"], cache.h0,
                              cache.hs, cache.mask)
    nonlinearity = cache.nonlinearity
    (dh_n,) = finals
    batch, time, hidden = hs.shape
    seq = dhs if dhs is not None and dhs.ndim == 3 else None
    (hs_tm,) = cache.states  # (T, B, H): the forward's own buffer
    w_hT = per_step_transpose(xp, w_h, steps=time)  # (H, H), once, not per step
    if m is None and state_grads is None:
        # A final-state gradient is a last-step gradient: the same lean loop serves both.
        if dhs is None:
            dhs, dh_n = dh_n, None
        g = dhs if seq is None else seq[:, time - 1, :]  # (B, H)
        if dh_n is not None:
            g = g + dh_n  # (B, H): both reach h_T
        das, dh0 = elman_adjoint(elman_derivative(hs_tm, nonlinearity, xp=xp), g, w_hT, seq,
                                 offset=0, xp=xp)
    else:
        if seq is not None and m is not None:
            seq = mask_outputs(seq, m, xp=xp)  # a padded output is a constant zero: no gradient
        g = final_grad(xp, hs, dhs if seq is None else None, dh_n, seq)  # (B, H)

        def step_back(g: tuple[Any, ...], fp: tuple[Any], t: int, i: int
                      ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
            da = fp[0][i, ...]  # (B, H): f'(a_t), a view of the block's own factors
            da *= g[0]  # (B, H): da_t, in place where writeable (kept there by the driver)
            return (da,), (da @ w_hT,)  # (B, H), (B, H)

        (das,), (dh0,) = scan_backward(
            step_back, lambda s, e: (elman_derivative(hs_tm[s:e, ...], nonlinearity, xp=xp),),
            (g,), time=time, row_elements=batch * hidden, stored_widths=(hidden,), seq=seq,
            mask=m, state_grads=state_grads, buffered=writeable(hs_tm), xp=xp)
    dw_x, dw_h, db, dx = weight_grads(xp, x, hs_tm, h0, das, das, w_x)
    return {"dx": dx, "dh0": dh0, "dw_x": dw_x, "dw_h": dw_h, "db": db}
