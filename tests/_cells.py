"""One adapter per cell kind so the functional tests (torch agreement, finite differences,
devices, masks) are written once: host case -> forward/backward on any backend -> named
results comparable with :func:`tests._oracle.torch_stack`."""

from __future__ import annotations

import numpy as np

from rnnx._backend import namespace
from rnnx.functional import (
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
BIASES = {"rnn": ("b",), "lstm": ("b",), "gru": ("b_ih", "b_hh")}


def make_case(kind, rng, batch, time, features, hidden, *, with_h0=True):
    """Host float64 case. Weights scaled ~1/sqrt(fan_in) so gates stay out of saturation and
    gradients carry signal over 20 steps."""
    gh = GATES[kind] * hidden
    case = {
        "x": rng.normal(size=(batch, time, features)),
        "w_x": rng.normal(size=(features, gh)) / np.sqrt(features),
        "w_h": rng.normal(size=(hidden, gh)) * (0.6 / np.sqrt(hidden)),
        "h0": rng.normal(size=(batch, hidden)) * 0.5 if with_h0 else None,
        "dhs": rng.normal(size=(batch, time, hidden)),
        "dh_n": rng.normal(size=(batch, hidden)),
    }
    for name in BIASES[kind]:
        case[name] = rng.normal(size=(gh,)) * 0.1
    if kind == "lstm":
        case["c0"] = rng.normal(size=(batch, hidden)) * 0.5 if with_h0 else None
        case["dc_n"] = rng.normal(size=(batch, hidden))
    return case


def inputs(kind):
    """Names of the differentiable forward arguments, in signature order."""
    state = ("h0", "c0") if kind == "lstm" else ("h0",)
    return ("x", "w_x", "w_h", *BIASES[kind], *state)


def forward(kind, a, *, mask=None, nonlinearity="tanh"):
    """``(out, cache)`` from the cell's forward on the arrays of dict ``a``."""
    if kind == "rnn":
        return rnn_forward(a["x"], a["w_x"], a["w_h"], a["b"], a["h0"], nonlinearity=nonlinearity,
                           mask=mask)
    if kind == "lstm":
        return lstm_forward(a["x"], a["w_x"], a["w_h"], a["b"], a["h0"], a["c0"], mask=mask)
    return gru_forward(a["x"], a["w_x"], a["w_h"], a["b_ih"], a["b_hh"], a["h0"], mask=mask)


def backward(kind, cache, dhs, dh_n=None, dc_n=None):
    """Gradients as a dict ``{"dx", "dh0", ("dc0",) "dw_x", "dw_h", "db" | "db_ih", "db_hh"}``."""
    if kind == "rnn":
        return rnn_backward(dhs, cache, dh_n)._asdict()
    if kind == "lstm":
        return lstm_backward(dhs, cache, dh_n, dc_n)._asdict()
    return gru_backward(dhs, cache, dh_n)._asdict()


def final_states(kind, cache):
    out = {"h_n": cache.h_n}
    if kind == "lstm":
        out["c_n"] = cache.c_n
    return out


def run(kind, a, *, mask=None, final=True, nonlinearity="tanh"):
    """Forward and backward of ``sum(out*dhs) + sum(h_n*dh_n) [+ sum(c_n*dc_n)]`` (the final
    terms only if ``final``); every result by name."""
    out, cache = forward(kind, a, mask=mask, nonlinearity=nonlinearity)
    dh_n = a["dh_n"] if final else None
    dc_n = a.get("dc_n") if final else None
    grads = backward(kind, cache, a["dhs"], dh_n, dc_n)
    return {"out": out, **final_states(kind, cache), **grads}


def loss_fn(kind, a, *, mask=None, final=True, nonlinearity="tanh"):
    """The scalar whose gradient :func:`run` computes, as a function of the inputs (for finite
    differences)."""

    def loss(**args):
        b = {**a, **args}
        out, cache = forward(kind, b, mask=mask, nonlinearity=nonlinearity)
        xp = namespace(out)
        total = xp.sum(out * a["dhs"])
        if final:
            total = total + xp.sum(cache.h_n * a["dh_n"])
            if kind == "lstm":
                total = total + xp.sum(cache.c_n * a["dc_n"])
        return total

    return loss


def torch_layer(kind, case):
    """The single-layer torch reference's arrays for one rnnx cell case."""
    return {k: case[k] for k in ("w_x", "w_h", *BIASES[kind])}


def flatten_ref(kind, ref, *, final=True):
    """Torch results under rnnx's names for a single layer, single direction."""
    out = {"out": ref["out"], "h_n": ref["h_n"][0], "dx": ref["dx"], "dh0": ref["dh0"][0],
           **ref["layers"][0]}
    if kind == "lstm":
        out["c_n"] = ref["c_n"][0]
        out["dc0"] = ref["dc0"][0]
    return out
