"""Stateful layers: parameters, gradients and caches around :mod:`rnnx.functional`."""

from .dense import Dense
from .recurrent import Recurrent
from .single import GRU, LSTM, SimpleRNN

__all__ = ["GRU", "LSTM", "Dense", "Recurrent", "SimpleRNN"]
