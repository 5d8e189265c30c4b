"""Training does not read from the device once per batch: every device->host read of an
array-api-strict array (``__bool__``, ``__float__``, ``__int__``, ``__index__``, ``__array__``,
``__dlpack__``) is counted during a fit on ``device1``, the GPU stand-in, and the count must not
grow with the number of batches (on a GPU each read is a synchronisation)."""

from __future__ import annotations

import numpy as np
import pytest

array_api_strict = pytest.importorskip("array_api_strict")

from rnnx.functional.registry import CELLS  # noqa: E402
from rnnx.models import RNNClassifier  # noqa: E402

READS = ("__bool__", "__float__", "__int__", "__index__", "__array__", "__dlpack__")


def _count_reads(monkeypatch, fit):
    cls = type(array_api_strict.asarray(0.0))
    count = {"n": 0}
    for name in READS:
        original = getattr(cls, name)

        def counted(self, *a, _original=original, **k):
            count["n"] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(cls, name, counted)
    fit()
    monkeypatch.undo()
    return count["n"]


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("variant", ["plain", "lengths"])
def test_host_reads_do_not_grow_with_batches(monkeypatch, cell, variant):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5, 3))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    lengths = rng.integers(1, 6, size=64) if variant == "lengths" else None
    dev = array_api_strict.Device("device1")
    Xd = array_api_strict.asarray(X, device=dev)
    yd = array_api_strict.asarray(y, device=dev)

    def fit(batch_size):
        return lambda: RNNClassifier(cell=cell, hidden_size=4, epochs=2, batch_size=batch_size,
                                     random_state=0).fit(Xd, yd, lengths=lengths)

    few, many = (_count_reads(monkeypatch, fit(b)) for b in (32, 8))  # 2 and 8 batches an epoch
    assert many == few, f"{few} reads with 2 batches an epoch, {many} with 8"
