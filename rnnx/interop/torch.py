"""Weights in and out of PyTorch: an rnnx recurrent layer (any cell with a ``torch.nn``
equivalent, stacked, bidirectional) as the equivalent ``torch.nn.RNN/LSTM/GRU`` and back.

This is an edge module, like the CLI: its whole job is to build torch modules, so it asks
:func:`rnnx._backend.torch_module` for ``torch`` inside its functions (never at import time).
The maths modules stay backend-free. Which module a cell maps to, and how its biases split, is
the cell's entry in :data:`LAYOUTS` below.

Mapping (rnnx keeps row-vector weights, torch column-vector ones)::

    weight_ih_<sfx> = w_x.T      weight_hh_<sfx> = w_h.T
    one bias (Elman, LSTM):  bias_ih_<sfx> = b, bias_hh_<sfx> = 0   (rnnx has one combined
                             bias: importing from torch stores bias_ih + bias_hh)
    split bias (GRU):        bias_ih_<sfx> = b_ih, bias_hh_<sfx> = b_hh   (both kept: b_hn sits
                             inside the reset product)

with torch's suffixes ``l0, l0_reverse, l1, ...``. rnnx -> torch -> rnnx is lossless bit for
bit; torch -> rnnx -> torch gives the same module up to how an Elman/LSTM bias is split between
``bias_ih`` and ``bias_hh`` (the sum, which is all the maths sees, is kept; the split is
recovered exactly when ``bias_hh`` was zero). Weights travel through the host
(:func:`rnnx._backend.to_numpy` / ``from_host``) so any backend and device works on either side.

"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._backend import from_host, get_namespace, to_numpy, torch_module
from .._typing import Device, DType
from ..functional.registry import CELLS, Cell, get_cell
from ..layers.recurrent import Recurrent, layer_suffixes
from ..layers.single import single_layer_class

if TYPE_CHECKING:
    import torch

__all__ = ["LAYOUTS", "TorchLayout", "from_state_dict", "from_torch", "to_state_dict",
           "to_torch"]


@dataclass(frozen=True)
class TorchLayout:
    """How a cell's weights map onto ``torch.nn.<module>``: ``weight_ih = w_x.T``, ``weight_hh =
    w_h.T`` always; ``split_bias`` keeps torch's two biases as ``b_ih``/``b_hh`` (GRU), otherwise
    rnnx's one bias ``b`` is ``bias_ih + bias_hh``. ``options`` are the run options torch's
    constructor takes under the same name (``nonlinearity``)."""

    module: str
    split_bias: bool = False
    options: tuple[str, ...] = ()


#: The registered cells that ``torch.nn`` computes, by registry name (a cell registered from
#: outside rnnx with a torch equivalent adds its entry here).
LAYOUTS: dict[str, TorchLayout] = {
    "rnn": TorchLayout("RNN", options=("nonlinearity",)),
    "lstm": TorchLayout("LSTM"),
    "gru": TorchLayout("GRU", split_bias=True),
}


def _layout(spec: Cell) -> TorchLayout:
    if spec.name not in LAYOUTS:
        known = ", ".join(n for n in CELLS if n in LAYOUTS)
        raise ValueError(f"cell {spec.name!r} ({spec.summary}) has no torch.nn equivalent; "
                         f"cells that have one: {known}")
    return LAYOUTS[spec.name]


def _describe(layer: Any) -> tuple[Cell, dict]:
    """``(cell record, {suffix: {name: array}})`` of an rnnx layer."""
    if not isinstance(layer, Recurrent):
        raise TypeError(f"layer must be an rnnx SimpleRNN, LSTM, GRU or Recurrent; got "
                        f"{type(layer).__name__}")
    per = {sfx: layer.layer_params(int(sfx[1:].split("_")[0]), sfx.endswith("_reverse"))
           for sfx in layer_suffixes(layer.num_layers, layer.bidirectional)}
    return layer.spec, per


def to_state_dict(layer: Recurrent) -> dict[str, torch.Tensor]:
    """The ``torch.nn.RNN/LSTM/GRU`` state dict of ``layer`` (torch tensors on the CPU, in the
    layer's float dtype)."""
    torch = torch_module()

    spec, per = _describe(layer)
    layout = _layout(spec)
    out = {}
    for sfx, p in per.items():
        # Copies: torch.from_numpy shares memory, and a host array may be read-only.
        out[f"weight_ih_{sfx}"] = torch.from_numpy(to_numpy(p["w_x"]).T.copy())
        out[f"weight_hh_{sfx}"] = torch.from_numpy(to_numpy(p["w_h"]).T.copy())
        if layout.split_bias:
            out[f"bias_ih_{sfx}"] = torch.from_numpy(to_numpy(p["b_ih"]).copy())
            out[f"bias_hh_{sfx}"] = torch.from_numpy(to_numpy(p["b_hh"]).copy())
        else:
            out[f"bias_ih_{sfx}"] = torch.from_numpy(to_numpy(p["b"]).copy())
            out[f"bias_hh_{sfx}"] = torch.zeros_like(out[f"bias_ih_{sfx}"])
    return out


def to_torch(layer: Recurrent) -> torch.nn.RNNBase:
    """The equivalent ``torch.nn.RNN/LSTM/GRU`` (``batch_first=True``, CPU, the layer's
    dtype) with ``layer``'s weights: on the same input it gives the same outputs and states."""
    torch = torch_module()

    spec, per = _describe(layer)
    layout = _layout(spec)
    sd = to_state_dict(layer)
    first = per["l0"]
    module = getattr(torch.nn, layout.module)(
        int(first["w_x"].shape[0]), int(first["w_h"].shape[0]), num_layers=layer.num_layers,
        bidirectional=layer.bidirectional, batch_first=True, dropout=layer.dropout,
        dtype=sd["weight_ih_l0"].dtype, **{k: layer.options[k] for k in layout.options})
    module.load_state_dict(sd)
    return module


def _cell_of(module: Any) -> Cell:
    torch = torch_module()

    mine = [(get_cell(n), getattr(torch.nn, layout.module)) for n, layout in LAYOUTS.items()
            if n in CELLS]
    for spec, cls in mine:
        if type(module) is cls:
            return spec
    for spec, cls in mine:  # a subclass of a torch.nn recurrent module
        if isinstance(module, cls):
            return spec
    raise TypeError(f"module must be a torch.nn.RNN, LSTM or GRU; got {type(module).__name__}")


def from_state_dict(
    state_dict: Mapping[str, Any],
    *,
    cell: str,
    num_layers: int = 1,
    bidirectional: bool = False,
    nonlinearity: str = "tanh",
    backend: str = "numpy",
    device: Device = None,
    dtype: str | DType | None = None,
    stacked: bool | None = None,
    **layer_options: Any,
) -> Recurrent:
    """An rnnx layer from a ``torch.nn.RNN/LSTM/GRU`` state dict.

    Returns :class:`~rnnx.layers.SimpleRNN`/:class:`~rnnx.layers.LSTM`/:class:`~rnnx.layers.GRU`
    for one unidirectional layer, :class:`~rnnx.layers.Recurrent` otherwise (or always, with
    ``stacked=True``). The arrays are placed on ``backend``/``device`` with ``dtype`` (a name;
    default: the state dict's dtype). ``layer_options`` go to the layer (``return_sequences``,
    ``return_state``, ``dropout``, ...). A bias-free module (``bias=False``) gets zero biases.
    """
    spec = get_cell(cell)
    layout = _layout(spec)
    if any(k.endswith("_hr") or "weight_hr" in k for k in state_dict):
        raise ValueError("LSTMs with proj_size > 0 have no rnnx equivalent")
    xp = get_namespace(backend)
    params = {}
    for sfx in layer_suffixes(num_layers, bidirectional):
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
        if layout.split_bias:
            host.update(b_ih=b_ih, b_hh=b_hh)
        else:
            host["b"] = b_ih + b_hh
        params.update({f"{sfx}.{k}": from_host(v, xp=xp, device=device, dtype=dt)
                       for k, v in host.items()})
    single = single_layer_class(spec.name)
    if stacked is None:
        stacked = num_layers > 1 or bidirectional or single is None
    if stacked:
        return Recurrent.from_weights(params, cell=spec.name, num_layers=num_layers,
                                      bidirectional=bidirectional, nonlinearity=nonlinearity,
                                      **layer_options)
    return single.from_params({k[len("l0."):]: v for k, v in params.items()},
                              nonlinearity=nonlinearity, **layer_options)


def from_torch(module: torch.nn.RNNBase, *, backend: str = "numpy", device: Device = None,
               dtype: str | DType | None = None, stacked: bool | None = None,
               **layer_options: Any) -> Recurrent:
    """An rnnx layer equivalent to ``module`` (a ``torch.nn.RNN/LSTM/GRU``); see
    :func:`from_state_dict`. The module's ``dropout`` is carried over to a stacked layer."""
    spec = _cell_of(module)
    if getattr(module, "proj_size", 0):
        raise ValueError("LSTMs with proj_size > 0 have no rnnx equivalent")
    extra = {k: getattr(module, k) for k in LAYOUTS[spec.name].options}
    is_stacked = stacked if stacked is not None else (module.num_layers > 1 or module.bidirectional)
    if is_stacked and "dropout" not in layer_options:
        layer_options["dropout"] = float(module.dropout)
    return from_state_dict(module.state_dict(), cell=spec.name, num_layers=module.num_layers,
                           bidirectional=module.bidirectional, backend=backend, device=device,
                           dtype=dtype, stacked=is_stacked, **extra, **layer_options)

