"""rnnx: recurrent neural networks with hand-derived BPTT, written once against the Python Array
API standard so the same code runs on NumPy, CuPy, PyTorch and array-api-strict.

Results are always in the namespace of the inputs and on the inputs' device.
"""

from ._backend import BACKENDS, available_backends, get_namespace, to_numpy
from .functional import RNNCache, RNNGrads, rnn_backward, rnn_forward
from .layers import Dense, SimpleRNN
from .models import (
    RNNClassifier,
    RNNRegressor,
    ScratchSimpleRNNClassifier,
    TrainingDivergedError,
    load_model,
    save_model,
)

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "Dense",
    "RNNCache",
    "RNNClassifier",
    "RNNGrads",
    "RNNRegressor",
    "ScratchSimpleRNNClassifier",
    "SimpleRNN",
    "TrainingDivergedError",
    "__version__",
    "available_backends",
    "get_namespace",
    "load_model",
    "rnn_backward",
    "rnn_forward",
    "save_model",
    "to_numpy",
]
