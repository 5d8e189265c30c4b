"""Reset-before GRU: its step (two stages), the step's backward, and the whole-sequence forward
and backward.

References
----------
- K. Cho et al., "Learning phrase representations using RNN encoder-decoder for statistical
  machine translation", EMNLP 2014, eqs. (5)-(8): the reset gate scales the previous state
  *before* the recurrent matmul of the candidate, ``h~ = tanh(W x + U (r * h_{t-1}))``.
- Keras ``GRU(reset_after=False)`` and ONNX ``GRU`` with ``linear_before_reset=0`` (its
  default) compute this variant; ``torch.nn.GRU`` computes only the reset-after one
  (:mod:`rnnx.functional.gru`).

Layout (row-vector convention, gate order ``r, z, n`` as :mod:`rnnx.functional.gru`)::

    w_x (features, 3*hidden) = [W_xr | W_xz | W_xn]
    w_h (hidden,   3*hidden) = [W_hr | W_hz | W_hn]
    b   (3*hidden,)          = [b_r | b_z | b_n]

One bias: every bias of this variant is added outside any product with a gate, so an input
and a recurrent bias (ONNX ``Wb``/``Rb``, torch-style ``b_ih``/``b_hh``) enter only as their sum.

Step, with ``u_t = x_t w_x + b`` (the driver's, hoisted over all steps). The candidate's
recurrent product needs the reset gate first, so the step has two stages, each after one of
the driver's products::

    stage 1, after v = h_{t-1} [W_hr | W_hz]:   r = sigmoid(u_r + v_r)   z = sigmoid(u_z + v_z)
                                                q = r * h_{t-1}
    stage 2, after v = q W_hn:                  n = tanh(u_n + v)
                                                h_t = (1 - z) * n + z * h_{t-1}

Backward, ``G_t = dL/dh_t`` the total gradient reaching ``h_t``; the stages' adjoints run last
to first, the driver's ``dq = da_n W_hn^T`` between them::

    stage 2:  da_n = G_t (1 - z)(1 - n^2)        da_z = G_t (h_{t-1} - n) z (1 - z)
    stage 1:  da_r = dq h_{t-1} r (1 - r)        (q = r * h_{t-1}: dL/dr = dq * h_{t-1})
              G_{t-1} = dhs_{t-1} + [da_r, da_z] [W_hr | W_hz]^T + dq r + G_t z

and, summed over all steps by the driver (one GEMM each, ``du_t = [da_r, da_z, da_n]``)::

    dw_x = sum_t x_t^T du_t     db = sum_t du_t     dx_t = du_t w_x^T
    [dW_hr | dW_hz] = sum_t h_{t-1}^T [da_r, da_z]  dW_hn = sum_t q_t^T da_n
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._backend import on_input_device
from ._activations import sigmoid
from ._common import check_grads, check_inputs
from ._loop import drive_backward, drive_forward
from ._mask import as_step_mask
from ._step import Cache, Step, StepGrads, Tuned, blocks
from ._tuned import gru_reset_before as tuned
from ._validate import resolve
from ._workspace import Workspace

__all__ = [
    "GRUResetBeforeCache",
    "GRUResetBeforeGrads",
    "candidate",
    "candidate_backward",
    "gru_reset_before_backward",
    "gru_reset_before_forward",
    "reset_gates",
    "reset_gates_backward",
]


def reset_gates(p: dict, u: Any, v: Any, state: tuple[Any], *, xp: Any
                ) -> tuple[Any, tuple[Any, Any]]:
    """Stage 1, after ``v = h_{t-1} [W_hr | W_hz]`` ``(batch, 2*hidden)``: the gates, and
    ``q = r * h_{t-1}``, the operand of the candidate's product. Returns ``(q, (r, z))``."""
    (h_prev,) = state
    u_r, u_z, _ = blocks(u, 3)  # (B, H) each
    v_r, v_z = blocks(v, 2)  # (B, H) each
    r = sigmoid(u_r + v_r, xp=xp)
    z = sigmoid(u_z + v_z, xp=xp)
    return r * h_prev, (r, z)


def candidate(p: dict, u: Any, v: Any, state: tuple[Any], gates: tuple[Any, Any], *, xp: Any
              ) -> tuple[tuple[Any], tuple[Any, ...]]:
    """Stage 2, after ``v = q W_hn`` ``(batch, hidden)``: the candidate and the new state.
    Returns ``((h_t,), (r, z, n))``."""
    (h_prev,) = state
    r, z = gates
    n = xp.tanh(blocks(u, 3)[2] + v)  # (B, H)
    h = (1.0 - z) * n + z * h_prev  # (B, H)
    return (h,), (r, z, n)


def candidate_backward(p: dict, grads: tuple[Any], saved: tuple[Any, ...], state: tuple[Any],
                       *, xp: Any) -> tuple[Any, tuple[Any, ...]]:
    """Adjoint of :func:`candidate` from ``G_t = dL/dh_t``: ``da_n`` (the gradient of its
    product, ``dq = da_n W_hn^T`` is the driver's) and what stage 1's adjoint needs."""
    (G,) = grads
    _, z, n = saved
    (h_prev,) = state
    da_n = G * (1.0 - z) * (1.0 - n * n)
    da_z = G * (h_prev - n) * z * (1.0 - z)
    return da_n, (da_n, da_z, G * z)


def reset_gates_backward(p: dict, dq: Any, saved: tuple[Any, ...], state: tuple[Any],
                         later: tuple[Any, Any, Any], *, xp: Any) -> StepGrads:
    """Adjoint of :func:`reset_gates` from ``dq = dL/dq``: ``du_t = [da_r, da_z, da_n]``,
    ``dv = [da_r, da_z]`` and the direct paths ``dq r + G_t z`` to ``h_{t-1}``."""
    r, _, _ = saved
    (h_prev,) = state
    da_n, da_z, g_z = later
    da_r = dq * h_prev * r * (1.0 - r)
    return StepGrads(du=xp.concat([da_r, da_z, da_n], axis=1),  # (B, 3H)
                     dv=xp.concat([da_r, da_z], axis=1),  # (B, 2H)
                     dstate=(dq * r + g_z,))


STEP = Step(forward=(reset_gates, candidate), backward=(reset_gates_backward, candidate_backward),
            products=((0, 2), (2, 3)), tuned=Tuned(tuned.forward, tuned.backward))

#: The cache :func:`gru_reset_before_forward` returns (:class:`rnnx.functional.Cache`).
GRUResetBeforeCache = Cache


class GRUResetBeforeGrads(NamedTuple):
    """Gradients with the shapes of the corresponding forward arguments."""

    dx: Any  # (batch, time, features)
    dh0: Any  # (batch, hidden)
    dw_x: Any  # (features, 3*hidden)
    dw_h: Any  # (hidden, 3*hidden)
    db: Any  # (3*hidden,)


@on_input_device
def gru_reset_before_forward(
    x: Any, w_x: Any, w_h: Any, b: Any, h0: Any = None, *, mask: Any = None,
    workspace: Workspace | None = None,
) -> tuple[Any, Cache]:
    """Run a reset-before GRU (Keras ``reset_after=False``, ONNX ``linear_before_reset=0``)
    over a whole sequence.

    Parameters
    ----------
    x : array (batch, time, features)
    w_x : array (features, 3*hidden)
        Input weights, gate blocks ``r, z, n``.
    w_h : array (hidden, 3*hidden)
        Recurrent weights, same blocks.
    b : array (3*hidden,)
        The bias (input and recurrent biases summed: here they enter only as their sum).
    h0 : array (batch, hidden), optional
        Initial state; zeros (on ``x``'s device) if omitted.
    mask : optional
        Boolean ``(batch, time)`` step mask (padding on either side) or integer ``(batch,)``
        lengths, in ``x``'s namespace on any device, or host data; see :mod:`rnnx.functional._mask`.
    workspace : Workspace, optional
        Buffers kept across calls (:class:`rnnx.functional.Workspace`): the cache's arrays
        other than ``hs`` are written into it, overwritten by the next forward given the same
        workspace, so a cache made with one is valid until then. ``hs`` is always a new
        array. Ignored for JAX.

    Returns
    -------
    hs : array (batch, time, hidden)
        The state at every step (zero where the mask is off); namespace, device and dtype of ``x``.
    cache : Cache
        Pass to :func:`gru_reset_before_backward`; ``cache.h_n`` is the final state
        ``(batch, hidden)``.
    """
    xp = check_inputs(x, w_x, w_h, {"b": b}, h0, None, 3)
    m = as_step_mask(mask, x=x, xp=xp)
    return drive_forward(STEP, xp, x, {"w_x": w_x, "w_h": w_h, "b": b}, {"h0": h0}, m, gates=3,
                         workspace=workspace)


@on_input_device
def gru_reset_before_backward(dhs: Any, cache: Cache, dh_n: Any = None, *,
                              state_grads: list | None = None,
                              workspace: Workspace | None = None) -> GRUResetBeforeGrads:
    """Backpropagation through time for :func:`gru_reset_before_forward`.

    Parameters
    ----------
    dhs : array (batch, time, hidden) or (batch, hidden), or None
        Gradient of the returned ``hs``. A 2-D array is the gradient of the final state alone
        (many-to-one; without a mask that is ``hs[:, -1]``). ``None``: only ``dh_n``.
    cache : Cache
    dh_n : array (batch, hidden), optional
        Gradient of the final state ``cache.h_n``.
    state_grads : list, optional
        ``time`` slots that receive ``dL/dh_t`` ``(batch, hidden)`` (:mod:`rnnx.diagnostics`).
    workspace : Workspace, optional
        Buffers kept across calls for the backward's internal scratch (the stored per-step
        gradients); the returned gradients are new arrays either way. Ignored for JAX.

    Returns
    -------
    GRUResetBeforeGrads
        ``(dx, dh0, dw_x, dw_h, db)`` in the forward inputs' namespace and device; ``dh0`` is
        returned even when the forward pass started from zeros.
    """
    xp = resolve({"dhs": dhs, "hs": cache.hs, "dh_n": dh_n})
    check_grads(xp, cache.hs, dhs, {"dh_n": dh_n})
    return GRUResetBeforeGrads(**drive_backward(STEP, xp, cache, dhs, (dh_n,), gates=3,
                                                state_grads=state_grads, workspace=workspace))
