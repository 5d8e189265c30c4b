"""Data sets that ship with rnnx (no downloads). Every loader returns host NumPy arrays; move them
to a backend with the estimators' ``backend=``/``device=`` or :func:`rnnx._backend.from_host`."""

from __future__ import annotations

import numpy as np

__all__ = ["SEED_EXPECTED_LAST_STATE", "seed_example"]

#: The last hidden state the seed exercise printed for :func:`seed_example` (Problem 2). It is the
#: one number of the seed known to be right and every backend must reproduce it.
SEED_EXPECTED_LAST_STATE = ((0.79494228, 0.81839002, 0.83939649, 0.85584174),)


def seed_example() -> dict[str, np.ndarray]:
    """The seed's Problem 2: ``x (1, 3, 2)``, ``w_x (2, 4)``, ``w_h (4, 4)`` and ``b (4,)`` (ones).

    With ``h0 = 0`` and tanh, the final state is :data:`SEED_EXPECTED_LAST_STATE`.
    """
    x = np.array([[[1, 2], [2, 3], [3, 4]]]) / 100  # (batch, time, features)
    w_x = np.array([[1, 3, 5, 7], [3, 5, 7, 8]]) / 100  # (features, hidden)
    w_h = np.array([[1, 3, 5, 7], [2, 4, 6, 8], [3, 5, 7, 8], [4, 6, 8, 10]]) / 100  # (hidden, hidden)
    b = np.ones(4)  # (hidden,)
    return {"x": x, "w_x": w_x, "w_h": w_h, "b": b}
