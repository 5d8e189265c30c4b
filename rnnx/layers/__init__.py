"""Stateful layers: parameters, gradients and caches around :mod:`rnnx.functional`."""

from .recurrent import SimpleRNN

__all__ = ["SimpleRNN"]
