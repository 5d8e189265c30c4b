"""The table of docs/keras.md: how far Keras 3's outputs are from rnnx's (max abs deviation), per
layer kind, both ways, one and two directions.

* Keras -> rnnx: a Keras layer with every weight drawn uniform on ``±1/sqrt(hidden)`` (torch's
  init scale; Keras's default biases are zeros), converted with ``from_keras``; both run
  x ~ N(0, 1) of shape (32, 20, 5), hidden 12, ``return_sequences=True``;
* rnnx -> Keras: a seeded rnnx ``Recurrent`` (torch's init) converted with ``to_keras``, the
  same input;
* float64: the Keras -> rnnx case in float64 (Keras's torch backend computes ``ops.matmul`` of
  two float64 arrays in float32; its generic cell loop, SimpleRNN's and GRU(reset_after=False)'s,
  uses it, while LSTM and GRU(reset_after=True) run a torch-native loop).

    OPENBLAS_NUM_THREADS=1 KERAS_BACKEND=torch python examples/keras_agreement.py
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

from rnnx._backend import to_numpy
from rnnx.interop import GRU_RESET_BEFORE, from_keras, to_keras
from rnnx.layers import Recurrent

KINDS = [("SimpleRNN (tanh)", "rnn", "tanh", "SimpleRNN", {}),
         ("SimpleRNN (relu)", "rnn", "relu", "SimpleRNN", {"activation": "relu"}),
         ("LSTM", "lstm", "tanh", "LSTM", {}),
         ("GRU (reset_after=True)", "gru", "tanh", "GRU", {}),
         ("GRU (reset_after=False)", GRU_RESET_BEFORE, "tanh", "GRU", {"reset_after": False})]
BATCH, TIME, FEATURES, HIDDEN = 32, 20, 5, 12


def host(t):
    return to_numpy(getattr(t, "value", t))


def keras_layer(rng, cls, options, bidirectional, dtype):
    layer = getattr(keras.layers, cls)(HIDDEN, return_sequences=True, dtype=dtype, **options)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer, dtype=dtype)
    layer.build((None, None, FEATURES))
    for v in layer.weights:
        v.assign(rng.uniform(-1, 1, tuple(v.shape)).astype(dtype) / np.sqrt(HIDDEN))
    return layer


def main():
    rng = np.random.default_rng(0)
    print("| Keras layer | rnnx cell | directions | Keras -> rnnx | rnnx -> Keras | float64, "
          "Keras -> rnnx | max abs output |")
    print("|---|---|---|---|---|---|---|")
    for label, cell, nonlinearity, cls, options in KINDS:
        for bidirectional in (False, True):
            dirs = 2 if bidirectional else 1
            cols, top = [], 0.0
            for dtype in ("float32", "float64"):
                x = rng.standard_normal((BATCH, TIME, FEATURES)).astype(dtype)
                k = keras_layer(rng, cls, options, bidirectional, dtype)
                want = host(k(x))
                top = max(top, float(np.abs(want).max()))
                cols.append(np.abs(from_keras(k).forward(x) - want).max())
                if dtype == "float32":
                    layer = Recurrent(FEATURES, HIDDEN, cell=cell, nonlinearity=nonlinearity,
                                      bidirectional=bidirectional, return_sequences=True,
                                      seed=int(rng.integers(1 << 30)), dtype=dtype)
                    cols.append(np.abs(host(to_keras(layer)(x)) - layer.forward(x)).max())
            print(f"| {label} | {cell} | {dirs} | " + " | ".join(f"{c:.1e}" for c in cols)
                  + f" | {top:.2f} |")


if __name__ == "__main__":
    main()
