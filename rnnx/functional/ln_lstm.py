"""Layer-normalised LSTM: its step, the step's backward, its own input side, and the
whole-sequence forward and backward.

References
----------
- J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer normalization", arXiv:1607.06450 (2016),
  sec. 3.1 (eq. 4) and the LSTM variant of sec. A ("Layer-normalized LSTM"): each of the two
  summed inputs normalised separately, and the cell state before its output ``tanh``.
- S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural Computation 9 (1997); the
  gate order and layout are those of :mod:`rnnx.functional.lstm` (``i, f, g, o``).

Equations (row vectors; ``LN`` over the whole last axis, biased variance, ``eps = 1e-5``)::

    LN(z; gamma, beta) = gamma * zhat + beta,   zhat = (z - mean(z)) * r,  r = 1/sqrt(var(z) + eps)
    a_t = LN(h_{t-1} w_h; gamma_h, beta_h) + LN(x_t w_x; gamma_x, beta_x) + b     (4H: i, f, g, o)
    i, f, o = sigmoid(a_i, a_f, a_o)    g = tanh(a_g)
    c_t = f * c_{t-1} + i * g           h_t = o * tanh(LN(c_t; gamma_c, beta_c))

The input side does not depend on the recurrence: ``u_t = LN(x_t w_x) gamma_x + beta_x +
beta_h + b`` is this cell's own input side (:func:`ln_lstm_input`), computed by the driver for
all steps at once on the projection ``x w_x``; the step gets it with ``v_t = h_{t-1} w_h``.

Backward. The layer norm's adjoint: for ``y = LN(z)`` and ``dy = dL/dy``, with ``u = gamma * dy``,
``dL/dz = r * (u - mean(u) - zhat * mean(u * zhat))``, ``dL/dgamma = sum dy * zhat`` and
``dL/dbeta = sum dy``. With ``G_t = dL/dh_t`` and ``K_t = dL/dc_t`` the totals reaching the
states, ``s_t = tanh(LN(c_t))``::

    dlc  = G_t * o * (1 - s_t^2)                                  (dL/dLN(c_t))
    K~   = K_t + LN-adjoint of (dlc * gamma_c)                    (the total dL/dc_t)
    da   = [K~ g i(1-i), K~ c_{t-1} f(1-f), K~ i (1-g^2), G_t s_t o(1-o)]
    dv_t = LN-adjoint of (da * gamma_h)                           (dL/d(h_{t-1} w_h))
    G_{t-1} = dhs_{t-1} + dv_t w_h^T        K_{t-1} = K~ * f

and, summed over steps and batch rows by the driver (one pass or one GEMM each)::

    db = dbeta_x = dbeta_h = sum da            dgamma_h = sum da * hhat    dgamma_x = sum da * xhat
    dgamma_c = sum dlc * chat                  dbeta_c  = sum dlc
    dxw = LN-adjoint of (da * gamma_x)         dw_x = X^T dxw   dx = dxw w_x^T
    dw_h = sum_t h_{t-1}^T dv_t
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._backend import on_input_device
from ._activations import sigmoid
from ._common import LAYER_NORM_EPS, check_grads, check_inputs
from ._loop import drive_backward, drive_forward
from ._mask import as_step_mask
from ._step import Cache, Step, StepGrads, Tuned, blocks
from ._tuned import ln_lstm as tuned
from ._validate import resolve

__all__ = ["EPS", "LNLSTMCache", "LNLSTMGrads", "layer_norm", "layer_norm_backward",
           "ln_lstm_backward", "ln_lstm_forward", "ln_lstm_input", "ln_lstm_input_backward",
           "ln_lstm_step", "ln_lstm_step_backward"]

#: The layer norm's variance floor, as in the paper's reference code and torch.nn.LayerNorm.
EPS = LAYER_NORM_EPS


def layer_norm(z: Any, *, xp: Any) -> tuple[Any, Any]:
    """``(zhat, r)``: ``z (..., n)`` normalised over its last axis, and ``r = 1/sqrt(var +
    eps)`` ``(..., 1)``; new arrays in ``z``'s namespace and device."""
    centred = z - xp.mean(z, axis=-1, keepdims=True)  # (..., n)
    r = 1.0 / xp.sqrt(xp.mean(centred * centred, axis=-1, keepdims=True) + EPS)  # (..., 1)
    return centred * r, r


def layer_norm_backward(u: Any, zhat: Any, r: Any, *, xp: Any) -> Any:
    """``dL/dz`` of ``zhat = LN(z)`` from ``u = dL/dzhat`` ``(..., n)``:
    ``r * (u - mean(u) - zhat * mean(u * zhat))``, a new array."""
    mean_u = xp.mean(u, axis=-1, keepdims=True)  # (..., 1)
    return r * (u - mean_u - zhat * xp.mean(u * zhat, axis=-1, keepdims=True))


def ln_lstm_input(p: dict, xw: Any, *, xp: Any) -> tuple[Any, tuple[Any, Any]]:
    """The input side ``u = LN(x w_x) gamma_x + beta_x + beta_h + b`` of all steps at once,
    from the projection rows ``xw (rows, 4*hidden)``. Returns ``(u, (xhat, r_x))``."""
    xhat, r_x = layer_norm(xw, xp=xp)  # (rows, 4H), (rows, 1)
    return xhat * p["gamma_x"] + p["beta_x"] + p["beta_h"] + p["b"], (xhat, r_x)


def ln_lstm_input_backward(p: dict, du: Any, saved: tuple[Any, Any], *, xp: Any
                           ) -> tuple[Any, dict[str, Any]]:
    """Adjoint of :func:`ln_lstm_input`: ``dL/d(x w_x)`` and the per-row contributions to the
    gradients of ``gamma_x`` and the three shifts (each enters ``u`` as ``b`` does)."""
    xhat, r_x = saved
    dxw = layer_norm_backward(du * p["gamma_x"], xhat, r_x, xp=xp)  # (rows, 4H)
    return dxw, {"gamma_x": du * xhat, "beta_x": du, "beta_h": du, "b": du}


def ln_lstm_step(p: dict, u: Any, v: Any, state: tuple[Any, Any], *, xp: Any
                 ) -> tuple[tuple[Any, Any], tuple[Any, ...]]:
    """One step from the input side ``u_t`` and ``v_t = h_{t-1} w_h`` ``(batch, 4*hidden)``.
    Returns ``((h_t, c_t), (i, f, g, o, c_t, hhat, r_h, chat, r_c, s))``."""
    _, c_prev = state
    hhat, r_h = layer_norm(v, xp=xp)  # (B, 4H), (B, 1)
    a_i, a_f, a_g, a_o = blocks(hhat * p["gamma_h"] + u, 4)  # (B, H) each
    i, f, g, o = sigmoid(a_i, xp=xp), sigmoid(a_f, xp=xp), xp.tanh(a_g), sigmoid(a_o, xp=xp)
    c = f * c_prev + i * g  # (B, H)
    chat, r_c = layer_norm(c, xp=xp)  # (B, H), (B, 1)
    s = xp.tanh(chat * p["gamma_c"] + p["beta_c"])  # (B, H)
    h = o * s  # (B, H)
    return (h, c), (i, f, g, o, c, hhat, r_h, chat, r_c, s)


def ln_lstm_step_backward(p: dict, grads: tuple[Any, Any], saved: tuple[Any, ...],
                          state: tuple[Any, Any], *, xp: Any) -> StepGrads:
    """Backward of :func:`ln_lstm_step` from ``G_t = dL/dh_t``, ``K_t = dL/dc_t``."""
    G, K = grads
    i, f, g, o, _, hhat, r_h, chat, r_c, s = saved
    _, c_prev = state
    dlc = G * o * (1.0 - s * s)  # (B, H): dL/dLN(c_t)
    K = K + layer_norm_backward(dlc * p["gamma_c"], chat, r_c, xp=xp)  # (B, H): K~
    da_i = K * g * i * (1.0 - i)
    da_f = K * c_prev * f * (1.0 - f)
    da_g = K * i * (1.0 - g * g)
    da_o = G * s * o * (1.0 - o)
    da = xp.concat([da_i, da_f, da_g, da_o], axis=1)  # (B, 4H)
    dv = layer_norm_backward(da * p["gamma_h"], hhat, r_h, xp=xp)  # (B, 4H)
    return StepGrads(du=da, dv=dv, dstate=(None, K * f),
                     dparams={"gamma_h": da * hhat, "gamma_c": dlc * chat, "beta_c": dlc})


STEP = Step(forward=(ln_lstm_step,), backward=(ln_lstm_step_backward,), input_bias=None,
            input=ln_lstm_input, input_backward=ln_lstm_input_backward,
            tuned=Tuned(tuned.forward, tuned.backward))

#: The cache :func:`ln_lstm_forward` returns (:class:`rnnx.functional.Cache`).
LNLSTMCache = Cache


class LNLSTMGrads(NamedTuple):
    """Gradients with the shapes of the corresponding forward arguments."""

    dx: Any  # (batch, time, features)
    dh0: Any  # (batch, hidden)
    dc0: Any  # (batch, hidden)
    dw_x: Any  # (features, 4*hidden)
    dw_h: Any  # (hidden, 4*hidden)
    db: Any  # (4*hidden,)
    dgamma_x: Any  # (4*hidden,)
    dbeta_x: Any  # (4*hidden,)
    dgamma_h: Any  # (4*hidden,)
    dbeta_h: Any  # (4*hidden,)
    dgamma_c: Any  # (hidden,)
    dbeta_c: Any  # (hidden,)


_VECTORS = ("b", "gamma_x", "beta_x", "gamma_h", "beta_h", "gamma_c", "beta_c")


@on_input_device
def ln_lstm_forward(x: Any, w_x: Any, w_h: Any, b: Any, gamma_x: Any, beta_x: Any,
                    gamma_h: Any, beta_h: Any, gamma_c: Any, beta_c: Any, h0: Any = None,
                    c0: Any = None, *, mask: Any = None) -> tuple[Any, Cache]:
    """Run a layer-normalised LSTM over a whole sequence.

    Parameters
    ----------
    x : array (batch, time, features)
    w_x : array (features, 4*hidden)
        Input weights, gate blocks ``i, f, g, o``.
    w_h : array (hidden, 4*hidden)
        Recurrent weights, same blocks.
    b : array (4*hidden,)
        Gate bias.
    gamma_x, beta_x, gamma_h, beta_h : array (4*hidden,)
        Gains and shifts of the input-side and recurrent-side layer norms.
    gamma_c, beta_c : array (hidden,)
        Gain and shift of the cell state's layer norm.
    h0, c0 : array (batch, hidden), optional
        Initial states; zeros (on ``x``'s device) if omitted.
    mask : optional
        Boolean ``(batch, time)`` step mask or integer ``(batch,)`` lengths (see
        :mod:`rnnx.functional._mask`): masked-out steps carry the state and output zeros.

    Returns
    -------
    hs : array (batch, time, hidden)
        The hidden state at every step (zero where the mask is off), in ``x``'s namespace,
        device and dtype.
    cache : Cache
        Pass to :func:`ln_lstm_backward`; ``cache.h_n``/``cache.c_n`` are the final states.
    """
    vectors = dict(zip(_VECTORS, (b, gamma_x, beta_x, gamma_h, beta_h, gamma_c, beta_c)))
    xp = check_inputs(x, w_x, w_h, vectors, h0, c0, 4, widths={"gamma_c": 1, "beta_c": 1})
    m = as_step_mask(mask, x=x, xp=xp)
    return drive_forward(STEP, xp, x, {"w_x": w_x, "w_h": w_h, **vectors},
                         {"h0": h0, "c0": c0}, m, gates=4)


@on_input_device
def ln_lstm_backward(dhs: Any, cache: Cache, dh_n: Any = None, dc_n: Any = None, *,
                     state_grads: list | None = None) -> LNLSTMGrads:
    """Backpropagation through time for :func:`ln_lstm_forward`.

    Parameters
    ----------
    dhs : array (batch, time, hidden) or (batch, hidden), or None
        Gradient of the returned ``hs``; a 2-D array is the final hidden state's alone.
    cache : Cache
    dh_n, dc_n : array (batch, hidden), optional
        Gradients of the final states ``cache.h_n``/``cache.c_n``.
    state_grads : list, optional
        ``time`` slots that receive ``dL/dh_t`` ``(batch, hidden)`` (:mod:`rnnx.diagnostics`).

    Returns
    -------
    LNLSTMGrads
        Gradients of every forward argument, in the forward inputs' namespace and device;
        ``dh0``/``dc0`` are returned even when the forward pass started from zeros.
    """
    xp = resolve({"dhs": dhs, "hs": cache.hs, "dh_n": dh_n, "dc_n": dc_n})
    check_grads(xp, cache.hs, dhs, {"dh_n": dh_n, "dc_n": dc_n})
    return LNLSTMGrads(**drive_backward(STEP, xp, cache, dhs, (dh_n, dc_n), gates=4,
                                        state_grads=state_grads))
