"""Pure recurrent maths: no classes with state, no backend imports.

Every function takes arrays from any Array API namespace and returns arrays in that namespace on
the inputs' device.
"""

from .checkpoint import RNNCheckpointCache, rnn_backward_checkpointed, rnn_forward_checkpointed
from .rnn import RNNCache, RNNGrads, rnn_backward, rnn_cell, rnn_cell_backward, rnn_forward

__all__ = [
    "RNNCache",
    "RNNCheckpointCache",
    "RNNGrads",
    "rnn_backward",
    "rnn_backward_checkpointed",
    "rnn_cell",
    "rnn_cell_backward",
    "rnn_forward",
    "rnn_forward_checkpointed",
]
