"""Test adapters for the minimal RNNs (minGRU, minLSTM) and the linear scan: host cases, the
parallel forms on any backend, the sequential step form as a plain loop, and the outside
reference (the paper's equations in torch operations, differentiated by torch autograd)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import namespace
from rnnx.functional import min_gru, min_lstm

KINDS = ["min_gru", "min_lstm"]
GATES = {"min_gru": 2, "min_lstm": 3}
_FUNCS = {
    "min_gru": (min_gru.min_gru_forward, min_gru.min_gru_backward, min_gru.min_gru_step,
                min_gru.min_gru_step_backward),
    "min_lstm": (min_lstm.min_lstm_forward, min_lstm.min_lstm_backward, min_lstm.min_lstm_step,
                 min_lstm.min_lstm_step_backward),
}
#: The differentiable inputs, in the forward's argument order.
INPUTS = ("x", "w_x", "b", "h0")
#: Every result of a forward and backward run, by name.
RESULTS = ("out", "h_n", "dx", "dh0", "dw_x", "db")


def make_case(kind, rng, batch, time, features, hidden, *, with_h0=True, memory="short"):
    """Host float64 case: ``x``, ``w_x`` (scaled ``1/sqrt(features)``, so pre-activations are
    about unit normal and ``g``'s two branches are both taken), ``b``, ``h0`` (or ``None``),
    ``dhs``, ``dh_n``. ``memory="long"`` or ``"longer"`` biases the gates to keep the state
    (``a = 1 - z`` or ``f'`` near 0.98 or 0.9997): errors and gradients then travel over tens
    or thousands of steps (:func:`rnnx.testing._scan.scan_memory` about 30 or 1500)."""
    gates = GATES[kind]
    case = {"x": rng.normal(size=(batch, time, features)),
            "w_x": rng.normal(size=(features, gates * hidden)) / math.sqrt(features),
            "b": 0.1 * rng.normal(size=(gates * hidden,))}
    if memory != "short":
        shift = {"long": 4.0, "longer": 8.0}[memory]
        if kind == "min_gru":
            case["b"][:hidden] -= shift  # z = sigmoid(-shift): a = 1 - z near 1
        else:  # f = sigmoid(shift), i = sigmoid(-shift): f' = sigmoid(d), d near shift
            case["b"][:hidden] += shift
            case["b"][hidden : 2 * hidden] -= shift
        case["w_x"][:, :hidden] *= 0.1  # the kept fraction varies little from step to step
    case["h0"] = rng.normal(size=(batch, hidden)) * 0.5 if with_h0 else None
    case["dhs"] = rng.normal(size=(batch, time, hidden))
    case["dh_n"] = rng.normal(size=(batch, hidden))
    return case


def to_backend(case, put, dtype):
    return {k: (None if v is None else put(v, dtype)) for k, v in case.items()}


def coefficients(kind, case):
    """The scan's ``a`` (``1 - z`` or ``f'``) of a host case, in float64 on the host."""
    gates = GATES[kind]
    hidden = case["w_x"].shape[1] // gates
    u = case["x"] @ case["w_x"] + case["b"]
    if kind == "min_gru":
        return 1.0 / (1.0 + np.exp(u[..., :hidden]))
    d = np.logaddexp(-u[..., hidden : 2 * hidden], 0.0) - np.logaddexp(-u[..., :hidden], 0.0)
    return 1.0 / (1.0 + np.exp(-d))


def forward(kind, a, *, mask=None):
    return _FUNCS[kind][0](a["x"], a["w_x"], a["b"], a.get("h0"), mask=mask)


def backward(kind, cache, dhs, dh_n=None, *, state_grads=None):
    g = _FUNCS[kind][1](dhs, cache, dh_n, state_grads=state_grads)
    return g._asdict()


def run(kind, a, *, mask=None, final=True):
    """The parallel forms: forward and backward of ``sum(out*dhs) [+ sum(h_n*dh_n)]``."""
    out, cache = forward(kind, a, mask=mask)
    grads = backward(kind, cache, a["dhs"], a["dh_n"] if final else None)
    return {"out": out, "h_n": cache.h_n, **grads}


def loss_fn(kind, a, *, mask=None, final=True):
    """The scalar whose gradients :func:`run` computes, as a function of the inputs."""

    def f(**kw):
        args = {**a, **kw}
        out, cache = forward(kind, args, mask=mask)
        xp = namespace(out)
        loss = xp.sum(out * a["dhs"])
        if final:
            loss = loss + xp.sum(cache.h_n * a["dh_n"])
        return loss

    return f


def sequential(kind, a, *, mask=None, final=True):
    """The step form run as a plain loop (what a time-loop driver does): the input projection
    hoisted, then one :func:`min_*_step` a step, the masked carry, and the step backward in
    reverse with the weight gradients summed afterwards. ``mask``: a boolean ``(batch, time)``
    array of the inputs' namespace and device, or ``None``. Same results as :func:`run`."""
    _, _, step, step_back = _FUNCS[kind]
    x, w_x, b, h0 = a["x"], a["w_x"], a["b"], a.get("h0")
    xp = namespace(x)
    dev = device_of(x)
    batch, time, features = x.shape
    hidden = w_x.shape[1] // GATES[kind]
    u = xp.reshape(xp.reshape(x, (batch * time, features)) @ w_x + b, (batch, time, -1))
    zeros = xp.zeros((batch, hidden), dtype=x.dtype, device=dev)
    m = mask
    h = zeros if h0 is None else h0
    states, saved, outs = [h], [], []
    for t in range(time):
        (h_new,), s = step({}, u[:, t, :], None, (h,), xp=xp)
        if m is not None:
            h_new = xp.where(m[:, t, None], h_new, h)
        h = h_new
        states.append(h)
        saved.append(s)
        outs.append(h if m is None else xp.where(m[:, t, None], h, zeros))
    out = xp.stack(outs, axis=1)
    g = a["dh_n"] if final else zeros
    dus = [None] * time
    for t in range(time - 1, -1, -1):
        g = g + (a["dhs"][:, t, :] if m is None else
                 xp.where(m[:, t, None], a["dhs"][:, t, :], zeros))
        sg = step_back({}, (g,), saved[t], (states[t],), xp=xp)
        du, (g_prev,) = sg.du, sg.dstate
        if m is not None:
            du = xp.where(m[:, t, None], du, xp.zeros_like(du))
            g_prev = xp.where(m[:, t, None], g_prev, g)
        dus[t] = du
        g = g_prev
    du = xp.stack(dus, axis=1)  # (B, T, GH)
    du2 = xp.reshape(du, (batch * time, du.shape[2]))
    return {"out": out, "h_n": h, "dx": xp.reshape(du2 @ w_x.T, (batch, time, features)),
            "dh0": g, "dw_x": xp.reshape(x, (batch * time, features)).T @ du2,
            "db": xp.sum(du2, axis=0)}


def torch_reference(kind, case, *, mask=None, final=True):
    """The cell from the paper's equations in torch operations (``f / (f + i)`` written as
    such), run step by step and differentiated by torch autograd in float64: the outside
    reference. ``mask``: host boolean ``(batch, time)`` with rnnx's semantics (state carried,
    output zero where off). Returns host arrays by the names of :data:`RESULTS`."""
    torch = pytest.importorskip("torch")
    batch, time, _ = case["x"].shape
    hidden = case["w_x"].shape[1] // GATES[kind]
    t = {k: torch.from_numpy(np.array(case[k], dtype=np.float64)).requires_grad_(True)
         for k in ("x", "w_x", "b")}
    h0 = case["h0"] if case["h0"] is not None else np.zeros((batch, hidden))
    t["h0"] = torch.from_numpy(h0.copy()).requires_grad_(True)

    def g(v):
        return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))

    h, outs = t["h0"], []
    for k in range(time):
        u = t["x"][:, k, :] @ t["w_x"] + t["b"]
        if kind == "min_gru":
            z = torch.sigmoid(u[:, :hidden])
            h_new = (1 - z) * h + z * g(u[:, hidden:])
        else:
            f, i = torch.sigmoid(u[:, :hidden]), torch.sigmoid(u[:, hidden : 2 * hidden])
            h_new = f / (f + i) * h + i / (f + i) * g(u[:, 2 * hidden :])
        if mask is None:
            h = h_new
            outs.append(h)
        else:
            m = torch.from_numpy(np.asarray(mask)[:, k, None])
            h = torch.where(m, h_new, h)
            outs.append(torch.where(m, h, torch.zeros_like(h)))
    out = torch.stack(outs, dim=1)
    loss = (out * torch.from_numpy(case["dhs"])).sum()
    if final:
        loss = loss + (h * torch.from_numpy(case["dh_n"])).sum()
    loss.backward()
    return {"out": out.detach().numpy(), "h_n": h.detach().numpy(),
            **{"d" + k: v.grad.numpy() for k, v in t.items()}}
