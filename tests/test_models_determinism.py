"""Two identical fits give bit-identical weights, on every backend and device (on a GPU with
every executor the backend picks): the initial weights are drawn on the host from the seed, the
shuffles too, dropout masks come from a device-side hash of host-drawn keys, and nothing in a
training step depends on timing (cuDNN does not promise this: pytorch/pytorch#18110)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx.models import RNNClassifier
from rnnx.testing import assert_equal


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_two_identical_fits_give_the_same_bits(xp, put, cell):
    rng = np.random.default_rng(7)
    X = put(rng.normal(size=(40, 6, 3)), xp.float32)
    y = put(rng.integers(0, 3, size=40))
    lengths = put(rng.integers(1, 7, size=40))

    def fit():
        return RNNClassifier(cell=cell, hidden_size=8, num_layers=2, dropout=0.3, epochs=3,
                             batch_size=16, random_state=0, dtype="float32").fit(
            X, y, lengths=lengths)

    first, second = fit(), fit()
    a, b = first.network_.parameters(), second.network_.parameters()
    assert a.keys() == b.keys()
    for k in a:
        assert_equal(b[k], a[k], err_msg=k)
    assert first.history_["loss"] == second.history_["loss"]
