"""Weights in and out of PyTorch: an rnnx recurrent layer (any cell, stacked, bidirectional) as
the equivalent ``torch.nn.RNN/LSTM/GRU`` and back.

This is an edge module, like the CLI: its whole job is to build torch modules, so it asks
:func:`rnnx._backend.torch_module` for ``torch`` inside its functions (never at import time).
The maths modules stay backend-free.

Mapping (rnnx keeps row-vector weights, torch column-vector ones)::

    weight_ih_<sfx> = w_x.T      weight_hh_<sfx> = w_h.T
    Elman, LSTM:  bias_ih_<sfx> = b, bias_hh_<sfx> = 0   (rnnx has one combined bias:
                  importing from torch stores bias_ih + bias_hh)
    GRU:          bias_ih_<sfx> = b_ih, bias_hh_<sfx> = b_hh   (both kept: b_hn sits inside the
                  reset product)

with torch's suffixes ``l0, l0_reverse, l1, ...``. rnnx -> torch -> rnnx is lossless bit for
bit; torch -> rnnx -> torch gives the same module up to how an Elman/LSTM bias is split between
``bias_ih`` and ``bias_hh`` (the sum, which is all the maths sees, is kept; the split is
recovered exactly when ``bias_hh`` was zero). Weights travel through the host
(:func:`rnnx._backend.to_numpy` / ``from_host``) so any backend and device works on either side.
"""

from __future__ import annotations

from typing import Any

from ._backend import from_host, get_namespace, to_numpy, torch_module
from .layers.recurrent import CELL_BIASES, GRU, LSTM, Recurrent, SimpleRNN, _suffixes

__all__ = ["from_state_dict", "from_torch", "to_state_dict", "to_torch"]

_TORCH_CLASSES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _describe(layer: Any) -> tuple[str, int, bool, str, dict]:
    """``(cell, num_layers, bidirectional, nonlinearity, {suffix: {name: array}})``."""
    if isinstance(layer, Recurrent):
        per = {sfx: layer.layer_params(int(sfx[1:].split("_")[0]), sfx.endswith("_reverse"))
               for sfx in _suffixes(layer.num_layers, layer.bidirectional)}
        return layer.cell, layer.num_layers, layer.bidirectional, layer.nonlinearity, per
    if isinstance(layer, SimpleRNN):
        return "rnn", 1, False, layer.nonlinearity, {"l0": layer.params}
    if isinstance(layer, LSTM):
        return "lstm", 1, False, "tanh", {"l0": layer.params}
    if isinstance(layer, GRU):
        return "gru", 1, False, "tanh", {"l0": layer.params}
    raise TypeError(f"layer must be an rnnx SimpleRNN, LSTM, GRU or Recurrent; got "
                    f"{type(layer).__name__}")


def to_state_dict(layer: Any) -> dict:
    """The ``torch.nn.RNN/LSTM/GRU`` state dict of ``layer`` (torch tensors on the CPU, in the
    layer's float dtype)."""
    torch = torch_module()

    cell, _, _, _, per = _describe(layer)
    out = {}
    for sfx, p in per.items():
        w_x = to_numpy(p["w_x"])
        out[f"weight_ih_{sfx}"] = torch.from_numpy(w_x.T.copy())
        out[f"weight_hh_{sfx}"] = torch.from_numpy(to_numpy(p["w_h"]).T.copy())
        if cell == "gru":
            out[f"bias_ih_{sfx}"] = torch.from_numpy(to_numpy(p["b_ih"]).copy())
            out[f"bias_hh_{sfx}"] = torch.from_numpy(to_numpy(p["b_hh"]).copy())
        else:
            b = to_numpy(p["b"]).copy()
            out[f"bias_ih_{sfx}"] = torch.from_numpy(b)
            out[f"bias_hh_{sfx}"] = torch.zeros_like(out[f"bias_ih_{sfx}"])
    return out


def to_torch(layer: Any) -> Any:
    """The equivalent ``torch.nn.RNN/LSTM/GRU`` (``batch_first=True``, CPU, the layer's
    dtype) with ``layer``'s weights: on the same input it gives the same outputs and states."""
    torch = torch_module()

    cell, num_layers, bidirectional, nonlinearity, per = _describe(layer)
    sd = to_state_dict(layer)
    first = per["l0"]
    extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    dropout = layer.dropout if isinstance(layer, Recurrent) else 0.0
    module = getattr(torch.nn, _TORCH_CLASSES[cell])(
        int(first["w_x"].shape[0]), int(first["w_h"].shape[0]), num_layers=num_layers,
        bidirectional=bidirectional, batch_first=True, dropout=dropout,
        dtype=sd["weight_ih_l0"].dtype, **extra)
    module.load_state_dict(sd)
    return module


def _cell_of(module: Any) -> str:
    torch = torch_module()

    for cell, name in (("lstm", "LSTM"), ("gru", "GRU"), ("rnn", "RNN")):
        if isinstance(module, getattr(torch.nn, name)):
            return cell
    raise TypeError(f"module must be a torch.nn.RNN, LSTM or GRU; got {type(module).__name__}")


def from_state_dict(
    state_dict: dict,
    *,
    cell: str,
    num_layers: int = 1,
    bidirectional: bool = False,
    nonlinearity: str = "tanh",
    backend: str = "numpy",
    device: Any = None,
    dtype: Any = None,
    stacked: bool | None = None,
    **layer_options: Any,
) -> Any:
    """An rnnx layer from a ``torch.nn.RNN/LSTM/GRU`` state dict.

    Returns :class:`~rnnx.layers.SimpleRNN`/:class:`~rnnx.layers.LSTM`/:class:`~rnnx.layers.GRU`
    for one unidirectional layer, :class:`~rnnx.layers.Recurrent` otherwise (or always, with
    ``stacked=True``). The arrays are placed on ``backend``/``device`` with ``dtype`` (a name;
    default: the state dict's dtype). ``layer_options`` go to the layer (``return_sequences``,
    ``return_state``, ``dropout``, ...). A bias-free module (``bias=False``) gets zero biases.
    """
    if cell not in CELL_BIASES:
        raise ValueError(f"cell must be one of {sorted(CELL_BIASES)}; got {cell!r}")
    if any(k.endswith("_hr") or "weight_hr" in k for k in state_dict):
        raise ValueError("LSTMs with proj_size > 0 have no rnnx equivalent")
    xp = get_namespace(backend)
    params = {}
    for sfx in _suffixes(num_layers, bidirectional):
        try:
            w_ih = to_numpy(state_dict[f"weight_ih_{sfx}"])
            w_hh = to_numpy(state_dict[f"weight_hh_{sfx}"])
        except KeyError as exc:
            raise ValueError(f"state_dict has no {exc.args[0]!r}: does num_layers="
                             f"{num_layers}, bidirectional={bidirectional} match it?") from None
        zeros = w_ih[:, 0] * 0.0
        b_ih = to_numpy(state_dict[f"bias_ih_{sfx}"]) if f"bias_ih_{sfx}" in state_dict else zeros
        b_hh = to_numpy(state_dict[f"bias_hh_{sfx}"]) if f"bias_hh_{sfx}" in state_dict else zeros
        dt = getattr(xp, dtype) if isinstance(dtype, str) else dtype
        if dt is None:
            dt = getattr(xp, str(w_ih.dtype))
        host = {"w_x": w_ih.T, "w_h": w_hh.T}
        if cell == "gru":
            host.update(b_ih=b_ih, b_hh=b_hh)
        else:
            host["b"] = b_ih + b_hh
        params.update({f"{sfx}.{k}": from_host(v, xp=xp, device=device, dtype=dt)
                       for k, v in host.items()})
    if stacked is None:
        stacked = num_layers > 1 or bidirectional
    if stacked:
        return Recurrent.from_weights(params, cell=cell, num_layers=num_layers,
                                      bidirectional=bidirectional, nonlinearity=nonlinearity,
                                      **layer_options)
    p = {k[len("l0."):]: v for k, v in params.items()}
    if cell == "rnn":
        return SimpleRNN.from_weights(p["w_x"], p["w_h"], p["b"], nonlinearity=nonlinearity,
                                      **layer_options)
    if cell == "lstm":
        return LSTM.from_weights(p["w_x"], p["w_h"], p["b"], **layer_options)
    return GRU.from_weights(p["w_x"], p["w_h"], p["b_ih"], p["b_hh"], **layer_options)


def from_torch(module: Any, *, backend: str = "numpy", device: Any = None, dtype: Any = None,
               stacked: bool | None = None, **layer_options: Any) -> Any:
    """An rnnx layer equivalent to ``module`` (a ``torch.nn.RNN/LSTM/GRU``); see
    :func:`from_state_dict`. The module's ``dropout`` is carried over to a stacked layer."""
    cell = _cell_of(module)
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTMs with proj_size > 0 have no rnnx equivalent")
    extra = {"nonlinearity": module.nonlinearity} if cell == "rnn" else {}
    is_stacked = stacked if stacked is not None else (module.num_layers > 1 or module.bidirectional)
    if is_stacked and "dropout" not in layer_options:
        layer_options["dropout"] = float(module.dropout)
    return from_state_dict(module.state_dict(), cell=cell, num_layers=module.num_layers,
                           bidirectional=module.bidirectional, backend=backend, device=device,
                           dtype=dtype, stacked=is_stacked, **extra, **layer_options)
