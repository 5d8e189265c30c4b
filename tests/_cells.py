"""The per-cell test adapters, read off the cell registry: host case -> forward/backward on any
backend -> named results, and the outside reference for each cell (torch.nn where torch has
the cell, a torch-ops implementation of its equations where it has not). A newly registered
cell is covered by every check built on these; its one piece of new test code is its entry in
:data:`OPS_ORACLES` if torch.nn has no such layer."""

from __future__ import annotations

import contextlib

import numpy as np

from rnnx._backend import executor, forced_executor, namespace
from rnnx.functional.registry import CELLS
from rnnx.interop.torch import LAYOUTS as TORCH_LAYOUTS
from rnnx.testing import agreement, assert_close, recurrence_rtol

from ._min_rnn import torch_reference as torch_min_rnn
from ._oracle import torch_gru_reset_before, torch_ln_lstm, torch_stack

#: Every registered cell, by name: the per-cell tests are parametrized over these.
KINDS = list(CELLS)


def _min_rnn_oracle(kind):
    """The minimal RNNs' torch-ops reference (tests/_min_rnn.py, the paper's equations
    differentiated by torch autograd) with the calling convention of :data:`OPS_ORACLES`."""

    def oracle(x, p, *, h0=None, c0=None, dhs=None, dh_n=None, dc_n=None, mask=None):
        case = {"x": x, **p, "h0": h0, "dhs": dhs, "dh_n": dh_n}
        return torch_min_rnn(kind, case, mask=mask, final=dh_n is not None)

    return oracle


#: Reference implementations in torch operations for cells torch.nn does not have.
OPS_ORACLES = {"ln_lstm": torch_ln_lstm, "gru_reset_before": torch_gru_reset_before,
               "min_gru": _min_rnn_oracle("min_gru"), "min_lstm": _min_rnn_oracle("min_lstm")}


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


def forward(kind, a, *, mask=None, nonlinearity="tanh", form="auto"):
    """``(out, cache)`` from the cell's forward on the arrays of dict ``a`` (``form``:
    :meth:`rnnx.functional.registry.Cell.run`)."""
    s = CELLS[kind]
    return s.run(a, a["x"], {n + "0": a.get(n + "0") for n in s.states}, mask=mask,
                 options=_options(kind, nonlinearity), form=form)


def forms(kind):
    """The forms a cell runs in: ``("step",)``, and ``"parallel"`` where it has one."""
    return ("step",) if CELLS[kind].parallel is None else ("step", "parallel")


def backward(kind, cache, dhs, dh_n=None, dc_n=None):
    """Gradients as a dict ``{"dx", "dh0", ("dc0",) "d<param>"...}``."""
    dx, d0, dp = CELLS[kind].run_backward(cache, dhs, {"h": dh_n, "c": dc_n})
    return {"dx": dx, **{"d" + k: v for k, v in d0.items()}, **{"d" + k: v for k, v in dp.items()}}


def run(kind, a, *, mask=None, final=True, nonlinearity="tanh"):
    """Forward and backward of ``sum(out*dhs) + sum(h_n*dh_n) [+ sum(c_n*dc_n)]``; every
    result by name (:func:`rnnx.testing.run_case`). Where the backend runs the cell's tuned
    form (NumPy), every call also checks it against the readable step
    (:func:`check_tuned_against_step`)."""
    got = agreement.run_case(CELLS[kind], a, mask=mask, final=final,
                             options=_options(kind, nonlinearity))
    check_tuned_against_step(kind, a, got, mask=mask, final=final, nonlinearity=nonlinearity)
    return got


def check_tuned_against_step(kind, a, got, *, mask=None, final=True, nonlinearity="tanh"):
    """The fast form's results ``got`` (the tuned NumPy form, or a cell's parallel form) equal
    the readable step's on the same case to rounding: within the rounding bound of the case in
    its dtype (:func:`rnnx.testing.recurrence_rtol`, with the cell's ``rounding_gain``),
    relative to each array's largest magnitude. Both are computed in the case's dtype in
    different orders, so each deviates from exact arithmetic by at most that bound. Nothing to
    check where neither runs."""
    xp = namespace(a["x"])
    spec = CELLS[kind]
    tuned = spec.step is not None and spec.step.tuned is not None and executor(xp).tuned
    if not tuned and spec.parallel is None:
        return
    # The readable step: the eager loop where the tuned form would run, else the backend's own
    # executor of the step (JAX's compiled scan).
    with forced_executor("eager") if tuned else contextlib.nullcontext():
        ref = agreement.run_case(spec, a, mask=mask, final=final,
                                 options=_options(kind, nonlinearity), form="step")
    batch, time, features = a["x"].shape
    hidden = spec.hidden_size(a)
    rtol = recurrence_rtol(a["x"].dtype, xp, batch=batch, time=time, features=features,
                           hidden=hidden, gain=spec.rounding_gain)
    assert set(got) == set(ref)
    for name, value in got.items():
        scale = float(xp.max(xp.abs(ref[name])))
        assert_close(value, ref[name], rtol=0.0, atol=rtol * scale,
                     err_msg=f"{kind} fast form against its step: {name}")


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
