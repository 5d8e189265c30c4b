"""Weights in and out of Keras 3: ``keras.layers.SimpleRNN``/``LSTM``/``GRU`` (or a
``keras.layers.RNN`` of one such cell) and ``Bidirectional`` of one, as an rnnx
:class:`~rnnx.layers.Recurrent` with the same outputs, and back. Re-exported by
:mod:`rnnx.interop`; see ``docs/keras.md``.

``keras`` is imported inside the functions (it is a test-only dependency of rnnx), never at import
time; Keras 3 needs a backend of its own (``KERAS_BACKEND``: torch, jax or tensorflow).

Layout (Keras keeps row-vector weights, like rnnx: no transposes)::

    kernel           (features, G*hidden) = w_x    (gate blocks reordered, below)
    recurrent_kernel (hidden, G*hidden)   = w_h
    bias             (G*hidden,)          = b          SimpleRNN, LSTM, GRU(reset_after=False)
                     (2, G*hidden)        = b_ih, b_hh GRU(reset_after=True), the default

    gate blocks    Keras          rnnx
    LSTM           i, f, c, o     i, f, g, o   (c is rnnx's g: the same order)
    GRU            z, r, h        r, z, n      (h is rnnx's n: the first two swap)

``GRU(reset_after=True)`` is rnnx's ``gru`` (torch's GRU: the reset gate multiplies
``h W_hn + b_hn``); ``GRU(reset_after=False)`` is the cell :data:`GRU_RESET_BEFORE`
(``n = tanh(x W_xn + b_n + (r * h) W_hn)``, one bias).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._backend import from_host, get_namespace, host_namespace, to_numpy
from .._typing import Device, DType
from ..functional.registry import CELLS, get_cell

if TYPE_CHECKING:
    import keras

    from ..layers import Recurrent

__all__ = ["GRU_RESET_BEFORE", "LAYOUTS", "KerasLayout", "from_keras", "to_keras"]

#: The registry name of the reset-before GRU (Keras ``GRU(reset_after=False)``): the one place
#: the name is written here.
GRU_RESET_BEFORE = "gru_reset_before"


@dataclass(frozen=True)
class KerasLayout:
    """How a cell maps onto a Keras 3 layer: the layer and cell classes (``"GRU"``,
    ``"GRUCell"``), the Keras gate blocks in rnnx's gate names, whether Keras's bias is split
    ``(2, G*hidden)``, and the constructor options that select this cell
    (``{"reset_after": True}``)."""

    layer: str
    cell: str
    gate_order: tuple[str, ...]
    split_bias: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


#: The registered cells that a Keras 3 layer computes, by registry name (a cell registered from
#: outside rnnx with a Keras equivalent adds its entry here).
LAYOUTS: dict[str, KerasLayout] = {
    "rnn": KerasLayout("SimpleRNN", "SimpleRNNCell", ("h",)),
    "lstm": KerasLayout("LSTM", "LSTMCell", ("i", "f", "g", "o")),
    "gru": KerasLayout("GRU", "GRUCell", ("z", "r", "n"), split_bias=True,
                       options={"reset_after": True}),
    GRU_RESET_BEFORE: KerasLayout("GRU", "GRUCell", ("z", "r", "n"),
                                  options={"reset_after": False}),
}


def _keras_layouts() -> dict[str, KerasLayout]:
    """The registered cells that have a Keras layer, by name."""
    return {n: layout for n, layout in LAYOUTS.items() if n in CELLS}


def _keras() -> Any:
    try:
        keras = importlib.import_module("keras")
    except ImportError as exc:
        raise RuntimeError(f"Keras interop needs keras 3 and a backend for it (KERAS_BACKEND=torch, "
                           f"jax or tensorflow): {exc}") from None
    if not hasattr(keras, "ops"):
        raise RuntimeError(f"Keras interop needs keras 3; this is keras {keras.__version__}")
    return keras


def _act_name(keras: Any, fn: Any) -> str:
    """The name of a Keras activation: a built-in's name, else the object's ``repr``."""
    for name in ("tanh", "relu", "sigmoid", "hard_sigmoid", "linear"):
        if fn is getattr(keras.activations, name, None):
            return name
    return getattr(fn, "__name__", repr(fn))


def _host(keras: Any, v: Any) -> Any:
    """A host copy of a Keras variable's (or tensor's) values, through its backend tensor and
    rnnx's host helper (``keras.ops.convert_to_numpy`` goes through ``np.array``, which warns
    on torch tensors under NumPy 2)."""
    value = getattr(v, "value", v)
    try:
        host = to_numpy(value)  # torch, jax
    except TypeError:  # a backend array_api_compat does not know (tensorflow)
        host = keras.ops.convert_to_numpy(value)
    return host_namespace().asarray(host, copy=True)


def _perm(layout: KerasLayout, order: tuple[str, ...]) -> list[int]:
    """Gate block ``k`` of ``layout``'s order is block ``perm[k]`` of ``order``."""
    return [order.index(g) for g in layout.gate_order]


def _blocks(a: Any, order: list[int], hidden: int, hnp: Any) -> Any:
    """``a`` with its last ``G*hidden`` axis reordered block by block (a copy)."""
    return hnp.concat([a[..., k * hidden:(k + 1) * hidden] for k in order], axis=-1)


# -- Keras -> rnnx ----------------------------------------------------------------------------

def _directions(keras: Any, layer: Any) -> tuple[list[Any], str]:
    """The Keras RNN layer(s) of ``layer`` (one, or forward and backward of a ``Bidirectional``)
    and a name for messages."""
    if isinstance(layer, keras.layers.Bidirectional):
        where = f"Bidirectional({type(layer.forward_layer).__name__})"
        if layer.merge_mode != "concat":
            raise ValueError(f"{where} has merge_mode={layer.merge_mode!r}: rnnx's bidirectional "
                             f"layers concatenate the two directions (merge_mode='concat' only)")
        if str(layer.compute_dtype) not in ("float32", "float64"):
            raise ValueError(f"{where} has the dtype policy {layer.dtype_policy.name!r}: it casts "
                             f"its output to {layer.compute_dtype}; rnnx computes in float32 or "
                             f"float64")
        fwd, bwd = layer.forward_layer, layer.backward_layer
        if not (isinstance(fwd, keras.layers.RNN) and isinstance(bwd, keras.layers.RNN)):
            raise TypeError(f"{where} wraps {type(fwd).__name__} and {type(bwd).__name__}; rnnx "
                            f"converts a Bidirectional of SimpleRNN, LSTM or GRU layers")
        if fwd.go_backwards or not bwd.go_backwards:
            raise ValueError(f"{where} has forward go_backwards={fwd.go_backwards}, backward "
                             f"go_backwards={bwd.go_backwards}: rnnx's reverse direction is the "
                             f"backward layer (False, True)")
        return [fwd, bwd], where
    if not isinstance(layer, keras.layers.RNN):
        raise TypeError(f"layer must be a Keras SimpleRNN, LSTM or GRU layer (or an RNN of one "
                        f"such cell), or a Bidirectional of one; got {type(layer).__name__}")
    where = type(layer).__name__
    if layer.go_backwards:
        raise ValueError(f"{where} has go_backwards=True: rnnx runs a single direction forward "
                         f"in time (a reverse direction exists only inside a bidirectional layer: "
                         f"wrap it in keras.layers.Bidirectional)")
    return [layer], where


def _check_direction(keras: Any, rnn: Any, where: str) -> tuple[str, str]:
    """``(rnnx cell name, nonlinearity)`` of one Keras RNN layer; ``ValueError``/``TypeError``
    naming what rnnx does not have and what was given."""
    cell = rnn.cell
    kinds = {name: getattr(keras.layers, c.cell) for name, c in _keras_layouts().items()}
    if isinstance(cell, keras.layers.StackedRNNCells):
        raise TypeError(f"{where} runs StackedRNNCells ({len(cell.cells)} cells): rnnx converts "
                        f"one cell per Keras layer (stacked rnnx layers are Keras layers one after "
                        f"the other)")
    if not any(isinstance(cell, k) for k in kinds.values()):
        raise TypeError(f"{where} has a cell of type {type(cell).__name__}; rnnx converts "
                        f"SimpleRNNCell, LSTMCell and GRUCell")
    if not rnn.built or getattr(cell, "kernel", None) is None:
        raise ValueError(f"{where} is not built: it has no weights yet (call it on an input, or "
                         f"build((batch, time, features)), first)")
    if rnn.stateful:
        raise ValueError(f"{where} has stateful=True: an rnnx layer keeps no state between calls "
                         f"(pass the last call's final_state as h0/c0 instead)")
    for name in ("dropout", "recurrent_dropout"):
        value = float(getattr(cell, name, 0.0))
        if value > 0:
            raise ValueError(f"{where} has {name}={value:g}: rnnx has no {name} inside the cell "
                             f"(it acts at training; rnnx's dropout acts between stacked layers)")
    policy = (str(rnn.variable_dtype), str(rnn.compute_dtype))
    if policy[0] != policy[1] or policy[1] not in ("float32", "float64"):
        raise ValueError(f"{where} has the dtype policy {rnn.dtype_policy.name!r} (variables "
                         f"{policy[0]}, compute {policy[1]}): rnnx computes in its weights' dtype, "
                         f"float32 or float64")
    name = next(n for n, k in kinds.items() if isinstance(cell, k) and all(
        getattr(cell, o) == v for o, v in LAYOUTS[n].options.items()))
    spec = get_cell(name)
    act = _act_name(keras, cell.activation)
    if "nonlinearity" in spec.options:  # the Elman cell: its activation is the option
        allowed = spec.options["nonlinearity"]
        if act not in allowed:
            raise ValueError(f"{where} has activation={act!r}: rnnx's {spec.name} cell "
                             f"implements {' and '.join(map(repr, allowed))}")
        return name, act
    if act != "tanh":
        raise ValueError(f"{where} has activation={act!r}: rnnx's gated cells use 'tanh'")
    rec = _act_name(keras, cell.recurrent_activation)
    if rec != "sigmoid":
        raise ValueError(f"{where} has recurrent_activation={rec!r}: rnnx's gates use 'sigmoid'")
    return name, "tanh"


def _host_weights(keras: Any, rnn: Any, spec: Any, layout: KerasLayout) -> dict[str, Any]:
    """The rnnx parameters (host arrays, the variables' dtype) of one Keras RNN layer."""
    hnp = host_namespace()
    cell = rnn.cell
    hidden = int(cell.units)
    inv = [layout.gate_order.index(g) for g in spec.gate_order]  # rnnx block k = Keras inv[k]
    kernel = _host(keras, cell.kernel)  # (F, G*H)
    recurrent = _host(keras, cell.recurrent_kernel)  # (H, G*H)
    if cell.use_bias:
        bias = _host(keras, cell.bias)  # (G*H,) or (2, G*H)
    else:  # the same maths with zero biases
        shape = (2, spec.gates * hidden) if layout.split_bias else (spec.gates * hidden,)
        bias = hnp.zeros(shape, dtype=kernel.dtype)
    out = {"w_x": _blocks(kernel, inv, hidden, hnp), "w_h": _blocks(recurrent, inv, hidden, hnp)}
    if layout.split_bias:
        out.update(b_ih=_blocks(bias[0], inv, hidden, hnp), b_hh=_blocks(bias[1], inv, hidden, hnp))
    else:
        out["b"] = _blocks(bias, inv, hidden, hnp)
    return out


def from_keras(layer: keras.layers.Layer, *, backend: str = "numpy", device: Device = None,
               dtype: str | DType | None = None, **layer_options: Any) -> Recurrent:
    """An rnnx :class:`~rnnx.layers.Recurrent` (one layer) with the weights of a built Keras 3
    ``SimpleRNN``/``LSTM``/``GRU`` layer (or ``keras.layers.RNN`` of a ``SimpleRNNCell``/
    ``LSTMCell``/``GRUCell``), or of a ``Bidirectional`` of one (``merge_mode="concat"``).

    On the same input ``x (batch, time, features)`` it gives the Keras layer's output:
    ``(batch, hidden)`` (``(batch, 2*hidden)`` bidirectional, forward direction first), or
    ``(batch, time, ...)`` with ``return_sequences``; with ``return_state`` Keras's
    ``[output, h, c]`` (bidirectional: ``[output, h_fwd, c_fwd, h_bwd, c_bwd]``) is rnnx's
    ``(output, (h_n, c_n))`` with ``h_n[d]``/``c_n[d]`` ``(batch, hidden)`` per direction ``d``.
    ``return_sequences``/``return_state`` are taken from the Keras layer unless given in
    ``layer_options``.

    Cells: ``SimpleRNN`` (``activation`` ``"tanh"`` or ``"relu"``) -> ``rnn``; ``LSTM`` ->
    ``lstm``; ``GRU(reset_after=True)`` -> ``gru`` (its ``(2, 3*hidden)`` bias is ``b_ih``,
    ``b_hh``); ``GRU(reset_after=False)`` -> :data:`GRU_RESET_BEFORE` (one bias).
    ``use_bias=False`` gives zero biases (the same maths); ``unroll`` and training-only settings
    (initialisers, regularisers, constraints, seed) change no output and are not carried.
    Refused, naming the option and its value: ``stateful=True``, ``go_backwards=True`` outside a
    ``Bidirectional``, merge modes other than ``"concat"``, ``dropout``/``recurrent_dropout`` > 0,
    other activations and recurrent activations, a mixed-precision dtype policy, stacked cells,
    an unbuilt layer (``ValueError``) and other layer or cell classes (``TypeError``).

    The parameters are host copies placed on ``backend``/``device`` (NumPy host arrays by
    default) with ``dtype`` (a name; default: the Keras variables' dtype); ``layer_options`` go
    to :meth:`Recurrent.from_weights <rnnx.layers.Recurrent.from_weights>`.
    """
    from ..layers.recurrent import Recurrent

    keras = _keras()
    rnns, where = _directions(keras, layer)
    found = [_check_direction(keras, r, f"{where} ({'backward' if d else 'forward'} layer)"
                              if len(rnns) == 2 else where) for d, r in enumerate(rnns)]
    units = {int(r.cell.units) for r in rnns}
    if len(set(found)) > 1 or len(units) > 1:
        raise ValueError(f"{where} has a forward layer ({found[0][0]}, {rnns[0].cell.units} units) "
                         f"and a backward layer ({found[1][0]}, {rnns[1].cell.units} units) that "
                         f"differ: an rnnx bidirectional layer runs one cell both ways")
    name, nonlinearity = found[0]
    spec = get_cell(name)
    layout = LAYOUTS[name]
    xp = get_namespace(backend)
    params = {}
    for d, rnn in enumerate(rnns):
        host = _host_weights(keras, rnn, spec, layout)
        dt = getattr(xp, dtype) if isinstance(dtype, str) else dtype
        if dt is None:
            dt = getattr(xp, str(host["w_x"].dtype))
        sfx = "l0_reverse" if d else "l0"
        params.update({f"{sfx}.{k}": from_host(v, xp=xp, device=device, dtype=dt)
                       for k, v in host.items()})
    options = {"return_sequences": bool(layer.return_sequences),
               "return_state": bool(layer.return_state), **layer_options}
    return Recurrent.from_weights(params, cell=name, num_layers=1, bidirectional=len(rnns) == 2,
                                  nonlinearity=nonlinearity, **options)


# -- rnnx -> Keras ----------------------------------------------------------------------------

def to_keras(layer: Recurrent) -> keras.layers.Layer:
    """A built Keras 3 layer with the weights of a one-layer rnnx
    :class:`~rnnx.layers.Recurrent` (or :class:`~rnnx.layers.SimpleRNN`/``LSTM``/``GRU``):
    ``keras.layers.SimpleRNN`` (``activation`` the layer's nonlinearity), ``LSTM``,
    ``GRU(reset_after=True)`` for ``gru``, ``GRU(reset_after=False)`` for
    :data:`GRU_RESET_BEFORE`; a bidirectional layer gives ``keras.layers.Bidirectional(...,
    merge_mode="concat")``. On the same input ``(batch, time, features)`` it gives rnnx's outputs
    (mapping: :func:`from_keras`); ``return_sequences``/``return_state`` are the rnnx layer's.

    The Keras layer has the rnnx weights' dtype (``float32``/``float64``) and lives wherever the
    Keras backend puts its variables. Refused: stacked layers (``num_layers > 1``: Keras stacks
    layers itself, one recurrent layer per rnnx layer; convert a one-layer stack), cells
    without a Keras layer (``ln_lstm``; ``ValueError`` naming those that have one) and anything
    that is not an rnnx recurrent layer (``TypeError``).
    """
    from ..layers.recurrent import Recurrent

    if not isinstance(layer, Recurrent):
        raise TypeError(f"layer must be an rnnx SimpleRNN, LSTM, GRU or Recurrent; got "
                        f"{type(layer).__name__}")
    spec = layer.spec
    if spec.name not in _keras_layouts():
        known = ", ".join(_keras_layouts())
        raise ValueError(f"cell {spec.name!r} ({spec.summary}) has no Keras layer; cells that "
                         f"have one: {known}")
    if layer.num_layers > 1:
        raise ValueError(f"the rnnx layer has num_layers={layer.num_layers}: Keras stacks layers "
                         f"itself (one recurrent layer per rnnx layer, all but the last with "
                         f"return_sequences=True); to_keras converts a one-layer Recurrent")
    keras = _keras()
    hnp = host_namespace()
    layout = LAYOUTS[spec.name]
    hidden, features = layer.hidden_size, layer.input_size
    perm = _perm(layout, spec.gate_order)  # Keras block k = rnnx block perm[k]
    per = [{k: to_numpy(v) for k, v in layer.layer_params(0, bool(d)).items()}
           for d in range(layer.dirs)]
    dtype = str(per[0]["w_x"].dtype)
    kwargs = dict(layout.options, units=hidden, return_sequences=layer.return_sequences,
                  return_state=layer.return_state, dtype=dtype)
    if "nonlinearity" in layer.options:
        kwargs["activation"] = layer.nonlinearity
    out = getattr(keras.layers, layout.layer)(**kwargs)
    if layer.bidirectional:
        out = keras.layers.Bidirectional(out, merge_mode="concat", dtype=dtype)
    out.build((None, None, features))
    rnns = [out.forward_layer, out.backward_layer] if layer.bidirectional else [out]
    for rnn, p in zip(rnns, per):
        rnn.cell.kernel.assign(_blocks(p["w_x"], perm, hidden, hnp))  # (F, G*H)
        rnn.cell.recurrent_kernel.assign(_blocks(p["w_h"], perm, hidden, hnp))  # (H, G*H)
        if layout.split_bias:
            rnn.cell.bias.assign(hnp.stack([_blocks(p["b_ih"], perm, hidden, hnp),
                                            _blocks(p["b_hh"], perm, hidden, hnp)]))  # (2, G*H)
        else:
            rnn.cell.bias.assign(_blocks(p["b"], perm, hidden, hnp))  # (G*H,)
    return out
