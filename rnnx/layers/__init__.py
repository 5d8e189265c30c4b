"""Stateful layers: parameters, gradients and caches around :mod:`rnnx.functional`."""

from .dense import Dense
from .recurrent import SimpleRNN

__all__ = ["Dense", "SimpleRNN"]
