"""minGRU: a GRU whose gates read the input only, trained in parallel over time.

References
----------
- L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi, "Were RNNs all we needed?",
  arXiv:2410.01201 (2024), sec. 3.1 (minGRU), eqs. for ``z_t``, ``h~_t``, ``h_t``; app. B.3
  (the candidate activation ``g`` that keeps ``h~_t`` positive for the log-space scan).
- K. Cho et al., "Learning phrase representations using RNN encoder-decoder for statistical
  machine translation", EMNLP 2014: the GRU it is reduced from.

Layout (row-vector convention; no recurrent weights: the gates do not read ``h_{t-1}``)::

    w_x (features, 2*hidden) = [W_z | W_h]        b (2*hidden,) = [b_z | b_h]

Forward, with ``u_t = x_t w_x + b = [u_z, u_h]`` (one GEMM over all steps)::

    z_t  = sigmoid(u_z)                 h~_t = g(u_h),   g(a) = a + 1/2 (a >= 0), sigmoid(a) (a < 0)
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

so ``h_t = a_t h_{t-1} + b_t`` with ``a_t = 1 - z_t`` and ``b_t = z_t h~_t``, all known before
the recurrence starts: :func:`min_gru_forward` computes it with the linear scan of
:mod:`rnnx.functional.scan` over the whole sequence.

Backward. With ``G_t = dL/dh_t`` the total gradient reaching ``h_t``, the scan's adjoint
(:func:`rnnx.functional.scan.scan_adjoint`, a reverse scan of the same form) gives::

    G_t = dhs_t + (1 - z_{t+1}) G_{t+1}                 (G_{T-1} = dhs_{T-1} + dh_n)
    dL/dz_t  = G_t (h~_t - h_{t-1})       dL/dh~_t = G_t z_t
    du_z = dL/dz_t * z_t (1 - z_t)       du_h = dL/dh~_t * g'(u_h),  g'(a) = 1 (a >= 0),
                                                                      g(a)(1 - g(a)) (a < 0)
    dw_x = sum_t x_t^T du_t    db = sum_t du_t    dx_t = du_t w_x^T    dh0 = (1 - z_0) G_0

Every line but ``G`` is elementwise over all steps at once, and ``G`` is a scan: the backward is
parallel in time as the forward is. A padded step (mask off) is ``a_t = 1, b_t = 0``: the state
and ``G`` pass through it and its ``du`` is zero; its output is zero, as for every cell.

The step form (:func:`min_gru_step`, :func:`min_gru_step_backward`, :data:`STEP`) is the same
cell one step at a time, run by the one time-loop driver as every cell is (``cell="min_gru"``
with ``form="step"``, :meth:`rnnx.functional.registry.Cell.run`): ``(u_t, h_{t-1}) -> h_t``
and its adjoint. The two forms agree to rounding (tests/test_functional_min_rnn.py).
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
    sigmoid_pair,
)
from ._step import Step, StepGrads, blocks
from ._validate import resolve
from .scan import scan, scan_adjoint

__all__ = ["MinGRUCache", "MinGRUGrads", "min_gru_backward", "min_gru_forward", "min_gru_step",
           "min_gru_step_backward"]

#: Gate blocks of ``w_x`` and ``b``, in order.
GATE_ORDER = ("z", "h")


class MinGRUCache(NamedTuple):
    """What :func:`min_gru_backward` needs.

    New arrays: ``hs`` (the states, carried through padded steps), ``z`` (the update gate),
    ``keep`` (``1 - z``, to full relative precision where ``z`` is near 1), ``h_tilde`` (the
    candidate) and ``u_h``, the candidate's pre-activation (its sign selects ``g'``'s branch),
    each ``(batch, time, hidden)``. ``x``, the
    weights, ``h0`` (``None`` for zeros) and ``mask`` are references."""

    x: Any  # (batch, time, features)
    w_x: Any  # (features, 2*hidden)
    b: Any  # (2*hidden,)
    h0: Any  # (batch, hidden) or None
    hs: Any  # (batch, time, hidden)
    z: Any  # (batch, time, hidden)
    keep: Any  # (batch, time, hidden): 1 - z
    h_tilde: Any  # (batch, time, hidden)
    u_h: Any  # (batch, time, hidden)
    mask: Any  # (batch, time) bool or None

    @property
    def h_n(self) -> Any:
        """Final state ``(batch, hidden)``: each sample's last valid state under a mask."""
        return self.hs[:, -1, :]


class MinGRUGrads(NamedTuple):
    """Gradients with the shapes of the corresponding forward arguments."""

    dx: Any  # (batch, time, features)
    dh0: Any  # (batch, hidden)
    dw_x: Any  # (features, 2*hidden)
    db: Any  # (2*hidden,)


def min_gru_step(p: dict, u: Any, v: None, state: tuple[Any], *, xp: Any
                 ) -> tuple[tuple[Any], tuple[Any, ...]]:
    """One step, in the driver's convention (:class:`rnnx.functional.Step`): from the input
    projection ``u_t = x_t w_x + b`` ``(batch, 2*hidden)`` and the state ``(h_{t-1},)``
    ``(batch, hidden)``; there is no recurrent product (``v`` is ``None``). Returns ``((h_t,),
    (z, 1 - z, h_tilde, u_h))``: the new state and what :func:`min_gru_step_backward` needs,
    each ``(batch, hidden)``."""
    (h_prev,) = state
    u_z, u_h = blocks(u, 2)  # (B, H) each
    z, keep = sigmoid_pair(u_z, xp=xp)  # z and 1 - z, each to full relative precision
    h_tilde = g_act(u_h, xp=xp)
    h = keep * h_prev + z * h_tilde  # (B, H)
    return (h,), (z, keep, h_tilde, u_h)


def min_gru_step_backward(p: dict, grads: tuple[Any], saved: tuple[Any, ...],
                          state: tuple[Any], *, xp: Any) -> StepGrads:
    """Backward of :func:`min_gru_step` from ``(G_t,)``, ``G_t = dL/dh_t`` ``(batch,
    hidden)``: ``du_t`` ``(batch, 2*hidden)`` in ``u``'s blocks ``z, h``, no recurrent
    product's gradient, and the gradient through the state's direct path ``G_t (1 - z_t)``."""
    (g,) = grads
    (h_prev,) = state
    z, keep, h_tilde, u_h = saved
    du_z = g * (h_tilde - h_prev) * z * keep  # (B, H)
    du_h = g * z * g_grad(u_h, h_tilde, xp=xp)  # (B, H)
    return StepGrads(du=xp.concat([du_z, du_h], axis=1), dv=None, dstate=(g * keep,))


#: The step for the driver: no recurrent product (``products=()``), the bias ``b`` in the
#: hoisted input projection.
STEP = Step(forward=(min_gru_step,), backward=(min_gru_step_backward,), products=())


@on_input_device
def min_gru_forward(x: Any, w_x: Any, b: Any, h0: Any = None, *, mask: Any = None
                    ) -> tuple[Any, MinGRUCache]:
    """Run a minGRU over a whole sequence, every step at once (a linear scan).

    Parameters
    ----------
    x : array (batch, time, features)
    w_x : array (features, 2*hidden)
        Input weights, gate blocks ``z, h`` (update gate, candidate). There are no recurrent
        weights.
    b : array (2*hidden,)
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
    cache : MinGRUCache
        Pass to :func:`min_gru_backward`; ``cache.h_n`` is the final state ``(batch, hidden)``.
    """
    xp = check_min_inputs(x, w_x, b, h0, 2)
    m = as_step_mask(mask, x=x, xp=xp)
    u_z, u_h = project(xp, x, w_x, b, 2)  # (B, T, H) each
    z, keep = sigmoid_pair(u_z, xp=xp)  # (B, T, H): z and a = 1 - z
    h_tilde = g_act(u_h, xp=xp)  # (B, T, H)
    a = keep_steps(xp, m, keep, 1.0)  # (B, T, H): 1 at padded steps
    bz = keep_steps(xp, m, z * h_tilde, 0.0)  # (B, T, H): 0 at padded steps
    hs = scan(a, bz, h0, xp=xp)  # (B, T, H)
    cache = MinGRUCache(x, w_x, b, h0, hs, z, keep, h_tilde, u_h, m)
    return (hs if m is None else mask_outputs(hs, m, xp=xp)), cache


@on_input_device
def min_gru_backward(dhs: Any, cache: MinGRUCache, dh_n: Any = None, *,
                     state_grads: list | None = None) -> MinGRUGrads:
    """Backpropagation through time for :func:`min_gru_forward`, every step at once (the
    derivation is in the module docstring).

    Parameters
    ----------
    dhs : array (batch, time, hidden) or (batch, hidden), or None
        Gradient of the returned ``hs``. A 2-D array is the gradient of the final state alone
        (many-to-one). ``None``: only ``dh_n``.
    cache : MinGRUCache
    dh_n : array (batch, hidden), optional
        Gradient of the final state ``cache.h_n``.
    state_grads : list, optional
        ``time`` slots that receive ``dL/dh_t`` ``(batch, hidden)`` (:mod:`rnnx.diagnostics`).

    Returns
    -------
    MinGRUGrads
        ``(dx, dh0, dw_x, db)`` in the forward inputs' namespace and device; ``dh0`` is
        returned even when the forward pass started from zeros.
    """
    x, w_x, _, h0, hs, z, a, h_tilde, u_h, m = cache
    xp = resolve({"dhs": dhs, "hs": hs, "dh_n": dh_n})
    seq, g_n = incoming(xp, hs, dhs, dh_n, m)
    a_run = keep_steps(xp, m, a, 1.0)  # the coefficients the forward ran with
    G = scan_adjoint(a_run, seq, g_n, xp=xp)  # (B, T, H): dL/dh_t
    if state_grads is not None:
        for t in range(hs.shape[1]):
            state_grads[t] = G[:, t, :]
    Gz = G * z  # (B, T, H)
    du_z = h_tilde - previous_states(xp, hs, h0)  # (B, T, H)
    du_z *= Gz
    du_z *= a  # dL/dz * z (1 - z)
    du_h = g_grad(u_h, h_tilde, xp=xp)
    du_h *= Gz  # dL/dh~ * g'
    dx, dw_x, db = project_grads(xp, x, w_x, [keep_steps(xp, m, du, 0.0) for du in (du_z, du_h)])
    return MinGRUGrads(dx, a_run[:, 0, :] * G[:, 0, :], dw_x, db)
