"""The ``rnnx`` command line."""

from .train import main

__all__ = ["main"]
