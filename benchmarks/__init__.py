"""Timing of rnnx against its peers; run with ``nox -s bench`` or ``python -m benchmarks.run``."""
