"""Stateful layers: parameters, gradients and caches around :mod:`rnnx.functional`."""

from .recurrent import GRU, LSTM, Recurrent, SimpleRNN

__all__ = ["GRU", "LSTM", "Recurrent", "SimpleRNN"]
