"""PyTorch autograd as the outside reference: ``torch.nn.RNN`` with rnnx's weights copied in.

rnnx stores ``w_x (features, hidden)`` and ``w_h (hidden, hidden)`` for row-vector maths; torch
stores ``weight_ih = w_x.T`` and ``weight_hh = w_h.T`` and has two biases, so rnnx's ``b`` is
``bias_ih + bias_hh`` (here: all of it in ``bias_ih``, zeros in ``bias_hh``).
"""

from __future__ import annotations

import numpy as np
import pytest


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
