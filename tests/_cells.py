"""The per-cell test adapters, read off the cell registry: host case -> forward/backward on any
backend -> named results, and the outside reference for each cell (torch.nn where torch has
the cell, a torch-ops implementation of its equations where it has not). A newly registered
cell is covered by every check built on these; its one piece of new test code is its entry in
:data:`OPS_ORACLES` if torch.nn has no such layer."""

from __future__ import annotations

import numpy as np

from rnnx.functional.registry import CELLS
from rnnx.interop.torch import LAYOUTS as TORCH_LAYOUTS
from rnnx.testing import agreement

from ._oracle import torch_gru_reset_before, torch_ln_lstm, torch_stack

#: Every registered cell, by name: the per-cell tests are parametrized over these.
KINDS = list(CELLS)

#: Reference implementations in torch operations for cells torch.nn does not have.
OPS_ORACLES = {"ln_lstm": torch_ln_lstm, "gru_reset_before": torch_gru_reset_before}


def spec(kind):
    return CELLS[kind]


def gates(kind):
    return CELLS[kind].gates


def vectors(kind):
    """Names of the cell's 1-D parameters (biases, gains, shifts), in argument order."""
    return tuple(CELLS[kind].vectors)


def has_cell_state(kind):
    return "c" in CELLS[kind].states


def make_case(kind, rng, batch, time, features, hidden, *, with_h0=True):
    """Host float64 case (:func:`rnnx.testing.make_case`)."""
    return agreement.make_case(CELLS[kind], rng, batch, time, features, hidden,
                               with_state=with_h0)


def inputs(kind):
    """Names of the differentiable forward arguments, in signature order."""
    return agreement.differentiable(CELLS[kind])


def _options(kind, nonlinearity):
    return {"nonlinearity": nonlinearity} if "nonlinearity" in CELLS[kind].options else {}


def forward(kind, a, *, mask=None, nonlinearity="tanh"):
    """``(out, cache)`` from the cell's forward on the arrays of dict ``a``."""
    s = CELLS[kind]
    return s.run(a, a["x"], {n + "0": a.get(n + "0") for n in s.states}, mask=mask,
                 options=_options(kind, nonlinearity))


def backward(kind, cache, dhs, dh_n=None, dc_n=None):
    """Gradients as a dict ``{"dx", "dh0", ("dc0",) "d<param>"...}``."""
    dx, d0, dp = CELLS[kind].run_backward(cache, dhs, {"h": dh_n, "c": dc_n})
    return {"dx": dx, **{"d" + k: v for k, v in d0.items()}, **{"d" + k: v for k, v in dp.items()}}


def run(kind, a, *, mask=None, final=True, nonlinearity="tanh"):
    """Forward and backward of ``sum(out*dhs) + sum(h_n*dh_n) [+ sum(c_n*dc_n)]``; every
    result by name (:func:`rnnx.testing.run_case`)."""
    return agreement.run_case(CELLS[kind], a, mask=mask, final=final,
                              options=_options(kind, nonlinearity))


def loss_fn(kind, a, *, mask=None, final=True, nonlinearity="tanh"):
    """The scalar whose gradient :func:`run` computes (:func:`rnnx.testing.loss_fn`)."""
    return agreement.loss_fn(CELLS[kind], a, mask=mask, final=final,
                             options=_options(kind, nonlinearity))


def reference(kind, case, *, final=True, lengths=None, nonlinearity="tanh"):
    """The outside reference of :func:`run` in float64, under rnnx's names: torch.nn (through
    ``pack_padded_sequence`` for ``lengths``) or the cell's torch-ops oracle."""
    s = CELLS[kind]
    dh_n = case["dh_n"] if final else None
    dc_n = case.get("dc_n") if final else None
    if kind not in TORCH_LAYOUTS:
        mask = None if lengths is None else np.arange(case["x"].shape[1])[None, :] < lengths[:, None]
        ref = OPS_ORACLES[kind](case["x"], {k: case[k] for k in s.params}, h0=case["h0"],
                                c0=case.get("c0"), dhs=case["dhs"], dh_n=dh_n, dc_n=dc_n,
                                mask=mask)
        return ref
    layer = {k: case[k] for k in s.params}
    ref = torch_stack(kind, case["x"], [layer],
                      h0=None if case["h0"] is None else case["h0"][None],
                      c0=None if case.get("c0") is None else case["c0"][None],
                      dhs=case["dhs"], dh_n=dh_n, dc_n=dc_n, lengths=lengths,
                      nonlinearity=nonlinearity)
    out = {"out": ref["out"], "h_n": ref["h_n"][0], "dx": ref["dx"], "dh0": ref["dh0"][0],
           **ref["layers"][0]}
    if has_cell_state(kind):
        out["c_n"] = ref["c_n"][0]
        out["dc0"] = ref["dc0"][0]
    return out
