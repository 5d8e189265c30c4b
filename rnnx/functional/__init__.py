"""Pure recurrent maths: no classes with state, and no backend library imported here.

Every function takes arrays from any Array API namespace and returns arrays in that namespace on
the inputs' device. What depends on the backend is asked of :mod:`rnnx._backend`, the one
package that knows backend libraries: the namespace and device of the inputs (``namespace``,
``device``), whether an array may be written in place (``writeable``), running a call on its
inputs' device (``on_input_device``), and the backend-specific choices of a fast path
(``on_accelerator``, ``prefers_exp_tanh``). The maths itself is written once, in Array API
calls.
"""

from ._mask import lengths_to_mask
from ._workspace import Workspace
from .checkpoint import RNNCheckpointCache, rnn_backward_checkpointed, rnn_forward_checkpointed
from .gru import GRUCache, GRUGrads, gru_backward, gru_cell, gru_cell_backward, gru_forward
from .gru_reset_before import (
    GRUResetBeforeCache,
    GRUResetBeforeGrads,
    gru_reset_before_backward,
    gru_reset_before_cell,
    gru_reset_before_cell_backward,
    gru_reset_before_forward,
)
from .ln_lstm import LNLSTMCache, LNLSTMGrads, ln_lstm_backward, ln_lstm_cell, ln_lstm_forward
from .lstm import LSTMCache, LSTMGrads, lstm_backward, lstm_cell, lstm_cell_backward, lstm_forward
from .rnn import (
    MaskedRNNCache,
    RNNCache,
    RNNGrads,
    rnn_backward,
    rnn_cell,
    rnn_cell_backward,
    rnn_forward,
)

__all__ = [
    "GRUCache",
    "GRUGrads",
    "GRUResetBeforeCache",
    "GRUResetBeforeGrads",
    "LNLSTMCache",
    "LNLSTMGrads",
    "LSTMCache",
    "LSTMGrads",
    "MaskedRNNCache",
    "RNNCache",
    "RNNCheckpointCache",
    "RNNGrads",
    "Workspace",
    "gru_backward",
    "gru_cell",
    "gru_cell_backward",
    "gru_forward",
    "gru_reset_before_backward",
    "gru_reset_before_cell",
    "gru_reset_before_cell_backward",
    "gru_reset_before_forward",
    "lengths_to_mask",
    "ln_lstm_backward",
    "ln_lstm_cell",
    "ln_lstm_forward",
    "lstm_backward",
    "lstm_cell",
    "lstm_cell_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_backward_checkpointed",
    "rnn_cell",
    "rnn_cell_backward",
    "rnn_forward",
    "rnn_forward_checkpointed",
]
