"""Pure recurrent maths: no classes with state, and no backend library imported here.

Every function takes arrays from any Array API namespace and returns arrays in that namespace on
the inputs' device. Each cell is its step and the step's backward, written as its equations
(``lstm_step``, ``lstm_step_backward``, ...); the one driver (:mod:`rnnx.functional._loop`)
runs any cell over a sequence with the executor the backend picks.

What depends on the backend is asked of :mod:`rnnx._backend`, the one
package that knows backend libraries: the namespace and device of the inputs (``namespace``,
``device``), whether an array may be written in place (``writeable``), running a call on its
inputs' device (``on_input_device``), and the backend-specific choices of a fast path
(``on_accelerator``, ``prefers_exp_tanh``). The maths itself is written once, in Array API
calls.
"""

from ._mask import lengths_to_mask
from ._step import Cache, Parallel, Step, StepGrads
from ._workspace import Workspace
from .checkpoint import RNNCheckpointCache, rnn_backward_checkpointed, rnn_forward_checkpointed
from .gru import GRUCache, GRUGrads, gru_backward, gru_forward, gru_step, gru_step_backward
from .gru_reset_before import (
    GRUResetBeforeCache,
    GRUResetBeforeGrads,
    gru_reset_before_backward,
    gru_reset_before_forward,
)
from .ln_lstm import (
    LNLSTMCache,
    LNLSTMGrads,
    ln_lstm_backward,
    ln_lstm_forward,
    ln_lstm_step,
    ln_lstm_step_backward,
)
from .lstm import LSTMCache, LSTMGrads, lstm_backward, lstm_forward, lstm_step, lstm_step_backward
from .rnn import (
    MaskedRNNCache,
    RNNCache,
    RNNGrads,
    rnn_backward,
    rnn_forward,
    rnn_step,
    rnn_step_backward,
)

__all__ = [
    "Cache",
    "GRUCache",
    "GRUGrads",
    "GRUResetBeforeCache",
    "GRUResetBeforeGrads",
    "LNLSTMCache",
    "LNLSTMGrads",
    "LSTMCache",
    "LSTMGrads",
    "MaskedRNNCache",
    "Parallel",
    "RNNCache",
    "RNNCheckpointCache",
    "RNNGrads",
    "Step",
    "StepGrads",
    "Workspace",
    "gru_backward",
    "gru_forward",
    "gru_reset_before_backward",
    "gru_reset_before_forward",
    "gru_step",
    "gru_step_backward",
    "lengths_to_mask",
    "ln_lstm_backward",
    "ln_lstm_forward",
    "ln_lstm_step",
    "ln_lstm_step_backward",
    "lstm_backward",
    "lstm_forward",
    "lstm_step",
    "lstm_step_backward",
    "rnn_backward",
    "rnn_backward_checkpointed",
    "rnn_forward",
    "rnn_forward_checkpointed",
    "rnn_step",
    "rnn_step_backward",
]
