"""Elman RNN: one-step cell, the time loop, and backpropagation through time.

References
----------
- J. L. Elman, "Finding structure in time", Cognitive Science 14 (1990): the recurrence
  ``h_t = f(x_t W_x + h_{t-1} W_h + b)``.
- P. J. Werbos, "Backpropagation through time: what it does and how to do it", Proc. IEEE 78
  (1990), eqs. (8)-(11): the adjoint recurrence used by :func:`rnn_backward`.

Derivation (row-vector convention, ``a_t`` the pre-activation, ``g_t = dL/dh_t`` the total
gradient reaching ``h_t``)::

    a_t  = x_t W_x + h_{t-1} W_h + b                     h_t = f(a_t)
    g_t  = dhs_t + da_{t+1} W_h^T                        (g_T = dhs_T)
    da_t = g_t * f'(a_t)      f'= 1 - h_t^2 (tanh),  [h_t > 0] (relu)
    dW_x = sum_t x_t^T da_t   dW_h = sum_t h_{t-1}^T da_t   db = sum_t da_t
    dx_t = da_t W_x^T         dh_0 = da_1 W_h^T

Only the ``g_t``/``da_t`` recurrence is sequential; the sums over ``t`` are single GEMMs over
all ``batch * time`` rows, and ``f'`` is taken from the stored ``h_t`` (no transcendental in
the backward pass).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from .._backend import device, on_input_device, writeable
from ._activations import tanh_for
from ._common import check_grads, final_grad, input_projection, per_step_transpose, weight_grads
from ._loop import scan_backward, scan_forward
from ._mask import as_step_mask, mask_outputs
from ._validate import check_float, check_sequence, check_shape, resolve

__all__ = ["MaskedRNNCache", "RNNCache", "RNNGrads", "rnn_backward", "rnn_cell",
           "rnn_cell_backward", "rnn_forward"]

NONLINEARITIES = ("tanh", "relu")


class RNNCache(NamedTuple):
    """What :func:`rnn_backward` needs, and nothing more.

    ``hs`` is the only array the forward pass allocates for the cache: ``(batch, time, hidden)``.
    ``x``, the weights, ``h0`` and ``mask`` are references to the caller's arrays, not copies
    (``h0`` is ``None`` when the forward pass started from zeros, ``mask`` ``None`` without a
    mask). The pre-activations are not kept: the activation derivative is recovered from ``hs``.
    Without a mask ``hs`` is the array :func:`rnn_forward` returned; with one it holds the
    carried states (the returned outputs are zero where the mask is off).
    """

    x: Any  # (batch, time, features)
    w_x: Any  # (features, hidden)
    w_h: Any  # (hidden, hidden)
    h0: Any  # (batch, hidden) or None for zeros
    hs: Any  # (batch, time, hidden)
    nonlinearity: str
    mask: Any = None  # (batch, time) bool or None

    @property
    def h_n(self) -> Any:
        """Final state ``(batch, hidden)``: each sample's own last valid state under a mask."""
        return self.hs[:, -1, :]


#: The cache of a masked run: the same type since masks became a field (kept as a name for
#: code written against earlier releases).
MaskedRNNCache = RNNCache


class RNNGrads(NamedTuple):
    """Gradients of the loss with the shapes of the corresponding forward arguments."""

    dx: Any  # (batch, time, features)
    dh0: Any  # (batch, hidden)
    dw_x: Any  # (features, hidden)
    dw_h: Any  # (hidden, hidden)
    db: Any  # (hidden,)


def activation(nonlinearity: str, *, xp: Any, like: Any) -> Callable[[Any], Any]:
    """The elementwise ``f`` of an Elman step for arrays of ``like``'s dtype and device in
    ``xp``: ``"relu"`` is ``max(a, 0)``; ``"tanh"`` is the namespace's tanh or, where that is
    slow, an exp-based one accurate to ~2 ulp of 1.0 (:mod:`rnnx.functional._activations`)."""
    if nonlinearity == "tanh":
        return tanh_for(xp, like.dtype)
    # maximum, not clip: the same values (a -0.0 becomes 0.0 either way, NaN stays NaN), and
    # array-api-compat's clip wrapper costs ~10 µs a call against ~1 µs, once per step. The zero
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


def check_rnn_inputs(x: Any, w_x: Any, w_h: Any, b: Any, h0: Any, nonlinearity: str) -> Any:
    """The Elman forward's argument checks (shared with :mod:`rnnx.functional.checkpoint`);
    returns the namespace."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}; got {nonlinearity!r}")
    xp = resolve({"x": x, "w_x": w_x, "w_h": w_h, "b": b, "h0": h0})
    batch, _, features = check_sequence("x", x, xp=xp)
    check_shape("w_x", w_x, (features, None), "(features, hidden)")
    hidden = w_x.shape[1]
    check_shape("w_h", w_h, (hidden, hidden), "(hidden, hidden)")
    check_shape("b", b, (hidden,), "(hidden,)")
    for name, a in (("w_x", w_x), ("w_h", w_h), ("b", b)):
        check_float(name, a, xp=xp, like=("x", x))
    if h0 is not None:
        check_shape("h0", h0, (batch, hidden), "(batch, hidden)")
        check_float("h0", h0, xp=xp, like=("x", x))
    return xp


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


@on_input_device
def rnn_forward(
    x: Any, w_x: Any, w_h: Any, b: Any, h0: Any = None, *, nonlinearity: str = "tanh",
    mask: Any = None,
) -> tuple[Any, RNNCache]:
    """Run an Elman RNN over a whole sequence.

    Parameters
    ----------
    x : array (batch, time, features)
    w_x : array (features, hidden)
    w_h : array (hidden, hidden)
    b : array (hidden,)
    h0 : array (batch, hidden), optional
        Initial state; zeros (on ``x``'s device) if omitted.
    nonlinearity : {"tanh", "relu"}
    mask : optional
        Boolean ``(batch, time)`` step mask (padding on either side) or integer ``(batch,)``
        lengths, in ``x``'s namespace on any device, or host data (see
        :mod:`rnnx.functional._mask`): masked-out steps carry the state and output zeros, and
        the cache's ``h_n`` is each sample's last valid state.

    Returns
    -------
    hs : array (batch, time, hidden)
        Every hidden state ``h_1 .. h_T``; ``hs[:, -1, :]`` is the final state. Same namespace,
        device and dtype as ``x``. Stored time-major, so on strided libraries this is a
        transposed view (as ``torch.nn.RNN(batch_first=True)`` returns); it is also the cache's
        ``hs``, so do not write into it before :func:`rnn_backward`.
    cache : RNNCache
        Pass to :func:`rnn_backward`.

    All arrays must come from one namespace, sit on one device and share one float dtype
    (float32 or float64); anything else raises with a message naming the argument.
    """
    xp = check_rnn_inputs(x, w_x, w_h, b, h0, nonlinearity)
    m = as_step_mask(mask, x=x, xp=xp)
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
    cache = RNNCache(x, w_x, w_h, h0, hs, nonlinearity, m)
    return (hs if m is None else mask_outputs(hs, m, xp=xp)), cache


@on_input_device
def rnn_backward(dhs: Any, cache: RNNCache, dh_n: Any = None, *,
                 state_grads: list | None = None) -> RNNGrads:
    """Backpropagation through time for :func:`rnn_forward`.

    Parameters
    ----------
    dhs : array (batch, time, hidden) or (batch, hidden), or None
        ``dL/dh_t`` for every step. A 2-D array is the gradient of the final state alone (a
        many-to-one loss): the other steps receive no direct gradient and no zeros are built.
    cache : RNNCache
        From the matching :func:`rnn_forward` call.
    dh_n : array (batch, hidden), optional
        Gradient of the final state ``cache.h_n`` (stacked layers); with a 2-D ``dhs`` the two
        add up. ``dhs`` may then be ``None``.
    state_grads : list, optional
        A list of ``time`` slots that receives ``dL/dh_t`` ``(batch, hidden)``, the total
        gradient reaching each step's state (:mod:`rnnx.diagnostics` reads it).

    Returns
    -------
    RNNGrads
        ``(dx, dh0, dw_x, dw_h, db)`` with the shapes of ``x``, ``h0`` ``(batch, hidden)``,
        ``w_x``, ``w_h`` and ``b``, in the namespace and on the device of the forward inputs.
        ``dh0`` is returned even when the forward pass started from zeros (truncated BPTT uses it).
    """
    x, w_x, w_h, h0, hs, nonlinearity, m = cache
    xp = resolve({"dhs": dhs, "hs": hs, "dh_n": dh_n})
    batch, time, hidden = hs.shape
    seq = check_grads(xp, hs, dhs, {"dh_n": dh_n})
    hs_tm = xp.permute_dims(hs, (1, 0, 2))  # (T, B, H): the forward's own buffer again
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
            mask=m, state_grads=state_grads, buffered=writeable(hs_tm), xp=xp, in_factors=1)
    dw_x, dw_h, db, dx = weight_grads(xp, x, hs_tm, h0, das, das, w_x)
    return RNNGrads(dx, dh0, dw_x, dw_h, db)
