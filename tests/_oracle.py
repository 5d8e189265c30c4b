"""PyTorch autograd as the outside reference: ``torch.nn.RNN`` with rnnx's weights copied in.

rnnx stores ``w_x (features, hidden)`` and ``w_h (hidden, hidden)`` for row-vector maths; torch
stores ``weight_ih = w_x.T`` and ``weight_hh = w_h.T`` and has two biases, so rnnx's ``b`` is
``bias_ih + bias_hh`` (here: all of it in ``bias_ih``, zeros in ``bias_hh``).
"""

from __future__ import annotations

import numpy as np
import pytest


def _backward(*pairs):
    """Backpropagate the loss ``sum(a * g)`` over the ``(a, g)`` pairs whose seed gradient ``g``
    (a host array) is given: torch autograd fills every leaf's ``.grad``."""
    import torch  # the callers skipped already where it is missing

    loss = torch.zeros((), dtype=torch.float64)
    for a, g in pairs:
        if g is not None:
            loss = loss + (a * torch.from_numpy(g)).sum()
    loss.backward()


def torch_rnn(x, w_x, w_h, b, h0, dhs, nonlinearity="tanh"):
    """Forward states and gradients of ``sum(hs * dhs)`` from ``torch.nn.RNN`` in float64.

    All arguments are host float64 arrays; ``h0`` may be ``None``. Returns host arrays.
    """
    torch = pytest.importorskip("torch")
    batch, _, features = x.shape
    hidden = w_x.shape[1]
    rnn = torch.nn.RNN(features, hidden, nonlinearity=nonlinearity, batch_first=True,
                       dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(w_x.T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(w_h.T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(b))
        rnn.bias_hh_l0.zero_()
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h0_host = np.zeros((batch, hidden)) if h0 is None else h0
    h0t = torch.from_numpy(h0_host[None].copy()).requires_grad_(True)
    hs, _ = rnn(xt, h0t)
    (hs * torch.from_numpy(dhs)).sum().backward()
    return {
        "hs": hs.detach().numpy(),
        "dx": xt.grad.numpy(),
        "dh0": h0t.grad[0].numpy(),
        "dw_x": rnn.weight_ih_l0.grad.numpy().T,
        "dw_h": rnn.weight_hh_l0.grad.numpy().T,
        "db": rnn.bias_ih_l0.grad.numpy(),
    }


def torch_stack(kind, x, layers, *, h0=None, c0=None, dhs=None, dh_n=None, dc_n=None,
                lengths=None, num_layers=1, bidirectional=False, nonlinearity="tanh"):
    """``torch.nn.RNN/LSTM/GRU`` in float64 as the reference for every cell, stacked or
    bidirectional, optionally over a padded batch through ``pack_padded_sequence``.

    ``layers``: one dict per (layer, direction) in torch's order (``l0, l0_reverse, l1, ...``)
    with rnnx's arrays ``w_x (F_in, G*H)``, ``w_h (H, G*H)`` and either ``b`` (Elman, LSTM:
    copied to ``bias_ih``, ``bias_hh`` zero) or ``b_ih``/``b_hh`` (GRU). ``h0``/``c0`` are
    ``(num_layers*dirs, batch, hidden)`` host arrays or ``None``; the loss is
    ``sum(out*dhs) + sum(h_n*dh_n) + sum(c_n*dc_n)`` over the given terms. ``lengths`` is a host
    integer array (right padding). Returns host arrays: ``out``, ``h_n``, ``c_n`` (LSTM), ``dx``,
    ``dh0``, ``dc0`` (LSTM) and ``layers`` (the gradients in rnnx's names, per layer/direction).
    """
    torch = pytest.importorskip("torch")
    batch, time, features = x.shape
    hidden = layers[0]["w_h"].shape[0]
    dirs = 2 if bidirectional else 1
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    extra = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
    net = cls(features, hidden, num_layers=num_layers, bidirectional=bidirectional,
              batch_first=True, dtype=torch.float64, **extra)
    suffixes = [f"l{k}" + ("_reverse" if d else "") for k in range(num_layers) for d in range(dirs)]
    with torch.no_grad():
        for sfx, p in zip(suffixes, layers):
            getattr(net, f"weight_ih_{sfx}").copy_(torch.from_numpy(p["w_x"].T.copy()))
            getattr(net, f"weight_hh_{sfx}").copy_(torch.from_numpy(p["w_h"].T.copy()))
            if "b" in p:
                getattr(net, f"bias_ih_{sfx}").copy_(torch.from_numpy(p["b"].copy()))
                getattr(net, f"bias_hh_{sfx}").zero_()
            else:
                getattr(net, f"bias_ih_{sfx}").copy_(torch.from_numpy(p["b_ih"].copy()))
                getattr(net, f"bias_hh_{sfx}").copy_(torch.from_numpy(p["b_hh"].copy()))
    shape0 = (num_layers * dirs, batch, hidden)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h0t = torch.from_numpy(np.zeros(shape0) if h0 is None else h0.copy()).requires_grad_(True)
    c0t = torch.from_numpy(np.zeros(shape0) if c0 is None else c0.copy()).requires_grad_(True)
    state = (h0t, c0t) if kind == "lstm" else h0t
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.from_numpy(np.asarray(lengths, dtype=np.int64)), batch_first=True,
            enforce_sorted=False)
    out, fin = net(inp, state)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=time)
    h_n, c_n = fin if kind == "lstm" else (fin, None)
    _backward((out, dhs), (h_n, dh_n), (c_n, dc_n if kind == "lstm" else None))
    grads = []
    for sfx, p in zip(suffixes, layers):
        g = {"dw_x": getattr(net, f"weight_ih_{sfx}").grad.numpy().T.copy(),
             "dw_h": getattr(net, f"weight_hh_{sfx}").grad.numpy().T.copy()}
        bih = getattr(net, f"bias_ih_{sfx}").grad.numpy().copy()
        if "b" in p:
            g["db"] = bih
        else:
            g["db_ih"] = bih
            g["db_hh"] = getattr(net, f"bias_hh_{sfx}").grad.numpy().copy()
        grads.append(g)
    res = {"out": out.detach().numpy(), "h_n": h_n.detach().numpy(), "dx": xt.grad.numpy(),
           "dh0": h0t.grad.numpy(), "layers": grads}
    if kind == "lstm":
        res["c_n"] = c_n.detach().numpy()
        res["dc0"] = c0t.grad.numpy()
    return res


def torch_ln_lstm(x, p, *, h0=None, c0=None, dhs=None, dh_n=None, dc_n=None, mask=None):
    """The layer-normalised LSTM of Ba, Kiros & Hinton (2016) written in torch operations from
    its equations (``torch.nn.functional.layer_norm``, eps 1e-5), differentiated by torch
    autograd in float64: the outside reference for rnnx's hand-derived BPTT. torch ships no
    such layer. ``p`` holds rnnx's host arrays by name (``w_x``, ``w_h``, ``b``, ``gamma_x``,
    ...); ``mask`` a host boolean ``(batch, time)`` step mask with rnnx's semantics (state
    carried and output zero where off). Returns host arrays: ``out``, ``h_n``, ``c_n``, ``dx``,
    ``dh0``, ``dc0`` and ``d<param>`` for every parameter."""
    torch = pytest.importorskip("torch")
    batch, time, _ = x.shape
    hidden = p["w_h"].shape[0]
    t = {k: torch.from_numpy(np.array(v, dtype=np.float64)).requires_grad_(True) for k, v in p.items()}
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h0t = torch.from_numpy(np.zeros((batch, hidden)) if h0 is None else h0.copy()).requires_grad_(True)
    c0t = torch.from_numpy(np.zeros((batch, hidden)) if c0 is None else c0.copy()).requires_grad_(True)
    ln = torch.nn.functional.layer_norm
    h, c, outs = h0t, c0t, []
    for k in range(time):
        a = (ln(h @ t["w_h"], (4 * hidden,), t["gamma_h"], t["beta_h"], eps=1e-5)
             + ln(xt[:, k, :] @ t["w_x"], (4 * hidden,), t["gamma_x"], t["beta_x"], eps=1e-5)
             + t["b"])
        i, f, g, o = a.split(hidden, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(ln(c_new, (hidden,), t["gamma_c"], t["beta_c"],
                                                 eps=1e-5))
        if mask is None:
            h, c = h_new, c_new
            outs.append(h)
        else:
            m = torch.from_numpy(np.asarray(mask)[:, k, None])
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            outs.append(torch.where(m, h, torch.zeros_like(h)))
    out = torch.stack(outs, dim=1)
    _backward((out, dhs), (h, dh_n), (c, dc_n))
    res = {"out": out.detach().numpy(), "h_n": h.detach().numpy(), "c_n": c.detach().numpy(),
           "dx": xt.grad.numpy(), "dh0": h0t.grad.numpy(), "dc0": c0t.grad.numpy()}
    res.update({"d" + k: v.grad.numpy() for k, v in t.items()})
    return res


def torch_gru_reset_before(x, p, *, h0=None, c0=None, dhs=None, dh_n=None, dc_n=None, mask=None):
    """The reset-before GRU of Cho et al. (2014) (Keras ``reset_after=False``, ONNX
    ``linear_before_reset=0``) written in torch operations from its equations, differentiated
    by torch autograd in float64: the outside reference for rnnx's hand-derived BPTT.
    ``torch.nn.GRU`` computes only the reset-after variant. ``p`` holds rnnx's host arrays
    ``w_x (F, 3H)``, ``w_h (H, 3H)``, ``b (3H,)`` (gate blocks ``r, z, n``); ``mask`` a host
    boolean ``(batch, time)`` step mask with rnnx's semantics (state carried and output zero
    where off); ``c0``/``dc_n`` are ignored (no cell state). Returns host arrays: ``out``,
    ``h_n``, ``dx``, ``dh0``, ``dw_x``, ``dw_h``, ``db``."""
    torch = pytest.importorskip("torch")
    batch, time, _ = x.shape
    hidden = p["w_h"].shape[0]
    t = {k: torch.from_numpy(np.array(v, dtype=np.float64)).requires_grad_(True) for k, v in p.items()}
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h0t = torch.from_numpy(np.zeros((batch, hidden)) if h0 is None else h0.copy()).requires_grad_(True)
    w_xr, w_xz, w_xn = t["w_x"].split(hidden, dim=1)
    w_hr, w_hz, w_hn = t["w_h"].split(hidden, dim=1)
    b_r, b_z, b_n = t["b"].split(hidden)
    h, outs = h0t, []
    for k in range(time):
        x_k = xt[:, k, :]
        r = torch.sigmoid(x_k @ w_xr + h @ w_hr + b_r)
        z = torch.sigmoid(x_k @ w_xz + h @ w_hz + b_z)
        n = torch.tanh(x_k @ w_xn + b_n + (r * h) @ w_hn)
        h_new = (1 - z) * n + z * h
        if mask is None:
            h = h_new
            outs.append(h)
        else:
            m = torch.from_numpy(np.asarray(mask)[:, k, None])
            h = torch.where(m, h_new, h)
            outs.append(torch.where(m, h, torch.zeros_like(h)))
    out = torch.stack(outs, dim=1)
    _backward((out, dhs), (h, dh_n))
    res = {"out": out.detach().numpy(), "h_n": h.detach().numpy(), "dx": xt.grad.numpy(),
           "dh0": h0t.grad.numpy()}
    res.update({"d" + k: v.grad.numpy() for k, v in t.items()})
    return res
