"""minLSTM: an LSTM whose gates read the input only, with normalised forget and input gates,
trained in parallel over time.

References
----------
- L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi, "Were RNNs all we needed?",
  arXiv:2410.01201 (2024), sec. 3.2 (minLSTM: gates on ``x_t`` only, no output gate, the
  normalised gates ``f'_t``, ``i'_t``); app. B.3 (the candidate activation ``g``) and the
  log-space code there, whose ``diff = softplus(-k_f) - softplus(-k_i)`` is the ``-d`` below.
- S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural Computation 9 (1997): the
  LSTM it is reduced from.

Layout (row-vector convention; no recurrent weights)::

    w_x (features, 3*hidden) = [W_f | W_i | W_h]        b (3*hidden,) = [b_f | b_i | b_h]

Forward, with ``u_t = x_t w_x + b = [u_f, u_i, u_h]`` (one GEMM over all steps)::

    f_t = sigmoid(u_f)    i_t = sigmoid(u_i)    h~_t = g(u_h)   (g as in minGRU)
    f'_t = f_t / (f_t + i_t)    i'_t = i_t / (f_t + i_t) = 1 - f'_t
    h_t = f'_t * h_{t-1} + i'_t * h~_t

The normalisation is evaluated as ``f'_t = sigmoid(d_t)``, ``i'_t = sigmoid(-d_t)`` with
``d_t = log f_t - log i_t = softplus(-u_i) - softplus(-u_f)``: ``f / (f + i)`` directly is
``0 / 0`` once both sigmoids underflow, and loses all relative precision well before where
the sigmoids carry an absolute rather than a relative error.

So ``h_t = a_t h_{t-1} + b_t`` with ``a_t = f'_t``, ``b_t = (1 - f'_t) h~_t``: the linear
scan of :mod:`rnnx.functional.scan`.

Backward, with ``G_t = dL/dh_t`` from the scan's adjoint::

    G_t = dhs_t + f'_{t+1} G_{t+1}                 (G_{T-1} = dhs_{T-1} + dh_n)
    dL/df'_t = G_t (h_{t-1} - h~_t)          (through both f' and i' = 1 - f')
    dL/dd_t  = dL/df'_t * f'_t (1 - f'_t)
    du_f = dL/dd_t * sigmoid(-u_f)       du_i = -dL/dd_t * sigmoid(-u_i)
                                         (d softplus(-u)/du = -sigmoid(-u))
    du_h = G_t (1 - f'_t) g'(u_h)
    dw_x = sum_t x_t^T du_t    db = sum_t du_t    dx_t = du_t w_x^T    dh0 = f'_0 G_0

A padded step (mask off) is ``a_t = 1, b_t = 0``, as for minGRU.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._backend import on_input_device
from ._mask import as_step_mask, mask_outputs
from ._minimal import (
    check_min_inputs,
    g_act,
    g_grad,
    incoming,
    keep_steps,
    previous_states,
    project,
    project_grads,
    sigmoid,
    sigmoid_pair,
    softplus,
)
from ._step import Step, StepGrads, blocks
from ._validate import resolve
from .scan import scan, scan_adjoint

__all__ = ["MinLSTMCache", "MinLSTMGrads", "min_lstm_backward", "min_lstm_forward",
           "min_lstm_step", "min_lstm_step_backward"]

#: Gate blocks of ``w_x`` and ``b``, in order.
GATE_ORDER = ("f", "i", "h")


class MinLSTMCache(NamedTuple):
    """What :func:`min_lstm_backward` needs.

    New arrays: ``hs`` (the states, carried through padded steps), ``f_norm`` (``f'``),
    ``i_norm`` (``i' = 1 - f'``, to full relative precision) and ``h_tilde``, each ``(batch,
    time, hidden)``, and ``u``, the input projection ``(batch,
    time, 3*hidden)``. ``x``, the weights, ``h0`` (``None`` for zeros) and ``mask`` are
    references."""

    x: Any  # (batch, time, features)
    w_x: Any  # (features, 3*hidden)
    b: Any  # (3*hidden,)
    h0: Any  # (batch, hidden) or None
    hs: Any  # (batch, time, hidden)
    f_norm: Any  # (batch, time, hidden)
    i_norm: Any  # (batch, time, hidden)
    h_tilde: Any  # (batch, time, hidden)
    u: list  # [u_f, u_i, u_h], each (batch, time, hidden)
    mask: Any  # (batch, time) bool or None

    @property
    def h_n(self) -> Any:
        """Final state ``(batch, hidden)``: each sample's last valid state under a mask."""
        return self.hs[:, -1, :]


class MinLSTMGrads(NamedTuple):
    """Gradients with the shapes of the corresponding forward arguments."""

    dx: Any  # (batch, time, features)
    dh0: Any  # (batch, hidden)
    dw_x: Any  # (features, 3*hidden)
    db: Any  # (3*hidden,)


def normalised_gates(u_f: Any, u_i: Any, *, xp: Any) -> tuple[Any, Any]:
    """``(f', i') = (f / (f + i), i / (f + i))`` for ``f = sigmoid(u_f)``, ``i =
    sigmoid(u_i)``, as ``sigmoid(+-d)`` with ``d = softplus(-u_i) - softplus(-u_f)`` (see the
    module docstring), each to full relative precision. New arrays."""
    d = softplus(-u_i, xp=xp)  # -log i
    d -= softplus(-u_f, xp=xp)  # + log f
    return sigmoid_pair(d, xp=xp)


def min_lstm_step(p: dict, u: Any, v: None, state: tuple[Any], *, xp: Any
                  ) -> tuple[tuple[Any], tuple[Any, ...]]:
    """One step, in the driver's convention (:class:`rnnx.functional.Step`): from the input
    projection ``u_t = x_t w_x + b`` ``(batch, 3*hidden)`` and the state ``(h_{t-1},)``
    ``(batch, hidden)``; there is no recurrent product (``v`` is ``None``). Returns ``((h_t,),
    (f_norm, i_norm, h_tilde, u))``: the new state and what :func:`min_lstm_step_backward`
    needs."""
    (h_prev,) = state
    u_f, u_i, u_h = blocks(u, 3)  # (B, H) each
    f_norm, i_norm = normalised_gates(u_f, u_i, xp=xp)  # (B, H) each
    h_tilde = g_act(u_h, xp=xp)
    h = f_norm * h_prev + i_norm * h_tilde  # (B, H)
    return (h,), (f_norm, i_norm, h_tilde, u)


def min_lstm_step_backward(p: dict, grads: tuple[Any], saved: tuple[Any, ...],
                           state: tuple[Any], *, xp: Any) -> StepGrads:
    """Backward of :func:`min_lstm_step` from ``(G_t,)``, ``G_t = dL/dh_t`` ``(batch,
    hidden)``: ``du_t`` ``(batch, 3*hidden)`` in ``u``'s blocks ``f, i, h``, no recurrent
    product's gradient, and the direct path ``G_t f'_t``."""
    (g,) = grads
    (h_prev,) = state
    f_norm, i_norm, h_tilde, u = saved
    u_f, u_i, u_h = blocks(u, 3)  # (B, H) each
    dd = g * (h_prev - h_tilde) * f_norm * i_norm  # (B, H): dL/dd
    du_f = dd * sigmoid(-u_f, xp=xp)
    du_i = -dd * sigmoid(-u_i, xp=xp)
    du_h = g * i_norm * g_grad(u_h, h_tilde, xp=xp)
    return StepGrads(du=xp.concat([du_f, du_i, du_h], axis=1), dv=None, dstate=(g * f_norm,))


#: The step for the driver: no recurrent product (``products=()``), the bias ``b`` in the
#: hoisted input projection.
STEP = Step(forward=(min_lstm_step,), backward=(min_lstm_step_backward,), products=())


@on_input_device
def min_lstm_forward(x: Any, w_x: Any, b: Any, h0: Any = None, *, mask: Any = None
                     ) -> tuple[Any, MinLSTMCache]:
    """Run a minLSTM over a whole sequence, every step at once (a linear scan).

    Parameters
    ----------
    x : array (batch, time, features)
    w_x : array (features, 3*hidden)
        Input weights, gate blocks ``f, i, h`` (forget, input, candidate). There are no
        recurrent weights.
    b : array (3*hidden,)
        Bias, same blocks.
    h0 : array (batch, hidden), optional
        Initial state (any sign); zeros (on ``x``'s device) if omitted.
    mask : optional
        Boolean ``(batch, time)`` step mask or integer ``(batch,)`` lengths, in ``x``'s
        namespace on any device, or host data; see :mod:`rnnx.functional._mask`.

    Returns
    -------
    hs : array (batch, time, hidden)
        The state at every step (zero where the mask is off); namespace, device and dtype of
        ``x``.
    cache : MinLSTMCache
        Pass to :func:`min_lstm_backward`; ``cache.h_n`` is the final state ``(batch, hidden)``.
    """
    xp = check_min_inputs(x, w_x, b, h0, 3)
    m = as_step_mask(mask, x=x, xp=xp)
    u = project(xp, x, w_x, b, 3)  # [u_f, u_i, u_h], (B, T, H) each
    f_norm, i_norm = normalised_gates(u[0], u[1], xp=xp)  # (B, T, H) each
    h_tilde = g_act(u[2], xp=xp)  # (B, T, H)
    a = keep_steps(xp, m, f_norm, 1.0)  # (B, T, H): 1 at padded steps
    bi = keep_steps(xp, m, i_norm * h_tilde, 0.0)  # (B, T, H): 0 at padded steps
    hs = scan(a, bi, h0, xp=xp)  # (B, T, H)
    cache = MinLSTMCache(x, w_x, b, h0, hs, f_norm, i_norm, h_tilde, u, m)
    return (hs if m is None else mask_outputs(hs, m, xp=xp)), cache


@on_input_device
def min_lstm_backward(dhs: Any, cache: MinLSTMCache, dh_n: Any = None, *,
                      state_grads: list | None = None) -> MinLSTMGrads:
    """Backpropagation through time for :func:`min_lstm_forward`, every step at once (the
    derivation is in the module docstring).

    Parameters
    ----------
    dhs : array (batch, time, hidden) or (batch, hidden), or None
        Gradient of the returned ``hs``. A 2-D array is the gradient of the final state alone
        (many-to-one). ``None``: only ``dh_n``.
    cache : MinLSTMCache
    dh_n : array (batch, hidden), optional
        Gradient of the final state ``cache.h_n``.
    state_grads : list, optional
        ``time`` slots that receive ``dL/dh_t`` ``(batch, hidden)`` (:mod:`rnnx.diagnostics`).

    Returns
    -------
    MinLSTMGrads
        ``(dx, dh0, dw_x, db)`` in the forward inputs' namespace and device; ``dh0`` is
        returned even when the forward pass started from zeros.
    """
    x, w_x, _, h0, hs, f_norm, i_norm, h_tilde, (u_f, u_i, u_h), m = cache
    xp = resolve({"dhs": dhs, "hs": hs, "dh_n": dh_n})
    seq, g_n = incoming(xp, hs, dhs, dh_n, m)
    a_run = keep_steps(xp, m, f_norm, 1.0)  # the coefficients the forward ran with
    G = scan_adjoint(a_run, seq, g_n, xp=xp)  # (B, T, H): dL/dh_t
    if state_grads is not None:
        for t in range(hs.shape[1]):
            state_grads[t] = G[:, t, :]
    dd = previous_states(xp, hs, h0) - h_tilde  # (B, T, H)
    dd *= G  # dL/df'
    dd *= f_norm
    dd *= i_norm  # dL/dd
    du_f = dd * sigmoid(-u_f, xp=xp)  # (B, T, H)
    du_i = -dd * sigmoid(-u_i, xp=xp)
    du_h = g_grad(u_h, h_tilde, xp=xp)
    du_h *= G
    du_h *= i_norm
    dx, dw_x, db = project_grads(xp, x, w_x,
                                 [keep_steps(xp, m, du, 0.0) for du in (du_f, du_i, du_h)])
    return MinLSTMGrads(dx, a_run[:, 0, :] * G[:, 0, :], dw_x, db)
