"""GRU (reset after the recurrent product): its step, the step's backward, and the
whole-sequence forward and backward.

References
----------
- K. Cho et al., "Learning phrase representations using RNN encoder-decoder for statistical
  machine translation", EMNLP 2014, eqs. (5)-(8).
- PyTorch ``torch.nn.GRU``: the variant with the reset gate applied after the recurrent matmul
  (``n = tanh(x W_in + b_in + r * (h W_hn + b_hn))``), gate order ``r, z, n`` and two biases;
  rnnx uses exactly that so weights move across unchanged.

Layout (row-vector convention)::

    w_x  (features, 3*hidden) = [W_xr | W_xz | W_xn]   (torch: weight_ih_l0 = w_x.T)
    w_h  (hidden,   3*hidden) = [W_hr | W_hz | W_hn]   (torch: weight_hh_l0 = w_h.T)
    b_ih (3*hidden,), b_hh (3*hidden,)                 (torch: bias_ih_l0, bias_hh_l0)

Both biases are needed: ``b_hn`` sits inside the reset product, so only the ``r`` and ``z``
parts could be merged.

Step, with ``u_t = x_t w_x + b_ih`` (the driver's, hoisted over all steps) and
``v_t = h_{t-1} w_h + b_hh`` (the driver's recurrent product)::

    r = sigmoid(u_r + v_r)   z = sigmoid(u_z + v_z)   n = tanh(u_n + r * v_n)
    h_t = (1 - z) * n + z * h_{t-1}

Backward, ``G_t = dL/dh_t`` the total gradient reaching ``h_t``::

    da_n = G_t (1 - z)(1 - n^2)      da_z = G_t (h_{t-1} - n) z(1 - z)
    da_r = da_n v_n r(1 - r)
    du_t = [da_r, da_z, da_n]        dv_t = [da_r, da_z, da_n * r]
    G_{t-1} = dhs_{t-1} + dv_t w_h^T + G_t z
    dw_x = sum_t x_t^T du_t   db_ih = sum_t du_t   dw_h = sum_t h_{t-1}^T dv_t   db_hh = sum_t dv_t

Only the ``G`` recurrence is sequential; the sums are the driver's, one GEMM (or one sum)
each over all ``batch * time`` rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._backend import on_input_device
from ._activations import sigmoid
from ._common import check_grads, check_inputs
from ._loop import drive_backward, drive_forward
from ._mask import as_step_mask
from ._step import Cache, Step, StepGrads, Tuned, blocks
from ._tuned import gru as tuned
from ._validate import resolve
from ._workspace import Workspace

__all__ = ["GRUCache", "GRUGrads", "gru_backward", "gru_forward", "gru_step", "gru_step_backward"]


def gru_step(p: dict, u: Any, v: Any, state: tuple[Any], *, xp: Any
             ) -> tuple[tuple[Any], tuple[Any, ...]]:
    """One step from ``u_t = x_t w_x + b_ih`` and ``v_t = h_{t-1} w_h + b_hh`` ``(batch,
    3*hidden)`` and the state ``(h_{t-1},)``. Returns ``((h_t,), (r, z, n, v_n))``."""
    (h_prev,) = state
    u_r, u_z, u_n = blocks(u, 3)  # (B, H) each
    v_r, v_z, v_n = blocks(v, 3)  # (B, H) each
    r = sigmoid(u_r + v_r, xp=xp)
    z = sigmoid(u_z + v_z, xp=xp)
    n = xp.tanh(u_n + r * v_n)  # (B, H)
    h = (1.0 - z) * n + z * h_prev  # (B, H)
    return (h,), (r, z, n, v_n)


def gru_step_backward(p: dict, grads: tuple[Any], saved: tuple[Any, ...], state: tuple[Any], *,
                      xp: Any) -> StepGrads:
    """Backward of :func:`gru_step` from ``G_t = dL/dh_t``: ``du_t``, ``dv_t`` ``(batch,
    3*hidden)`` and the direct path ``G_t z`` to ``h_{t-1}``."""
    (G,) = grads
    r, z, n, v_n = saved
    (h_prev,) = state
    da_n = G * (1.0 - z) * (1.0 - n * n)
    da_z = G * (h_prev - n) * z * (1.0 - z)
    da_r = da_n * v_n * r * (1.0 - r)
    du = xp.concat([da_r, da_z, da_n], axis=1)  # (B, 3H)
    dv = xp.concat([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
    return StepGrads(du=du, dv=dv, dstate=(G * z,))


STEP = Step(forward=(gru_step,), backward=(gru_step_backward,), input_bias="b_ih",
            recurrent_bias="b_hh", tuned=Tuned(tuned.forward, tuned.backward))

#: The cache :func:`gru_forward` returns (:class:`rnnx.functional.Cache`).
GRUCache = Cache


class GRUGrads(NamedTuple):
    """Gradients with the shapes of the corresponding forward arguments."""

    dx: Any  # (batch, time, features)
    dh0: Any  # (batch, hidden)
    dw_x: Any  # (features, 3*hidden)
    dw_h: Any  # (hidden, 3*hidden)
    db_ih: Any  # (3*hidden,)
    db_hh: Any  # (3*hidden,)


@on_input_device
def gru_forward(
    x: Any, w_x: Any, w_h: Any, b_ih: Any, b_hh: Any, h0: Any = None, *, mask: Any = None,
    workspace: Workspace | None = None,
) -> tuple[Any, Cache]:
    """Run a GRU over a whole sequence.

    Parameters
    ----------
    x : array (batch, time, features)
    w_x : array (features, 3*hidden)
        Input weights, gate blocks ``r, z, n`` (``torch weight_ih_l0.T``).
    w_h : array (hidden, 3*hidden)
        Recurrent weights, same blocks (``torch weight_hh_l0.T``).
    b_ih, b_hh : array (3*hidden,)
        Input and recurrent biases (``torch bias_ih_l0``, ``bias_hh_l0``).
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
        Pass to :func:`gru_backward`; ``cache.h_n`` is the final state ``(batch, hidden)``.
    """
    xp = check_inputs(x, w_x, w_h, {"b_ih": b_ih, "b_hh": b_hh}, h0, None, 3)
    m = as_step_mask(mask, x=x, xp=xp)
    return drive_forward(STEP, xp, x, {"w_x": w_x, "w_h": w_h, "b_ih": b_ih, "b_hh": b_hh},
                         {"h0": h0}, m, gates=3, workspace=workspace)


@on_input_device
def gru_backward(dhs: Any, cache: Cache, dh_n: Any = None, *,
                 state_grads: list | None = None, workspace: Workspace | None = None
                 ) -> GRUGrads:
    """Backpropagation through time for :func:`gru_forward`.

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
    GRUGrads
        ``(dx, dh0, dw_x, dw_h, db_ih, db_hh)`` in the forward inputs' namespace and device;
        ``dh0`` is returned even when the forward pass started from zeros.
    """
    xp = resolve({"dhs": dhs, "hs": cache.hs, "dh_n": dh_n})
    check_grads(xp, cache.hs, dhs, {"dh_n": dh_n})
    return GRUGrads(**drive_backward(STEP, xp, cache, dhs, (dh_n,), gates=3,
                                     state_grads=state_grads, workspace=workspace))
