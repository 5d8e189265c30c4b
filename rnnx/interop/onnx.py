"""ONNX export and import: a fitted estimator (or a :class:`~rnnx.models.SequenceNetwork`) as an
ONNX model of the standard ``RNN``/``LSTM``/``GRU`` operators, and such an operator's weights
back into an rnnx :class:`~rnnx.layers.Recurrent`. Re-exported by :mod:`rnnx.interop`.

``onnx`` is imported inside the functions (the ``rnnx[onnx]`` extra), never at import time.
This module writes the models (:func:`to_onnx`); :mod:`rnnx.interop._onnx_read` reads them
(:func:`~rnnx.interop.from_onnx`) with the same layouts.

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
from typing import TYPE_CHECKING, Any

from .._backend import atomic_path, host_namespace, to_numpy
from ..functional.registry import CELLS, Cell

if TYPE_CHECKING:
    import onnx

    from ..models._base import BaseRNN
    from ..models.network import SequenceNetwork

__all__ = ["LAYOUTS", "OPSET", "OnnxLayout", "to_onnx"]

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

def _parts(model: Any) -> tuple[Any, str, Any]:
    """``(network, kind, head)`` of an estimator or network: kind is ``"proba"``,
    ``"regression"`` or ``"network"``; head is the estimator's
    :meth:`~rnnx.models.RNNClassifier.output_head` (``None`` for a network)."""
    from ..models import RNNClassifier, RNNRegressor, SequenceNetwork

    if isinstance(model, SequenceNetwork):
        return model, "network", None
    if isinstance(model, (RNNClassifier, RNNRegressor)):
        head = model.output_head()  # NotFittedError before a fit
        return head.network, head.kind, head
    raise TypeError(f"model must be a fitted RNNClassifier, RNNRegressor, "
                    f"ScratchSimpleRNNClassifier or a SequenceNetwork; got {type(model).__name__}")


def to_onnx(model: BaseRNN | SequenceNetwork, path: str | os.PathLike | None = None, *, lengths: bool = False,
            dtype: str | None = None) -> onnx.ModelProto:
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
    from onnx import TensorProto, helper

    from .._version import __version__

    net, kind, head = _parts(model)
    rec, dense = net.recurrent, net.dense
    elems = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}
    if dtype is not None and dtype not in elems:
        raise ValueError(f"dtype must be 'float32', 'float64' or None (the model's); got {dtype!r}")
    cop = _op_of(rec.spec)
    g = _Graph(host_namespace().dtype(dtype) if dtype is not None
               else to_numpy(dense.params["w"]).dtype)
    elem = elems[str(g.dt)]
    features = head is None or not head.univariate
    inputs = [helper.make_tensor_value_info(
        "X", elem, ["batch", "time"] + ([rec.input_size] if features else []))]
    x = "X"
    if not features:
        x = g.node("Unsqueeze", ["X", g.const("axis_2", [2])], "X3")  # (B, T, 1)
    x = g.node("Transpose", [x], "X_tbf", perm=[1, 0, 2])  # (T, B, F)
    seq = ""
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]))
        seq = g.node("Cast", ["lengths"], "seq_lens", to=TensorProto.INT32)
    states = _recurrent_nodes(g, rec, cop, x, seq, net.sequence_output)  # (B, D*H)/(B, T, D*H)
    out, width = _output_nodes(g, dense, kind, head, states)
    lead = ["batch", "time"] if net.sequence_output else ["batch"]
    outputs = [helper.make_tensor_value_info(out, elem, lead + width)]
    graph = helper.make_graph(g.nodes, "rnnx", inputs, outputs, initializer=g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnnx", producer_version=__version__,
                              ir_version=_IR_VERSION,
                              doc_string=f"rnnx {type(model).__name__} ({rec.spec.name}, "
                                         f"{rec.num_layers} layer(s), {rec.dirs} direction(s))")
    if kind == "proba":
        helper.set_model_props(proto, {"classes": json.dumps(head.classes)})
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        with atomic_path(path) as tmp:
            onnx.save_model(proto, tmp)
    return proto


class _Graph:
    """The nodes and initializers of the graph being written; float constants in ``dt``."""

    def __init__(self, dt: Any) -> None:
        self.dt, self.nodes, self.inits = dt, [], []

    def const(self, name: str, value: Any) -> str:
        from onnx import numpy_helper

        if name not in {t.name for t in self.inits}:
            value = host_namespace().asarray(value)
            value = value.astype(self.dt) if value.dtype.kind == "f" else value  # in dtype
            self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str | list[str], **attrs: Any) -> str:
        """Add ``op`` reading ``inputs``; returns its (first) output's name."""
        from onnx import helper

        outs = [output] if isinstance(output, str) else output
        self.nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs[0]


def _recurrent_nodes(g: _Graph, rec: Any, cop: OnnxLayout, x: str, seq: str,
                     sequence_output: bool) -> str:
    """One ``RNN``/``LSTM``/``GRU`` node per layer of ``rec`` on ``x`` ``(T, B, F)``; returns the
    states the dense layer reads: the last layer's ``Y_h`` as ``(B, D*H)`` (forward direction
    first, as rnnx), or its ``Y`` as ``(B, T, D*H)`` for ``sequence_output``."""
    hnp = host_namespace()
    op, spec = cop.op, rec.spec
    hidden, dirs, order = rec.hidden_size, rec.dirs, _perm(spec, op)
    acts = list(_OPS[op].activations)
    if "nonlinearity" in rec.options:  # Elman: its one activation
        acts = [_ACTIVATION[rec.options["nonlinearity"]]]
    inp, y_h = x, ""
    for k in range(rec.num_layers):
        ws, rs, bs = [], [], []
        for d in range(dirs):
            p = {n: to_numpy(v) for n, v in rec.layer_params(k, bool(d)).items()}
            ws.append(_blocks(p["w_x"].T, order, hidden, hnp))  # (G*H, F)
            rs.append(_blocks(p["w_h"].T, order, hidden, hnp))  # (G*H, H)
            wb, rb = (p["b_ih"], p["b_hh"]) if cop.split_bias else (p["b"], p["b"] * 0)
            bs.append(hnp.concat([_blocks(wb, order, hidden, hnp),
                                  _blocks(rb, order, hidden, hnp)]))  # (2*G*H,)
        attrs = {"hidden_size": hidden, "activations": acts * dirs,
                 "direction": "bidirectional" if dirs == 2 else "forward",
                 **dict(cop.attrs)}  # the operator's variant (a GRU's linear_before_reset)
        y, y_h = f"Y_{k}", f"Y_h_{k}"
        g.node(op, [inp, g.const(f"W_{k}", hnp.stack(ws)), g.const(f"R_{k}", hnp.stack(rs)),
                    g.const(f"B_{k}", hnp.stack(bs)), seq], [y, y_h], name=f"{op.lower()}_{k}",
               **attrs)
        if k < rec.num_layers - 1 or sequence_output:
            # (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H)
            t = g.node("Transpose", [y], f"{y}_t", perm=[0, 2, 1, 3])
            inp = g.node("Reshape", [t, g.const("shape_tb_", [0, 0, -1])], f"seq_{k}")
    if sequence_output:
        return g.node("Transpose", [inp], "states", perm=[1, 0, 2])  # (B, T, D*H)
    # Y_h (D, B, H) -> (B, D, H) -> (B, D*H): forward direction first, as rnnx.
    t = g.node("Transpose", [y_h], "h_bdh", perm=[1, 0, 2])
    return g.node("Reshape", [t, g.const("shape_b_", [0, -1])], "states")


def _output_nodes(g: _Graph, dense: Any, kind: str, head: Any, states: str
                  ) -> tuple[str, list[int]]:
    """The dense layer on ``states`` and the estimator's head; ``(output name, its trailing
    shape)``."""
    w_d, b_d = to_numpy(dense.params["w"]), to_numpy(dense.params["b"])  # (D*H, O), (O,)
    xw = g.node("MatMul", [states, g.const("dense_w", w_d)], "dense_xw")
    out = {"proba": "logits", "regression": "scaled", "network": "outputs"}[kind]
    out = g.node("Add", [xw, g.const("dense_b", b_d)], out)
    width = [int(b_d.shape[0])]
    if kind == "proba":
        return g.node("Softmax", [out], "probabilities", axis=-1), width
    if kind == "regression":
        out = g.node("Mul", [out, g.const("y_scale", head.scale)], "unshifted")
        out = g.node("Add", [out, g.const("y_mean", head.mean)],
                     "predictions_o" if head.squeeze else "predictions")
        if head.squeeze:
            return g.node("Squeeze", [out, g.const("axis_last", [-1])], "predictions"), []
    return out, width
