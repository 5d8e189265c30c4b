"""rnnx: recurrent neural networks with hand-derived BPTT, written once against the Python Array
API standard so the same code runs on NumPy, CuPy, PyTorch and array-api-strict.

Results are always in the namespace of the inputs and on the inputs' device.
"""

from ._backend import BACKENDS, available_backends, get_namespace, to_numpy
from .functional import (
    GRUCache,
    GRUGrads,
    LSTMCache,
    LSTMGrads,
    RNNCache,
    RNNGrads,
    gru_backward,
    gru_forward,
    lengths_to_mask,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
from .layers import GRU, LSTM, Recurrent, SimpleRNN

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "GRU",
    "LSTM",
    "GRUCache",
    "GRUGrads",
    "LSTMCache",
    "LSTMGrads",
    "RNNCache",
    "RNNGrads",
    "Recurrent",
    "SimpleRNN",
    "__version__",
    "available_backends",
    "get_namespace",
    "gru_backward",
    "gru_forward",
    "lengths_to_mask",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
    "to_numpy",
]
