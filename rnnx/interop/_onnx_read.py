"""ONNX import: the weights of a model's ``RNN``/``LSTM``/``GRU`` nodes as an rnnx
:class:`~rnnx.layers.Recurrent` (:func:`from_onnx`, re-exported by :mod:`rnnx.interop`). The
layouts it reads (which cell an operator and its attributes are, the gate orders) are those of
:mod:`rnnx.interop.onnx`, which writes them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .._backend import from_host, get_namespace, host_namespace
from .._typing import Device, DType
from ..functional.registry import CELLS, Cell, get_cell
from ..layers.recurrent import Recurrent
from .onnx import _DEFAULTS, _OPS, LAYOUTS, OnnxLayout, _blocks, _onnx, _perm

if TYPE_CHECKING:
    import onnx

__all__ = ["from_onnx"]

_REFUSED = {  # attribute -> why rnnx cannot take a node that sets it
    "clip": "rnnx's cells do not clip their pre-activations",
    "input_forget": "rnnx's LSTM has no coupled input/forget gate",
    "activation_alpha": "rnnx's activations take no parameters",
    "activation_beta": "rnnx's activations take no parameters",
}


def _weights(graph: Any) -> dict[str, Any]:
    """Every constant tensor of ``graph`` by name: initializers and ``Constant`` outputs."""
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    out[node.output[0]] = numpy_helper.to_array(a.t)
    return out


def _feeds(graph: Any, name: str, source: str) -> bool:
    """Whether tensor ``name`` of ``graph`` is computed from tensor ``source``."""
    producer = {out: n for n in graph.node for out in n.output if out}
    seen, todo = set(), [name]
    while todo:
        t = todo.pop()
        if t == source:
            return True
        if t in seen or t not in producer:
            continue
        seen.add(t)
        todo.extend(i for i in producer[t].input if i)
    return False


def _cell_for(op: str, attrs: dict, where: str) -> tuple[Cell, OnnxLayout]:
    """The cell that computes ONNX operator ``op`` with the node's attributes ``attrs``."""
    for name, cop in LAYOUTS.items():
        if name in CELLS and cop.op == op and all(
                attrs.get(k, _DEFAULTS[k]) == v for k, v in cop.attrs):
            return get_cell(name), cop
    variant = ", ".join(f"{k}={attrs.get(k, d)!r}" for k, d in _DEFAULTS.items()
                        if op == "GRU")
    raise ValueError(f"{where}: no rnnx cell implements the ONNX {op} operator"
                     + (f" with {variant}" if variant else ""))


def from_onnx(path_or_model: str | os.PathLike | onnx.ModelProto, *, backend: str = "numpy",
              device: Device = None, dtype: str | DType | None = None,
              **layer_options: Any) -> Recurrent:
    """An rnnx :class:`~rnnx.layers.Recurrent` with the weights of the ``RNN``/``LSTM``/``GRU``
    nodes of an ONNX model (a path or an ``onnx.ModelProto``).

    The nodes, in graph order, are the layers of one stack (as :func:`to_onnx` writes them:
    one node per layer, each computed from the last one's output ``Y``, checked); they must
    share operator (and a GRU's ``linear_before_reset``), direction and hidden size.
    ``W``/``R``/``B`` must be constants (initializers or ``Constant`` nodes). A ``GRU`` with
    ``linear_before_reset=1`` (torch's) is a ``"gru"`` layer and keeps both biases; one with
    ``linear_before_reset=0`` (ONNX's default) is a ``"gru_reset_before"`` layer. That GRU's,
    the Elman and the LSTM biases become the cell's one bias ``Wb + Rb``. Refused, naming the
    attribute: ``direction="reverse"``, non-zero peepholes ``P``, ``clip``, ``input_forget``,
    activations other than the operator's defaults (an Elman node may use ``Relu``),
    ``hidden_size`` not matching ``W``. ``layout`` (batch-first inputs and outputs) leaves the weights as they
    are and is accepted. Initial states and ``sequence_lens`` are run-time inputs, not weights:
    pass ``h0``/``mask`` to the layer. ``backend``/``device``/``dtype``/``layer_options`` as in
    :func:`rnnx.interop.from_state_dict`: the weights are placed on ``backend``/``device`` in
    ``dtype`` (a name; default the model's).
    """
    onnx = _onnx()
    from onnx import helper

    hnp = host_namespace()
    proto = path_or_model if isinstance(path_or_model, onnx.ModelProto) else onnx.load(
        os.fspath(path_or_model))
    consts = _weights(proto.graph)
    nodes = [n for n in proto.graph.node if n.op_type in _OPS]
    if not nodes:
        raise ValueError("the ONNX model has no RNN, LSTM or GRU node")
    ops = {n.op_type for n in nodes}
    if len(ops) > 1:
        raise ValueError(f"the ONNX model mixes recurrent operators {sorted(ops)}; an rnnx stack "
                         f"has one cell")
    op = nodes[0].op_type
    spec = None
    host, shape = {}, None
    nonlinearity = "tanh"
    for k, node in enumerate(nodes):
        where = f"ONNX {op} node {node.name or k!r}"
        if k and not (len(nodes[k - 1].output) and _feeds(proto.graph, node.input[0],
                                                          nodes[k - 1].output[0])):
            raise ValueError(f"{where} does not read the output Y of the recurrent node before "
                             f"it: the graph's recurrent nodes are not one stack")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for name, why in _REFUSED.items():
            if name in attrs and (name != "input_forget" or attrs[name]):
                raise ValueError(f"{where} sets {name}={attrs[name]!r}: {why}")
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction not in ("forward", "bidirectional"):
            raise ValueError(f"{where} has direction={direction!r}: rnnx layers run forward or "
                             f"bidirectional")
        dirs = 2 if direction == "bidirectional" else 1
        node_spec, cop = _cell_for(op, attrs, where)
        if spec is not None and node_spec is not spec:
            raise ValueError(f"{where} is a {node_spec.name!r} layer, the nodes before it "
                             f"{spec.name!r} layers: an rnnx stack has one cell")
        spec = node_spec
        acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
        defaults = list(_OPS[op].activations)
        allowed = [defaults * dirs] + ([["Relu"] * dirs] if op == "RNN" else [])
        if acts and acts not in allowed:
            raise ValueError(f"{where} has activations={acts}: rnnx implements "
                             f"{' or '.join(map(str, allowed))}")
        if acts == ["Relu"] * dirs and op == "RNN":
            nonlinearity = "relu"
        ins = list(node.input) + [""] * (8 - len(node.input))
        missing = [n for n in ins[1:3] if n not in consts]
        if missing:
            raise ValueError(f"{where}: weights {missing} are not constants of the model")
        w, r = consts[ins[1]], consts[ins[2]]
        gates = len(_OPS[op].gate_order)
        hidden = int(r.shape[-1])
        if int(w.shape[1]) != gates * hidden or attrs.get("hidden_size", hidden) != hidden:
            raise ValueError(f"{where} has hidden_size={attrs.get('hidden_size')} but W of shape "
                             f"{tuple(w.shape)} and R of shape {tuple(r.shape)}")
        if int(w.shape[0]) != dirs:
            raise ValueError(f"{where}: W has {w.shape[0]} direction(s), direction={direction!r}")
        if op == "LSTM" and ins[7] and (ins[7] not in consts or bool(hnp.any(consts[ins[7]] != 0))):
            raise ValueError(f"{where} has peepholes P: rnnx's LSTM has no peephole connections")
        b = consts[ins[3]] if ins[3] else hnp.zeros((dirs, 2 * gates * hidden), dtype=w.dtype)
        if ins[3] and ins[3] not in consts:
            raise ValueError(f"{where}: bias {ins[3]!r} is not a constant of the model")
        if shape is not None and (shape != (dirs, hidden)):
            raise ValueError(f"{where} has {dirs} direction(s) and hidden size {hidden}; the "
                             f"layers before it {shape[0]} and {shape[1]}: not one rnnx stack")
        if shape is not None and int(w.shape[2]) != dirs * hidden:
            raise ValueError(f"{where} takes {w.shape[2]} inputs, not the {dirs * hidden} "
                             f"outputs of the layer before it")
        shape = (dirs, hidden)
        inv = [_perm(spec, op).index(j) for j in range(gates)]  # rnnx block j = ONNX block inv[j]
        for d in range(dirs):
            sfx = f"l{k}" + ("_reverse" if d else "")
            wb = _blocks(b[d][:gates * hidden], inv, hidden, hnp)  # (G*H,)
            rb = _blocks(b[d][gates * hidden:], inv, hidden, hnp)  # (G*H,)
            host[f"{sfx}.w_x"] = _blocks(w[d], inv, hidden, hnp).T  # (F, G*H)
            host[f"{sfx}.w_h"] = _blocks(r[d], inv, hidden, hnp).T  # (H, G*H)
            if cop.split_bias:
                host[f"{sfx}.b_ih"], host[f"{sfx}.b_hh"] = wb, rb
            else:
                host[f"{sfx}.b"] = wb + rb
    xp = get_namespace(backend)
    dt = getattr(xp, dtype) if isinstance(dtype, str) else dtype
    if dt is None:
        dt = getattr(xp, str(host["l0.w_x"].dtype))
    params = {k: from_host(v, xp=xp, device=device, dtype=dt) for k, v in host.items()}
    return Recurrent.from_weights(params, cell=spec.name, num_layers=len(nodes),
                                  bidirectional=shape[0] == 2, nonlinearity=nonlinearity,
                                  **layer_options)
