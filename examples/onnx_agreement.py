"""The table of docs/onnx.md: how far ONNX Runtime's outputs of an exported model are from
rnnx's (max abs deviation), per cell/variant and layer configuration.

* digits: an RNNClassifier (hidden 16, 3 epochs on 600 digits, float32) exported with
  ``lengths=True``; class probabilities on all 1797 digits with random lengths 1..8;
* random: a SequenceNetwork (features 5, hidden 12, 3 outputs, float32, many-to-many) with random
  weights, outputs on x ~ N(0, 1) of shape (32, 20, 5) with random lengths 0..20;
* float64: the same network in float64, run by onnx's reference evaluator (ONNX Runtime has no
  float64 kernels for RNN/LSTM/GRU), without lengths (the evaluator ignores sequence_lens).

    OPENBLAS_NUM_THREADS=1 python examples/onnx_agreement.py
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator
from onnx.reference.ops.op_rnn import RNN_14

from rnnx.datasets import load_digits_sequences
from rnnx.interop import to_onnx
from rnnx.models import RNNClassifier, SequenceNetwork

VARIANTS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh"),
            ("gru_reset_before", "tanh")]
CONFIGS = [(1, False), (2, False), (1, True), (2, True)]


class RNN(RNN_14):
    """The reference evaluator's RNN, taught ``Relu`` (it knows ``Tanh`` and ``Affine`` only)."""

    op_domain = ""

    def choose_act(self, name, alpha, beta):
        if name == "Relu":
            return lambda x: np.maximum(x, 0)
        return super().choose_act(name, alpha, beta)


def run(proto, **feeds):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def main() -> None:
    rng = np.random.default_rng(0)
    X, y = load_digits_sequences()
    X = X.astype(np.float32)
    lengths = rng.integers(1, X.shape[1] + 1, size=X.shape[0])
    x = rng.standard_normal((32, 20, 5)).astype(np.float32)
    lens = rng.integers(0, 21, size=32)
    print("| cell | layers | directions | digits (probabilities) | random (outputs) "
          "| float64, reference evaluator |")
    print("|---|---|---|---|---|---|")
    for cell, nonlinearity in VARIANTS:
        for num_layers, bidirectional in CONFIGS:
            opts = dict(cell=cell, nonlinearity=nonlinearity, num_layers=num_layers,
                        bidirectional=bidirectional)
            clf = RNNClassifier(hidden_size=16, epochs=3, random_state=0, dtype="float32",
                                **opts).fit(X[:600], y[:600])
            d_digits = np.abs(run(to_onnx(clf, lengths=True), X=X, lengths=lengths)
                              - clf.predict_proba(X, lengths=lengths)).max()
            net = SequenceNetwork(5, 12, 3, sequence_output=True, seed=1, dtype="float32", **opts)
            d_random = np.abs(run(to_onnx(net, lengths=True), X=x, lengths=lens)
                              - net.forward(x, steps=lens)).max()
            net64 = SequenceNetwork(5, 12, 3, sequence_output=True, seed=1, dtype="float64",
                                    **opts)
            x64 = x.astype(np.float64)
            (ref,) = ReferenceEvaluator(to_onnx(net64), new_ops=[RNN]).run(None, {"X": x64})
            d_64 = np.abs(ref - net64.forward(x64)).max()
            name = cell if cell != "rnn" else f"rnn ({nonlinearity})"
            print(f"| {name} | {num_layers} | {2 if bidirectional else 1} | {d_digits:.1e} "
                  f"| {d_random:.1e} | {d_64:.1e} |")


if __name__ == "__main__":
    main()
