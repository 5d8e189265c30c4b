"""Weights in and out of other libraries, one module per foreign format, each with the cells'
layouts in it: :mod:`rnnx.interop.torch` (``torch.nn.RNN/LSTM/GRU``), :mod:`rnnx.interop.onnx`
(the standard ``RNN``/``LSTM``/``GRU`` operators; ``docs/onnx.md``) and
:mod:`rnnx.interop.keras` (Keras 3 layers; ``docs/keras.md``). None of them imports the
foreign library at import time: torch, onnx and keras are imported inside the functions.
"""

from ._onnx_read import from_onnx
from .keras import GRU_RESET_BEFORE, from_keras, to_keras
from .onnx import to_onnx
from .torch import from_state_dict, from_torch, to_state_dict, to_torch

__all__ = ["GRU_RESET_BEFORE", "from_keras", "from_onnx", "from_state_dict", "from_torch",
           "to_keras", "to_onnx", "to_state_dict", "to_torch"]
