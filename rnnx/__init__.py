"""rnnx: recurrent neural networks with hand-derived BPTT, written once against the Python Array
API standard so the same code runs on NumPy, CuPy, PyTorch, array-api-strict and JAX.

Results are always in the namespace of the inputs and on the inputs' device.
"""

from ._backend import BACKENDS, available_backends, get_namespace, to_numpy
from ._version import __version__
from .functional import (
    GRUCache,
    GRUGrads,
    GRUResetBeforeCache,
    GRUResetBeforeGrads,
    LNLSTMCache,
    LNLSTMGrads,
    LSTMCache,
    LSTMGrads,
    RNNCache,
    RNNGrads,
    gru_backward,
    gru_forward,
    gru_reset_before_backward,
    gru_reset_before_forward,
    lengths_to_mask,
    ln_lstm_backward,
    ln_lstm_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
from .layers import GRU, LSTM, Dense, Recurrent, SimpleRNN
from .models import (
    ModelFileError,
    RNNClassifier,
    RNNRegressor,
    ScratchSimpleRNNClassifier,
    TrainingDivergedError,
    load_model,
    save_model,
)

__all__ = [
    "BACKENDS",
    "GRU",
    "LSTM",
    "Dense",
    "GRUCache",
    "GRUGrads",
    "GRUResetBeforeCache",
    "GRUResetBeforeGrads",
    "LNLSTMCache",
    "LNLSTMGrads",
    "LSTMCache",
    "LSTMGrads",
    "ModelFileError",
    "RNNCache",
    "RNNClassifier",
    "RNNGrads",
    "RNNRegressor",
    "Recurrent",
    "ScratchSimpleRNNClassifier",
    "SimpleRNN",
    "TrainingDivergedError",
    "__version__",
    "available_backends",
    "get_namespace",
    "gru_backward",
    "gru_forward",
    "gru_reset_before_backward",
    "gru_reset_before_forward",
    "lengths_to_mask",
    "ln_lstm_backward",
    "ln_lstm_forward",
    "load_model",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
    "save_model",
    "to_numpy",
]
