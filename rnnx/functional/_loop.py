"""The one time-loop driver: runs any cell's :class:`~rnnx.functional._step.Step` over a
sequence, forward and backward.

What the driver owns, so that no cell writes it again:

* **the matrix products**: the input side hoisted over all ``batch * time`` rows (one GEMM,
  the bias riding in it: :func:`rnnx.functional._common.input_projection`), each stage's
  recurrent product ``operand @ w_h[:, block]`` in the loop, and after the backward loop the
  weight gradients, one GEMM each over all rows (``dw_x = X^T du``, ``dw_h = H_prev^T dv``,
  ``dx = du w_x^T``) and the sums of the biases and of the step's own parameters;
* **the initial state** (zeros on ``x``'s device where omitted), **the masked outputs** and the
  final-state gradients (:mod:`rnnx.functional._mask`: a padded step carries its state forward
  and passes its gradient straight back);
* **how the loop runs**: the executor the backend picks for the arrays
  (:func:`rnnx._backend.executor`): a Python loop with time-major buffers, or ``jax.lax.scan``
  with the whole forward and the whole backward compiled (:mod:`rnnx._backend._executors`).
  Where the backend allows it (NumPy) a cell's tuned whole-sequence form
  (:attr:`Step.tuned <rnnx.functional._step.Step>`) runs instead; the test suite checks it
  against this readable path on every case;
* **the per-step observer** (``state_grads``) that :mod:`rnnx.diagnostics` reads: the total
  gradient ``dL/dh_t`` reaching each step's output state.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Mapping
from typing import Any

from .._backend import device, executor, on_input_device
from ._common import (
    check_grads,
    check_inputs,
    final_grad,
    input_grads,
    input_projection,
    per_step_transpose,
    time_major_rows,
)
from ._mask import as_step_mask, mask_outputs
from ._step import Cache, Step
from ._validate import resolve

__all__ = ["drive_backward", "drive_forward", "sequence_functions"]


def _products(step: Step, p: Mapping[str, Any], gates: int) -> list[tuple[Any, Any] | None]:
    """``(w, bias or None)`` of each stage's recurrent product: column blocks of ``w_h``;
    ``None`` for each stage of a cell without recurrent weights (``Step.products == ()``: the
    minimal RNNs, whose gates read ``x_t`` only)."""
    if step.products == ():
        return [None] * len(step.forward)
    w_h = p["w_h"]
    hidden = w_h.shape[0]
    bias = None if step.recurrent_bias is None else p[step.recurrent_bias]
    spans = step.product_blocks(gates)
    if len(spans) == 1 and spans[0] == (0, gates):
        return [(w_h, bias)]
    return [(w_h[:, a * hidden : e * hidden], None if bias is None else bias[a * hidden : e * hidden])
            for a, e in spans]


def _bound(fns: tuple, p: Mapping[str, Any], xp: Any, options: tuple) -> list[Any]:
    return [functools.partial(f, p, xp=xp, **dict(options)) for f in fns]


def _initial(xp: Any, x: Any, hidden: int, state0: tuple) -> tuple[Any, ...]:
    """The initial states, zeros on ``x``'s device where omitted (``None``)."""
    zeros = None
    out = []
    for s in state0:
        if s is None:
            if zeros is None:
                zeros = xp.zeros((x.shape[0], hidden), dtype=x.dtype, device=device(x))  # (B, H)
            s = zeros
        out.append(s)
    return tuple(out)


def _forward_core(static: tuple, x: Any, p: dict, state0: tuple, mask: Any, *,
                  workspace: Any = None) -> tuple:
    ex, xp, step, options, gates = static
    batch, time, _ = x.shape
    width = p["w_x"].shape[1]
    hidden = width // gates
    extra = None
    if step.input is None:
        bias = p[step.input_bias] if step.input_bias is not None else \
            xp.zeros((width,), dtype=x.dtype, device=device(x))
        u = input_projection(xp, x, p["w_x"], bias)  # (T, B, GH): one GEMM over all rows
    else:
        xw = time_major_rows(xp, x) @ p["w_x"]  # (T*B, GH)
        u, extra = step.input(p, xw, xp=xp)  # (T*B, GH): the cell's own input side
        u = xp.reshape(u, (time, batch, width))  # (T, B, GH)
    states, saved, operands = ex.forward(
        _bound(step.forward, p, xp, options), _products(step, p, gates), u,
        _initial(xp, x, hidden, state0), mask, xp=xp, workspace=workspace)
    hs = xp.permute_dims(states[0], (1, 0, 2))  # (B, T, H): a view of the time-major states
    out = hs if mask is None else mask_outputs(hs, mask, xp=xp)
    return out, hs, states, saved, operands, extra


def drive_forward(step: Step, xp: Any, x: Any, params: Mapping[str, Any],
                  state0: Mapping[str, Any], mask: Any, *, gates: int,
                  options: Mapping[str, Any] | None = None, workspace: Any = None
                  ) -> tuple[Any, Cache]:
    """Run ``step`` over ``x (batch, time, features)`` from the initial states ``state0``
    (``{"h0": ..., "c0": ...}``, ``None`` for zeros), with checked arguments: ``params`` by
    name, ``mask`` a boolean ``(batch, time)`` array on ``x``'s device or ``None``, ``gates``
    the blocks of ``w_h``. Returns ``(out, cache)``: the states ``(batch, time, hidden)``, zero
    at masked steps, in ``x``'s namespace and on its device, and the :class:`Cache`. With a
    ``workspace`` (eager executor) the saved arrays live in its buffers, overwritten by the
    next forward given it."""
    options = dict(options or {})
    ex = executor(xp)
    if ex.tuned and step.tuned is not None:
        return step.tuned.forward(xp, x, params, state0, mask, options, workspace)
    p = dict(params)
    s0 = tuple(state0.values())
    static = (ex, xp, step, tuple(sorted(options.items())), gates)
    out, hs, states, saved, operands, extra = ex.run(_forward_core, static, x, p, s0, mask,
                                                     workspace=workspace)
    if mask is None:
        out = hs  # the cache's hs is the returned array
    cache = Cache(x, dict(params), dict(state0), hs, states, mask, saved, operands, extra,
                  options)
    return out, cache


def _backward_core(static: tuple, seq: Any, g0: tuple, x: Any, p: dict, state0: tuple,
                   states: tuple, saved: tuple, operands: tuple, extra: Any, mask: Any, *,
                   workspace: Any = None) -> tuple:
    ex, xp, step, options, gates, observe = static
    time, batch, hidden = states[0].shape
    products = _products(step, p, gates)
    # w^T once, not per step: a row-major copy for the eager loop's BLAS (_common), the view
    # where the step is compiled (the compiler picks the layout).
    products_t = [None if prod is None else
                  per_step_transpose(xp, prod[0], steps=time) if ex.name != "scanned" else
                  prod[0].T for prod in products]
    init = _initial(xp, x, hidden, state0)
    du, dvs, dparams, g_init, observed = ex.backward(
        _bound(step.backward, p, xp, options), products_t, g0, states, init, saved, operands,
        mask, seq, observe, xp=xp, workspace=workspace)
    rows = time * batch
    grads: dict[str, Any] = {}

    def add(name: str, value: Any) -> None:
        grads[name] = value if name not in grads else grads[name] + value

    # The input side: dw_x = X^T dxw (with the bias's sum in the same GEMM) and dx = dxw w_x^T.
    du2 = xp.reshape(du, (rows, du.shape[2]))  # (T*B, GH)
    if step.input is None:
        dw_x, db = input_grads(xp, x, du2)  # (F, GH), (GH,)
        dxw = du2
        if step.input_bias is not None:
            add(step.input_bias, db)
    else:
        dxw, dpin = step.input_backward(p, du2, extra, xp=xp)  # (T*B, GH)
        dw_x = time_major_rows(xp, x).T @ dxw  # (F, GH)
        for name, rows_grad in dpin.items():
            add(name, xp.sum(rows_grad, axis=0))
    dx = xp.permute_dims(xp.reshape(dxw @ p["w_x"].T, (time, batch, x.shape[2])), (1, 0, 2))
    # The recurrent products: dw = operand^T dv over all rows. The first stage's operand is
    # h_{t-1}: states 1..T-1 against steps 2..T (contiguous slices), and h0 against step 1.
    dws, dbs = [], []
    for k, dv in enumerate(dvs if products[0] is not None else ()):
        w = dv.shape[2]
        if k == 0:
            h_prev = xp.reshape(states[0][: time - 1, ...], ((time - 1) * batch, hidden))
            dw = h_prev.T @ xp.reshape(dv[1:, ...], ((time - 1) * batch, w))  # (H, w)
            if state0[0] is not None:
                dw = dw + state0[0].T @ dv[0, ...]  # (H, w): step 1 sees h0
        else:
            op = xp.reshape(operands[k - 1], (rows, hidden))  # (T*B, H)
            dw = op.T @ xp.reshape(dv, (rows, w))  # (H, w)
        dws.append(dw)
        if step.recurrent_bias is not None:
            dbs.append(xp.sum(xp.reshape(dv, (rows, w)), axis=0))  # (w,)
    grads["w_x"] = dw_x
    if dws:
        grads["w_h"] = dws[0] if len(dws) == 1 else xp.concat(dws, axis=1)  # (H, GH)
    if dbs:
        add(step.recurrent_bias, dbs[0] if len(dbs) == 1 else xp.concat(dbs))
    for name, per_step in dparams.items():
        add(name, xp.sum(xp.reshape(per_step, (rows, per_step.shape[2])), axis=0))
    return dx, g_init, grads, observed


def drive_backward(step: Step, xp: Any, cache: Cache, dhs: Any, finals: tuple[Any, ...], *,
                   gates: int, state_grads: list | None = None, workspace: Any = None
                   ) -> dict[str, Any]:
    """BPTT of a :func:`drive_forward` run, with checked arguments: ``dhs`` the gradient of the
    outputs ``(batch, time, hidden)``, or of the final state ``(batch, hidden)``, or ``None``;
    ``finals`` the gradients of the final states (``None`` for none). Returns the gradients by
    name: ``dx``, ``dh0`` (``dc0``), ``d<param>``, in the namespace and on the device of the
    forward's inputs; ``state_grads`` (``time`` slots) receives ``dL/dh_t``."""
    if cache.tuned:
        return step.tuned.backward(xp, cache, dhs, finals, state_grads, workspace)
    ex = executor(xp)
    hs, m = cache.hs, cache.mask
    seq = dhs if dhs is not None and dhs.ndim == 3 else None
    if seq is not None and m is not None:
        seq = mask_outputs(seq, m, xp=xp)  # a padded output is a constant zero: no gradient
    g_h = final_grad(xp, hs, dhs if seq is None else None, finals[0], seq)  # (B, H)
    g0 = (g_h, *(f if f is not None else xp.zeros_like(g_h) for f in finals[1:]))
    observe = state_grads is not None
    static = (ex, xp, step, tuple(sorted(cache.options.items())), gates, observe)
    dx, g_init, grads, observed = ex.run(
        _backward_core, static, seq, g0, cache.x, dict(cache.params),
        tuple(cache.state0.values()), cache.states, cache.saved, cache.operands, cache.extra,
        m, workspace=workspace)
    if observe:
        for t in range(len(state_grads)):
            state_grads[t] = observed[t, ...]  # (B, H)
    out = {"dx": dx}
    out.update({"d" + name: g for name, g in zip(cache.state0, g_init)})
    out.update({"d" + name: grads[name] for name in cache.params})
    return out


def sequence_functions(step: Step, *, name: str, gates: int, vectors: Mapping[str, int],
                       states: tuple[str, ...], recurrent: bool = True) -> tuple[Any, Any]:
    """The whole-sequence ``forward`` and ``backward`` of a cell given by its ``step`` alone
    (a cell registered without functions of its own: :class:`rnnx.functional.registry.Cell`),
    with the calling conventions of the built-in cells': ``forward(x, w_x, w_h, *vectors,
    *initial states, *, mask=None, workspace=None, **options) -> (out, cache)`` and
    ``backward(dhs, cache, *final-state gradients, *, state_grads=None, workspace=None) ->
    grads`` (a NamedTuple ``dx``, ``d<state>0``, ``d<param>``). ``vectors`` maps the 1-D
    parameters, in order, to their widths in units of ``hidden``. ``recurrent=False``: a cell
    without ``w_h`` (its step takes no recurrent product, ``Step.products == ()``); the
    functions then take ``(x, w_x, *vectors, ...)``."""
    params = ("w_x", "w_h", *vectors) if recurrent else ("w_x", *vectors)
    grads_type = namedtuple(f"{name.title().replace('_', '')}Grads",
                            ["dx", *(f"d{s}0" for s in states), *(f"d{p}" for p in params)])
    widths = {k: w for k, w in vectors.items() if w != gates}

    @on_input_device
    def forward(x: Any, w_x: Any, *rest: Any, mask: Any = None, workspace: Any = None,
                **options: Any) -> tuple[Any, Cache]:
        w_h, rest = (rest[0], rest[1:]) if recurrent else (None, rest)
        vec = dict(zip(vectors, rest[: len(vectors)]))
        s0 = dict(zip((s + "0" for s in states), (*rest[len(vectors):], None, None)))
        xp = check_inputs(x, w_x, w_h, vec, s0.get("h0"), s0.get("c0"), gates, widths=widths)
        m = as_step_mask(mask, x=x, xp=xp)
        weights = {"w_x": w_x, "w_h": w_h} if recurrent else {"w_x": w_x}
        return drive_forward(step, xp, x, {**weights, **vec}, s0, m, gates=gates,
                             options=options, workspace=workspace)

    @on_input_device
    def backward(dhs: Any, cache: Cache, *finals: Any, state_grads: list | None = None,
                 workspace: Any = None) -> Any:
        fin = (*finals, *(None,) * (len(states) - len(finals)))
        named = {f"d{s}_n": f for s, f in zip(states, fin)}
        xp = resolve({"dhs": dhs, "hs": cache.hs, **named})
        check_grads(xp, cache.hs, dhs, named)
        return grads_type(**drive_backward(step, xp, cache, dhs, fin, gates=gates,
                                           state_grads=state_grads, workspace=workspace))

    forward.__name__, backward.__name__ = f"{name}_forward", f"{name}_backward"
    return forward, backward
