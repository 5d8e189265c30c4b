"""ONNX export and import: a fitted estimator (or a :class:`~rnnx.models.SequenceNetwork`) as an
ONNX model of the standard ``RNN``/``LSTM``/``GRU`` operators, and such an operator's weights
back into an rnnx :class:`~rnnx.layers.Recurrent`. Re-exported by :mod:`rnnx.interop`.

``onnx`` is imported inside the functions (the ``rnnx[onnx]`` extra), never at import time.

Layout (ONNX keeps column-vector weights per direction, like torch)::

    W[d] = w_x.T   R[d] = w_h.T   (G*hidden rows, gate blocks reordered, below)
    B[d] = [Wb, Rb]:  one bias (Elman, LSTM, reset-before GRU): Wb = b, Rb = 0
                                              (import: b = Wb + Rb)
                      split bias (GRU):       Wb = b_ih, Rb = b_hh

    gate blocks       rnnx / torch    ONNX
    LSTM              i, f, g, o      i, o, f, c  (c is rnnx's g)
    GRU               r, z, n         z, r, h     (h is rnnx's n; linear_before_reset=1)
    gru_reset_before  r, z, n         z, r, h     (linear_before_reset=0, ONNX's default)

Which operator a cell maps to is the cell's entry in :data:`LAYOUTS` below. The GRU with
``linear_before_reset=0`` is rnnx's ``gru_reset_before``: there the reset gate scales ``h``
before ``R``'s matmul, so ``Rb_h`` sits outside the reset product, as ``Wb_h`` does, and every
block's ``Wb + Rb`` is the cell's one bias. A cell without an entry (``ln_lstm``) has no ONNX
operator.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from typing import Any

from .._backend import atomic_path, from_host, get_namespace, host_namespace, to_numpy
from ..functional.registry import CELLS, Cell, get_cell

__all__ = ["LAYOUTS", "OPSET", "OnnxLayout", "from_onnx", "to_onnx"]

#: The ONNX opset the exported models import (operators RNN-14, LSTM-14, GRU-14, Softmax-13).
OPSET = 17
_IR_VERSION = 8  # the IR version that goes with opset 17: older runtimes load the file too


@dataclass(frozen=True)
class _OnnxOp:
    """One ONNX recurrent operator: its gate blocks in rnnx's names and its default
    activations (one direction)."""

    gate_order: tuple[str, ...]
    activations: tuple[str, ...]


_OPS = {
    "RNN": _OnnxOp(("h",), ("Tanh",)),
    "LSTM": _OnnxOp(("i", "o", "f", "g"), ("Sigmoid", "Tanh", "Tanh")),
    "GRU": _OnnxOp(("z", "r", "n"), ("Sigmoid", "Tanh")),
}
_ACTIVATION = {"tanh": "Tanh", "relu": "Relu"}  # rnnx's nonlinearity -> ONNX activation


_DEFAULTS = {"linear_before_reset": 0}  # the ONNX operators' defaults of the variant attributes


@dataclass(frozen=True)
class OnnxLayout:
    """How a cell maps onto an ONNX operator: ``op`` (``"RNN"``, ``"LSTM"``, ``"GRU"``; each
    operator's gate order is ONNX's, above), the attributes that select the cell's variant of it
    (``(("linear_before_reset", 1),)`` for torch's GRU), and whether the cell keeps ONNX's two
    biases ``Wb``, ``Rb`` apart (``split_bias``) or takes their sum."""

    op: str
    attrs: tuple[tuple[str, int], ...] = ()
    split_bias: bool = False


#: The registered cells that an ONNX operator computes, by registry name (a cell registered
#: from outside rnnx with an ONNX equivalent adds its entry here).
LAYOUTS: dict[str, OnnxLayout] = {
    "rnn": OnnxLayout("RNN"),
    "lstm": OnnxLayout("LSTM"),
    "gru": OnnxLayout("GRU", (("linear_before_reset", 1),), split_bias=True),
    "gru_reset_before": OnnxLayout("GRU", (("linear_before_reset", 0),)),
}


def _onnx() -> Any:
    try:
        return importlib.import_module("onnx")
    except ImportError as exc:
        raise RuntimeError(f"ONNX export/import needs the onnx package (the rnnx[onnx] extra): "
                           f"{exc}") from None


def _op_of(spec: Cell) -> OnnxLayout:
    cop = LAYOUTS.get(spec.name)
    if cop is None or cop.op not in _OPS:
        known = ", ".join(n for n in CELLS if n in LAYOUTS)
        raise ValueError(f"cell {spec.name!r} ({spec.summary}) has no ONNX operator; cells that "
                         f"have one: {known}")
    return cop


def _perm(spec: Cell, op: str) -> list[int]:
    """Block ``k`` of the ONNX layout is block ``perm[k]`` of rnnx's."""
    return [spec.gate_order.index(g) for g in _OPS[op].gate_order]


def _blocks(a: Any, order: list[int], hidden: int, hnp: Any) -> Any:
    """``a`` with its leading ``G*hidden`` axis reordered block by block."""
    return hnp.concat([a[k * hidden:(k + 1) * hidden] for k in order], axis=0)


# -- export -----------------------------------------------------------------------------------

def _parts(model: Any) -> tuple[Any, str, dict]:
    """``(network, kind, head)`` of an estimator or network: kind is ``"proba"``,
    ``"regression"`` or ``"network"``; head holds the regressor's un-scaling."""
    from ..models import RNNClassifier, RNNRegressor, SequenceNetwork

    if isinstance(model, SequenceNetwork):
        return model, "network", {}
    if isinstance(model, (RNNClassifier, RNNRegressor)):
        model._check_fitted()
        net = model.network_
        head = {"univariate": int(model._fit_ndim) == 2}
        if isinstance(model, RNNClassifier):
            head["classes"] = [c.item() if hasattr(c, "item") else c for c in model.classes_]
            return net, "proba", head
        lead = 2 if model.sequence_output else 1
        head.update(mean=model._y_mean, scale=model._y_scale, squeeze=model._y_ndim == lead)
        return net, "regression", head
    raise TypeError(f"model must be a fitted RNNClassifier, RNNRegressor, "
                    f"ScratchSimpleRNNClassifier or a SequenceNetwork; got {type(model).__name__}")


def to_onnx(model: Any, path: str | os.PathLike | None = None, *, lengths: bool = False,
            dtype: str | None = None) -> Any:
    """The ONNX model (``onnx.ModelProto``, opset :data:`OPSET`) of a fitted
    :class:`~rnnx.models.RNNClassifier`, :class:`~rnnx.models.RNNRegressor`,
    :class:`~rnnx.models.ScratchSimpleRNNClassifier` or a :class:`~rnnx.models.SequenceNetwork`,
    written atomically to ``path`` if one is given.

    The graph: input ``X`` ``(batch, time, features)`` (``(batch, time)`` for an estimator fitted
    on 2-D univariate ``X``), both dynamic, in the model's float dtype; transposed to ONNX's
    time-major layout; one ``RNN``/``LSTM``/``GRU`` node per layer (``direction=
    "bidirectional"`` for a bidirectional layer, its ``Y (time, 2, batch, hidden)`` turned into
    ``(time, batch, 2*hidden)`` for the next layer); the dense head (``MatMul`` + ``Add``) on the
    last layer's ``Y_h`` (many-to-one: each sample's last valid state, both directions, forward
    first) or on every step (``sequence_output``). First output: ``probabilities`` (classifier:
    ``Softmax``, columns as ``classes_``, kept in the model's metadata ``classes`` as JSON),
    ``predictions`` (regressor, un-scaled and shaped as its ``predict``) or ``outputs`` (a network:
    what :meth:`SequenceNetwork.forward` returns, logits for cross-entropy).

    ``lengths=True`` adds an input ``lengths`` (int64 ``(batch,)``, right padding: steps ``0 ..
    length-1`` are valid, as rnnx's ``lengths``), fed to the operators' ``sequence_lens``;
    padded steps then carry the state and output zeros, as in rnnx. (rnnx's boolean step masks,
    padding on the left or anywhere, have no ONNX equivalent.)

    ``dtype`` (``"float32"``/``"float64"``; default: the model's) is the graph's float type;
    weights of another dtype are cast. ONNX Runtime's CPU kernels of these operators are float32
    only: a float64 graph is a valid ONNX model (``onnx.reference.ReferenceEvaluator`` runs it)
    that ONNX Runtime does not run (it refuses to load ``RNN``; ``LSTM``/``GRU`` load and then
    fail, "does not support double yet"), so export a float64 model with ``dtype="float32"`` to run
    it there (its outputs then differ from the float64 model's by the weights' float32 rounding).

    Initial states are zeros; dropout is not exported (inference). ``gru_reset_before`` is
    a ``GRU`` node with ``linear_before_reset=0``. Cells without an ONNX operator (``ln_lstm``)
    are refused.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    from .._version import __version__

    hnp = host_namespace()
    net, kind, head = _parts(model)
    rec, dense = net.recurrent, net.dense
    spec = rec.spec
    cop = _op_of(spec)
    op = cop.op
    elems = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}
    if dtype is not None and dtype not in elems:
        raise ValueError(f"dtype must be 'float32', 'float64' or None (the model's); got {dtype!r}")
    dt = hnp.dtype(dtype) if dtype is not None else to_numpy(dense.params["w"]).dtype
    elem = elems[str(dt)]
    hidden, dirs, order = rec.hidden_size, rec.dirs, _perm(spec, op)
    acts = list(_OPS[op].activations)
    if "nonlinearity" in rec.options:  # Elman: its one activation
        acts = [_ACTIVATION[rec.options["nonlinearity"]]]

    nodes, inits = [], []

    def const(name: str, value: Any) -> str:
        if name not in {t.name for t in inits}:
            value = hnp.asarray(value)
            value = value.astype(dt) if value.dtype.kind == "f" else value  # weights in dtype
            inits.append(numpy_helper.from_array(value, name))
        return name

    features = "features" if not head.get("univariate") else None
    x_shape = ["batch", "time"] + ([rec.input_size] if features else [])
    inputs = [helper.make_tensor_value_info("X", elem, x_shape)]
    x = "X"
    if not features:
        nodes.append(helper.make_node("Unsqueeze", ["X", const("axis_2", hnp.asarray([2]))],
                                      ["X3"]))
        x = "X3"
    nodes.append(helper.make_node("Transpose", [x], ["X_tbf"], perm=[1, 0, 2]))  # (T, B, F)
    seq = ""
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]))
        nodes.append(helper.make_node("Cast", ["lengths"], ["seq_lens"], to=TensorProto.INT32))
        seq = "seq_lens"

    inp, y_h = "X_tbf", ""
    for k in range(rec.num_layers):
        ws, rs, bs = [], [], []
        for d in range(dirs):
            p = {n: to_numpy(v) for n, v in rec.layer_params(k, bool(d)).items()}
            ws.append(_blocks(p["w_x"].T, order, hidden, hnp))  # (G*H, F)
            rs.append(_blocks(p["w_h"].T, order, hidden, hnp))  # (G*H, H)
            if cop.split_bias:
                wb, rb = p["b_ih"], p["b_hh"]
            else:
                wb, rb = p["b"], p["b"] * 0
            bs.append(hnp.concat([_blocks(wb, order, hidden, hnp),
                                  _blocks(rb, order, hidden, hnp)]))  # (2*G*H,)
        attrs = {"hidden_size": hidden, "activations": acts * dirs,
                 "direction": "bidirectional" if dirs == 2 else "forward"}
        attrs.update(cop.attrs)  # the operator's variant (a GRU's linear_before_reset)
        y, y_h = f"Y_{k}", f"Y_h_{k}"
        nodes.append(helper.make_node(
            op, [inp, const(f"W_{k}", hnp.stack(ws)), const(f"R_{k}", hnp.stack(rs)),
                 const(f"B_{k}", hnp.stack(bs)), seq],
            [y, y_h], name=f"{op.lower()}_{k}", **attrs))
        if k < rec.num_layers - 1 or net.sequence_output:
            # (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H)
            nodes.append(helper.make_node("Transpose", [y], [f"{y}_t"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [f"{y}_t", const("shape_tb_", [0, 0, -1])],
                                          [f"seq_{k}"]))
            inp = f"seq_{k}"
    if net.sequence_output:
        nodes.append(helper.make_node("Transpose", [inp], ["states"], perm=[1, 0, 2]))  # (B,T,DH)
    else:
        # Y_h (D, B, H) -> (B, D, H) -> (B, D*H): forward direction first, as rnnx.
        nodes.append(helper.make_node("Transpose", [y_h], ["h_bdh"], perm=[1, 0, 2]))
        nodes.append(helper.make_node("Reshape", ["h_bdh", const("shape_b_", [0, -1])],
                                      ["states"]))
    w_d, b_d = to_numpy(dense.params["w"]), to_numpy(dense.params["b"])  # (D*H, O), (O,)
    nodes.append(helper.make_node("MatMul", ["states", const("dense_w", w_d)], ["dense_xw"]))
    out = {"proba": "logits", "regression": "scaled", "network": "outputs"}[kind]
    nodes.append(helper.make_node("Add", ["dense_xw", const("dense_b", b_d)], [out]))
    lead = ["batch", "time"] if net.sequence_output else ["batch"]
    width = [int(dense.params["b"].shape[0])]
    if kind == "proba":
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
        out = "probabilities"
    elif kind == "regression":
        nodes.append(helper.make_node("Mul", ["scaled", const("y_scale", head["scale"])],
                                      ["unshifted"]))
        final = "predictions_o" if head["squeeze"] else "predictions"
        nodes.append(helper.make_node("Add", ["unshifted", const("y_mean", head["mean"])],
                                      [final]))
        if head["squeeze"]:
            nodes.append(helper.make_node("Squeeze", [final, const("axis_last", [-1])],
                                          ["predictions"]))
            width = []
        out = "predictions"
    outputs = [helper.make_tensor_value_info(out, elem, lead + width)]
    graph = helper.make_graph(nodes, "rnnx", inputs, outputs, initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnnx", producer_version=__version__,
                              ir_version=_IR_VERSION,
                              doc_string=f"rnnx {type(model).__name__} ({spec.name}, "
                                         f"{rec.num_layers} layer(s), {dirs} direction(s))")
    if "classes" in head:
        helper.set_model_props(proto, {"classes": json.dumps(head["classes"])})
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        with atomic_path(path) as tmp:
            onnx.save_model(proto, tmp)
    return proto


# -- import -----------------------------------------------------------------------------------

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


def from_onnx(path_or_model: Any, *, backend: str = "numpy", device: Any = None,
              dtype: Any = None, **layer_options: Any) -> Any:
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

    from ..layers.recurrent import Recurrent

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
