"""Stateful layers: parameters, gradients and caches around :mod:`rnnx.functional`."""

from .dense import Dense
from .recurrent import GRU, LSTM, Recurrent, SimpleRNN

__all__ = ["GRU", "LSTM", "Dense", "Recurrent", "SimpleRNN"]
