"""Pure recurrent maths: no classes with state, no backend imports.

Every function takes arrays from any Array API namespace and returns arrays in that namespace on
the inputs' device.
"""

from .rnn import RNNCache, RNNGrads, rnn_backward, rnn_cell, rnn_cell_backward, rnn_forward

__all__ = ["RNNCache", "RNNGrads", "rnn_backward", "rnn_cell", "rnn_cell_backward", "rnn_forward"]
