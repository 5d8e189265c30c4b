"""Elman RNN: its step, the step's backward, and the whole-sequence forward and backward.

References
----------
- J. L. Elman, "Finding structure in time", Cognitive Science 14 (1990): the recurrence
  ``h_t = f(x_t W_x + h_{t-1} W_h + b)``.
- P. J. Werbos, "Backpropagation through time: what it does and how to do it", Proc. IEEE 78
  (1990), eqs. (8)-(11): the adjoint recurrence.

Step (row-vector convention; the driver makes ``u_t = x_t W_x + b``, hoisted over all steps,
and ``v_t = h_{t-1} W_h``)::

    a_t = u_t + v_t          h_t = f(a_t),   f = tanh or relu

Backward, ``G_t = dL/dh_t`` the total gradient reaching ``h_t``::

    da_t = G_t * f'(a_t)     f' = 1 - h_t^2 (tanh),  [h_t > 0] (relu)
    G_{t-1} = dhs_{t-1} + da_t W_h^T
    dW_x = sum_t x_t^T da_t   dW_h = sum_t h_{t-1}^T da_t   db = sum_t da_t   dx_t = da_t W_x^T

``f'`` is read from the stored ``h_t``: no transcendental in the backward pass. The sums over
``t`` are the driver's, one GEMM each over all ``batch * time`` rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._backend import on_input_device
from ._activations import relu
from ._common import check_grads
from ._loop import drive_backward, drive_forward
from ._mask import as_step_mask
from ._step import Cache, Step, StepGrads, Tuned
from ._tuned import rnn as tuned
from ._validate import check_float, check_sequence, check_shape, resolve

__all__ = ["MaskedRNNCache", "RNNCache", "RNNGrads", "rnn_backward", "rnn_forward", "rnn_step",
           "rnn_step_backward"]

NONLINEARITIES = ("tanh", "relu")


def rnn_step(p: dict, u: Any, v: Any, state: tuple[Any], *, xp: Any,
             nonlinearity: str = "tanh") -> tuple[tuple[Any], tuple[Any]]:
    """One step: ``h_t = f(u_t + v_t)``, from ``u_t = x_t W_x + b`` and ``v_t = h_{t-1} W_h``
    ``(batch, hidden)``. Returns ``((h_t,), (h_t,))``: the new state and what the backward
    reads."""
    a = u + v  # (B, H)
    h = xp.tanh(a) if nonlinearity == "tanh" else relu(a, xp=xp)  # (B, H)
    return (h,), (h,)


def rnn_step_backward(p: dict, grads: tuple[Any], saved: tuple[Any], state: tuple[Any], *,
                      xp: Any, nonlinearity: str = "tanh") -> StepGrads:
    """Backward of :func:`rnn_step`: ``da_t = G_t * f'(a_t)`` from ``G_t = dL/dh_t`` and the
    saved ``h_t`` (``f'`` from ``h_t``: ``1 - h_t^2`` for tanh, ``[h_t > 0]`` for relu)."""
    (G,) = grads
    (h,) = saved
    f_prime = 1.0 - h * h if nonlinearity == "tanh" else xp.astype(h > 0, h.dtype)  # (B, H)
    da = G * f_prime  # (B, H)
    return StepGrads(du=da, dv=da, dstate=(None,))


STEP = Step(forward=(rnn_step,), backward=(rnn_step_backward,), tuned=Tuned(tuned.forward, tuned.backward))

#: The cache :func:`rnn_forward` returns: every cell's :class:`rnnx.functional.Cache`, under the
#: names code written against earlier releases imports.
RNNCache = MaskedRNNCache = Cache


class RNNGrads(NamedTuple):
    """Gradients of the loss with the shapes of the corresponding forward arguments."""

    dx: Any  # (batch, time, features)
    dh0: Any  # (batch, hidden)
    dw_x: Any  # (features, hidden)
    dw_h: Any  # (hidden, hidden)
    db: Any  # (hidden,)


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


@on_input_device
def rnn_forward(
    x: Any, w_x: Any, w_h: Any, b: Any, h0: Any = None, *, nonlinearity: str = "tanh",
    mask: Any = None,
) -> tuple[Any, Any]:
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
    cache : Cache
        Pass to :func:`rnn_backward` (:class:`rnnx.functional.Cache`).

    All arrays must come from one namespace, sit on one device and share one float dtype
    (float32 or float64); anything else raises with a message naming the argument. On JAX the
    whole call is compiled (``jax.lax.scan`` under ``jax.jit``, once per shape).
    """
    xp = check_rnn_inputs(x, w_x, w_h, b, h0, nonlinearity)
    m = as_step_mask(mask, x=x, xp=xp)
    return drive_forward(STEP, xp, x, {"w_x": w_x, "w_h": w_h, "b": b}, {"h0": h0}, m,
                         gates=1, options={"nonlinearity": nonlinearity})


@on_input_device
def rnn_backward(dhs: Any, cache: Any, dh_n: Any = None, *,
                 state_grads: list | None = None) -> RNNGrads:
    """Backpropagation through time for :func:`rnn_forward`.

    Parameters
    ----------
    dhs : array (batch, time, hidden) or (batch, hidden), or None
        ``dL/dh_t`` for every step. A 2-D array is the gradient of the final state alone (a
        many-to-one loss): the other steps receive no direct gradient and no zeros are built.
    cache : Cache
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
    xp = resolve({"dhs": dhs, "hs": cache.hs, "dh_n": dh_n})
    check_grads(xp, cache.hs, dhs, {"dh_n": dh_n})
    grads = drive_backward(STEP, xp, cache, dhs, (dh_n,), gates=1, state_grads=state_grads)
    return RNNGrads(**grads)
