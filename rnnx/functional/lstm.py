"""LSTM: its step, the step's backward, and the whole-sequence forward and backward.

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

Step, with ``a_t = u_t + v_t``, ``u_t = x_t w_x + b`` (the driver's, hoisted over all steps)
and ``v_t = h_{t-1} w_h`` (the driver's recurrent product), split into the four gate blocks::

    i = sigmoid(a_i)  f = sigmoid(a_f)  g = tanh(a_g)  o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g         h_t = o * tanh(c_t)

Backward, ``G_t = dL/dh_t`` and ``K_t = dL/dc_t`` the total gradients reaching the states::

    K~   = K_t + G_t * o * (1 - tanh(c_t)^2)                    (the total dL/dc_t)
    da_i = K~ * g * i(1-i)   da_f = K~ * c_{t-1} * f(1-f)   da_g = K~ * i * (1-g^2)
    da_o = G_t * tanh(c_t) * o(1-o)
    G_{t-1} = dhs_{t-1} + da_t w_h^T       K_{t-1} = K~ * f
    dw_x = sum_t x_t^T da_t   dw_h = sum_t h_{t-1}^T da_t   db = sum_t da_t   dx_t = da_t w_x^T

Only the ``G``/``K`` recurrence is sequential; the sums are the driver's, one GEMM each over
all ``batch * time`` rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._backend import on_input_device
from ._activations import sigmoid
from ._common import check_grads, check_inputs
from ._loop import drive_backward, drive_forward
from ._mask import as_step_mask
from ._step import Cache, Step, StepGrads, Tuned, blocks
from ._tuned import lstm as tuned
from ._validate import resolve
from ._workspace import Workspace

__all__ = ["LSTMCache", "LSTMGrads", "lstm_backward", "lstm_forward", "lstm_step",
           "lstm_step_backward"]


def lstm_step(p: dict, u: Any, v: Any, state: tuple[Any, Any], *, xp: Any
              ) -> tuple[tuple[Any, Any], tuple[Any, ...]]:
    """One step from ``u_t = x_t w_x + b`` and ``v_t = h_{t-1} w_h`` ``(batch, 4*hidden)`` and
    the states ``(h_{t-1}, c_{t-1})``. Returns ``((h_t, c_t), (i, f, g, o, c_t))``."""
    _, c_prev = state
    a_i, a_f, a_g, a_o = blocks(u + v, 4)  # (B, H) each
    i, f, g, o = sigmoid(a_i, xp=xp), sigmoid(a_f, xp=xp), xp.tanh(a_g), sigmoid(a_o, xp=xp)
    c = f * c_prev + i * g  # (B, H)
    h = o * xp.tanh(c)  # (B, H)
    return (h, c), (i, f, g, o, c)


def lstm_step_backward(p: dict, grads: tuple[Any, Any], saved: tuple[Any, ...],
                       state: tuple[Any, Any], *, xp: Any) -> StepGrads:
    """Backward of :func:`lstm_step` from ``G_t = dL/dh_t``, ``K_t = dL/dc_t``: ``da_t``
    ``(batch, 4*hidden)`` (the gradient of both ``u_t`` and ``v_t``) and ``K_{t-1} = K~ f``."""
    G, K = grads
    i, f, g, o, c = saved
    _, c_prev = state
    tanh_c = xp.tanh(c)  # (B, H)
    K = K + G * o * (1.0 - tanh_c * tanh_c)  # (B, H): K~, the total dL/dc_t
    da_i = K * g * i * (1.0 - i)
    da_f = K * c_prev * f * (1.0 - f)
    da_g = K * i * (1.0 - g * g)
    da_o = G * tanh_c * o * (1.0 - o)
    da = xp.concat([da_i, da_f, da_g, da_o], axis=1)  # (B, 4H)
    return StepGrads(du=da, dv=da, dstate=(None, K * f))


STEP = Step(forward=(lstm_step,), backward=(lstm_step_backward,), tuned=Tuned(tuned.forward, tuned.backward))

#: The cache :func:`lstm_forward` returns (:class:`rnnx.functional.Cache`).
LSTMCache = Cache


class LSTMGrads(NamedTuple):
    """Gradients with the shapes of the corresponding forward arguments."""

    dx: Any  # (batch, time, features)
    dh0: Any  # (batch, hidden)
    dc0: Any  # (batch, hidden)
    dw_x: Any  # (features, 4*hidden)
    dw_h: Any  # (hidden, 4*hidden)
    db: Any  # (4*hidden,)


@on_input_device
def lstm_forward(
    x: Any, w_x: Any, w_h: Any, b: Any, h0: Any = None, c0: Any = None, *, mask: Any = None,
    workspace: Workspace | None = None,
) -> tuple[Any, Cache]:
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
        Buffers kept across calls (:class:`rnnx.functional.Workspace`): the cache's arrays
        other than ``hs`` are written into it, overwritten by the next forward given the same
        workspace, so a cache made with one is valid until then. ``hs`` is always a new
        array. Ignored for JAX.

    Returns
    -------
    hs : array (batch, time, hidden)
        The hidden state at every step (zero where the mask is off). Same namespace, device and
        dtype as ``x``.
    cache : Cache
        Pass to :func:`lstm_backward`; ``cache.h_n`` and ``cache.c_n`` are the final states
        ``(batch, hidden)``.
    """
    xp = check_inputs(x, w_x, w_h, {"b": b}, h0, c0, 4)
    m = as_step_mask(mask, x=x, xp=xp)
    return drive_forward(STEP, xp, x, {"w_x": w_x, "w_h": w_h, "b": b}, {"h0": h0, "c0": c0},
                         m, gates=4, workspace=workspace)


@on_input_device
def lstm_backward(dhs: Any, cache: Cache, dh_n: Any = None, dc_n: Any = None, *,
                  state_grads: list | None = None, workspace: Workspace | None = None
                  ) -> LSTMGrads:
    """Backpropagation through time for :func:`lstm_forward`.

    Parameters
    ----------
    dhs : array (batch, time, hidden) or (batch, hidden), or None
        Gradient of the returned ``hs``. A 2-D array is the gradient of the final hidden state
        alone (many-to-one; without a mask that is ``hs[:, -1]``). ``None``: no output gradient
        (then ``dh_n`` or ``dc_n`` must be given).
    cache : Cache
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
    xp = resolve({"dhs": dhs, "hs": cache.hs, "dh_n": dh_n, "dc_n": dc_n})
    check_grads(xp, cache.hs, dhs, {"dh_n": dh_n, "dc_n": dc_n})
    return LSTMGrads(**drive_backward(STEP, xp, cache, dhs, (dh_n, dc_n), gates=4,
                                      state_grads=state_grads, workspace=workspace))
