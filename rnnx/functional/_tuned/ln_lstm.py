"""Layer-normalised LSTM, tuned for NumPy: the readable step of :mod:`rnnx.functional.ln_lstm`
(whose docstring has the equations) rearranged for fewer, in-place array calls; checked against
it on every test case.

What is tuned: the sigmoids' halving folded into the gains and shifts once per call (exact);
the layer norms and gates updated in place; the backward's gradient-independent factors (the
LSTM's, :mod:`rnnx.functional._tuned.lstm`, with ``tanh(LN(c_t))``) a block of steps at a time.
"""

from __future__ import annotations

from typing import Any

from ..._backend import device, writeable
from .._common import LAYER_NORM_EPS, final_grad, per_step_transpose, time_major_rows, weight_grads
from .._mask import mask_outputs
from .._step import Cache
from ._loop import scan_backward, scan_forward
from .lstm import gate_affine, lstm_backward_factors, lstm_gates

__all__ = ["EPS", "backward", "forward", "layer_norm", "layer_norm_backward", "ln_lstm_cell"]

EPS = LAYER_NORM_EPS


def layer_norm(z: Any, *, xp: Any) -> tuple[Any, Any]:
    """``(zhat, r)``: ``z (..., n)`` normalised over its last axis, and ``r = 1/sqrt(var +
    eps)`` ``(..., 1)``; new arrays in ``z``'s namespace and device."""
    mu = xp.mean(z, axis=-1, keepdims=True)  # (..., 1)
    zhat = z - mu  # (..., n)
    var = xp.mean(zhat * zhat, axis=-1, keepdims=True)  # (..., 1): biased, as the paper's
    r = 1.0 / xp.sqrt(var + EPS)  # (..., 1)
    zhat *= r  # own array, in place
    return zhat, r


def layer_norm_backward(u: Any, zhat: Any, r: Any, *, xp: Any) -> Any:
    """``dL/dz`` of ``zhat = LN(z)`` from ``u = dL/dzhat`` ``(..., n)``:
    ``r * (u - mean(u) - zhat * mean(u * zhat))``, a new array."""
    dz = u - xp.mean(u, axis=-1, keepdims=True)  # (..., n)
    dz -= zhat * xp.mean(u * zhat, axis=-1, keepdims=True)
    dz *= r
    return dz


def ln_lstm_cell(ux_t: Any, h_prev: Any, c_prev: Any, w_h: Any, gamma_h: Any, gamma_c: Any,
                 beta_c: Any, affine: tuple[Any, Any, Any], *, xp: Any, prescaled: bool = False
                 ) -> tuple[Any, Any, tuple[Any, ...]]:
    """One step from the hoisted input side ``ux_t = LN(x_t w_x) + beta_x + beta_h + b``
    ``(batch, 4*hidden)``; ``affine`` from :func:`rnnx.functional.lstm.gate_affine`. Returns
    ``(h_t, c_t, (gates, hhat, rh, chat, rc, s))`` on ``h_prev``'s device. ``prescaled=True``:
    ``ux_t`` and ``gamma_h`` are already multiplied by the affine's ``scale`` (one call fewer a
    step; ``hhat`` is saved as it is either way)."""
    hhat, rh = layer_norm(h_prev @ w_h, xp=xp)  # (B, 4H), (B, 1)
    a = hhat * gamma_h  # (B, 4H)
    a += ux_t
    gates, c = lstm_gates(a, c_prev, affine, xp=xp, prescaled=prescaled)  # (B, 4H), (B, H)
    o = gates[:, 3 * h_prev.shape[1] :]  # (B, H)
    chat, rc = layer_norm(c, xp=xp)  # (B, H), (B, 1)
    lc = chat * gamma_c  # (B, H)
    lc += beta_c
    s = xp.tanh(lc)  # (B, H)
    h = o * s  # (B, H)
    return h, c, (gates, hhat, rh, chat, rc, s)


def forward(xp: Any, x: Any, params: dict, state0: dict, m: Any, options: dict,
            workspace: Any) -> tuple[Any, Cache]:
    """:func:`rnnx.functional.ln_lstm_forward` after its checks (every array new)."""
    w_x, w_h, b, gamma_x, beta_x, gamma_h, beta_h, gamma_c, beta_c = (
        params[k] for k in ("w_x", "w_h", "b", "gamma_x", "beta_x", "gamma_h", "beta_h",
                            "gamma_c", "beta_c"))
    h0, c0 = state0.get("h0"), state0.get("c0")
    batch, time, _ = x.shape
    hidden = w_h.shape[0]
    dev = device(x)
    # The input side for all steps at once: one GEMM and one layer norm over all T*B rows.
    xhat, rx = layer_norm(time_major_rows(xp, x) @ w_x, xp=xp)  # (T*B, 4H), (T*B, 1)
    affine = gate_affine(hidden, xp=xp, dtype=x.dtype, dev=dev)
    # The sigmoids' halving folded into the gains and shifts once per call (exact: powers of
    # two), not applied to a_t every step.
    scale = affine[0]  # (4H,)
    ux = xhat * (gamma_x * scale)  # (T*B, 4H)
    ux += (beta_x + beta_h + b) * scale  # (4H,) once: the three shifts enter a_t only as their sum
    ux = xp.reshape(ux, (time, batch, 4 * hidden))  # (T, B, 4H)
    gamma_hs = gamma_h * scale  # (4H,)
    zeros = None
    if h0 is None or c0 is None:
        zeros = xp.zeros((batch, hidden), dtype=x.dtype, device=dev)  # (B, H)
    h = h0 if h0 is not None else zeros
    c = c0 if c0 is not None else zeros

    def step(ux_t: Any, state: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        h_t, c_t, saved = ln_lstm_cell(ux_t, state[0], state[1], w_h, gamma_hs, gamma_c, beta_c,
                                       affine, xp=xp, prescaled=True)
        return (h_t, c_t), saved

    widths = (4 * hidden, 4 * hidden, 1, hidden, 1, hidden)  # gates, hhat, rh, chat, rc, s
    (hs_tm, cs_tm), saved = scan_forward(step, ux, (h, c), saved_widths=widths, mask=m, xp=xp)
    # (B, T, .) views of the time-major buffers: the layout every caller and the backward use.
    hs, gates, hhat, rh, chat, rc, s = (xp.permute_dims(a, (1, 0, 2)) for a in (hs_tm, *saved))
    extra = (gates, hhat, rh, chat, rc, s, xp.reshape(xhat, (time, batch, 4 * hidden)),
             xp.reshape(rx, (time, batch, 1)))
    out = hs if m is None else mask_outputs(hs, m, xp=xp)
    return out, Cache(x, params, state0, hs, (hs_tm, cs_tm), m, extra=extra, tuned=True)




def ln_lstm_backward_factors(gates: Any, cs: Any, c_init: Any, s: Any, gamma_c: Any, *, xp: Any
                             ) -> tuple[Any, Any]:
    """The gradient-independent factors of a block of steps, time-major: the LSTM's
    (:func:`rnnx.functional.lstm.lstm_backward_factors` with ``s = tanh(LN(c_t))`` in place of
    ``tanh(c_t)``), ``p (steps, batch, 4*hidden)`` with ``da = [K~, K~, K~, G] * p``, and
    ``q (steps, batch, hidden)`` with ``u_c = G * q``: ``q = o (1 - s^2) gamma_c``."""
    p, q = lstm_backward_factors(gates, cs, c_init, xp=xp, out_tanh=s)
    q *= gamma_c  # (T, B, H): own array
    return p, q


def ln_lstm_cell_backward(g_h: Any, g_c: Any, p_t: Any, q_t: Any, f_t: Any, chat_t: Any,
                          rc_t: Any, hhat_t: Any, rh_t: Any, gamma_h: Any, w_hT: Any, *, xp: Any
                          ) -> tuple[Any, Any, Any, Any]:
    """Backward of one step: from ``G = dL/dh_t``, ``K = dL/dc_t`` ``(batch, hidden)`` and the
    step's factors, ``(da_t (batch, 4*hidden), dhw_t (batch, 4*hidden), dL/dh_{t-1},
    dL/dc_{t-1})``. ``p_t``, an array of the caller's own, takes ``da_t`` where the namespace
    allows; the other three are new arrays. ``w_hT`` is ``w_h`` transposed once."""
    k = layer_norm_backward(g_h * q_t, chat_t, rc_t, xp=xp)  # (B, H): through LN(c_t)
    k += g_c  # (B, H): K~, the total dL/dc_t
    da = p_t  # the loop's own factors: da_t in place where writeable, no copy a step
    da *= xp.concat([k, k, k, g_h], axis=1)  # (B, 4H)
    dhw = layer_norm_backward(da * gamma_h, hhat_t, rh_t, xp=xp)  # (B, 4H)
    return da, dhw, dhw @ w_hT, k * f_t  # (B, 4H), (B, 4H), (B, H), (B, H)


def backward(xp: Any, cache: Cache, dhs: Any, finals: tuple[Any, ...], state_grads: list | None,
             workspace: Any) -> dict[str, Any]:
    """:func:`rnnx.functional.ln_lstm_backward` of a :func:`forward` cache, after its checks."""
    x, p, hs, m = cache.x, cache.params, cache.hs, cache.mask
    w_x, w_h, gamma_x, gamma_h, gamma_c = (p[k] for k in ("w_x", "w_h", "gamma_x", "gamma_h",
                                                          "gamma_c"))
    h0, c0 = cache.h0, cache.c0
    gates, hhat, rh, chat, rc, s, xhat, rx = cache.extra
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
    hs_tm, cs_tm = cache.states
    g_tm, hh_tm, rh_tm, ch_tm, rc_tm, s_tm = (
        xp.permute_dims(a, (1, 0, 2)) for a in (gates, hhat, rh, chat, rc, s))
    f = g_tm[:, :, hidden : 2 * hidden]  # (T, B, H)

    def factors(s0: int, e: int) -> tuple[Any, Any]:
        c_before = c_init if s0 == 0 else cs_tm[s0 - 1, ...]  # (B, H): c_{s-1}
        return ln_lstm_backward_factors(g_tm[s0:e, ...], cs_tm[s0:e, ...], c_before,
                                        s_tm[s0:e, ...], gamma_c, xp=xp)

    def step_back(g: tuple[Any, ...], pq: tuple[Any, Any], t: int, i: int
                  ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        da, dhw, gh, gc = ln_lstm_cell_backward(
            g[0], g[1], pq[0][i, ...], pq[1][i, ...], f[t, ...], ch_tm[t, ...], rc_tm[t, ...],
            hh_tm[t, ...], rh_tm[t, ...], gamma_h, w_hT, xp=xp)
        return (da, dhw, g[0]), (gh, gc)

    (da, dhw, gs), (g_h, g_c) = scan_backward(
        step_back, factors, (g_h, g_c), time=time, row_elements=batch * 4 * hidden,
        stored_widths=(4 * hidden, 4 * hidden, hidden), seq=seq, mask=m,
        state_grads=state_grads, buffered=writeable(hs_tm), xp=xp)
    rows = time * batch
    da2 = xp.reshape(da, (rows, 4 * hidden))  # (T*B, 4H)
    db = xp.sum(da2, axis=0)  # (4H,): also dbeta_x and dbeta_h, which enter a_t as b does
    dgamma_h = xp.sum(da2 * xp.reshape(hh_tm, (rows, 4 * hidden)), axis=0)  # (4H,)
    xhat2 = xp.reshape(xhat, (rows, 4 * hidden))  # (T*B, 4H)
    dgamma_x = xp.sum(da2 * xhat2, axis=0)  # (4H,)
    dxw = layer_norm_backward(da2 * gamma_x, xhat2, xp.reshape(rx, (rows, 1)), xp=xp)  # (T*B, 4H)
    dlc = gs * (g_tm[:, :, 3 * hidden :] * (1.0 - s_tm * s_tm))  # (T, B, H): dL/dLN(c_t)
    dgamma_c = xp.sum(xp.reshape(dlc * ch_tm, (rows, hidden)), axis=0)  # (H,)
    dbeta_c = xp.sum(xp.reshape(dlc, (rows, hidden)), axis=0)  # (H,)
    dxw_tm = xp.reshape(dxw, (time, batch, 4 * hidden))  # (T, B, 4H)
    dw_x, dw_h, _, dx = weight_grads(xp, x, hs_tm, h0, dxw_tm, dhw, w_x)
    # db, dbeta_x and dbeta_h are equal but separate arrays: a caller may update one in place.
    return {"dx": dx, "dh0": g_h, "dc0": g_c, "dw_x": dw_x, "dw_h": dw_h, "db": db,
            "dgamma_x": dgamma_x, "dbeta_x": xp.asarray(db, copy=True), "dgamma_h": dgamma_h,
            "dbeta_h": xp.asarray(db, copy=True), "dgamma_c": dgamma_c, "dbeta_c": dbeta_c}
