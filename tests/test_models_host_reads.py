"""Training does not cross between host and device once per batch: every device->host read of
an array-api-strict array (``__bool__``, ``__float__``, ``__int__``, ``__index__``,
``__array__``, ``__dlpack__``) and every host->device ``asarray`` of host data
(``rnnx.testing.count_calls(...).host_crossings``) is counted during a fit on ``device1``, the
GPU stand-in, and the count must not grow with the number of batches (on a GPU each is a
synchronisation). Where torch sees a CUDA device the same fits count the warnings of
``torch.cuda.set_sync_debug_mode("warn")``, one per synchronising call."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

array_api_strict = pytest.importorskip("array_api_strict")

from rnnx.functional.registry import CELLS  # noqa: E402
from rnnx.layers import Recurrent  # noqa: E402
from rnnx.models import RNNClassifier  # noqa: E402
from rnnx.tbptt import TruncatedBPTT  # noqa: E402
from rnnx.testing import count_calls  # noqa: E402


def _count_crossings(fit):
    with count_calls() as counts:
        fit()
    return counts.host_crossings


VARIANTS = {"plain": {}, "lengths": {}, "dropout": {"num_layers": 2, "dropout": 0.3}}


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_host_crossings_do_not_grow_with_batches(cell, variant):
    X, y, lengths = _data(variant)
    dev = array_api_strict.Device("device1")
    Xd = array_api_strict.asarray(X, device=dev)
    yd = array_api_strict.asarray(y, device=dev)

    def fit(batch_size):
        return lambda: RNNClassifier(cell=cell, hidden_size=4, epochs=2, batch_size=batch_size,
                                     random_state=0, **VARIANTS[variant]).fit(Xd, yd,
                                                                               lengths=lengths)

    # 2 and 8 batches an epoch
    few, many = (_count_crossings(fit(b)) for b in (32, 8))
    assert many == few, f"{few} crossings with 2 batches an epoch, {many} with 8"


def _data(variant):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5, 3))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    lengths = rng.integers(1, 6, size=64) if variant == "lengths" else None
    return X, y, lengths


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch: no CUDA device visible to torch")
    return torch


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cuda_synchronisations_do_not_grow_with_batches(cell, variant):
    """The same fits on torch's GPU, data sent there first, counting the warnings of
    ``torch.cuda.set_sync_debug_mode("warn")`` (one per synchronising call)."""
    torch = _torch_cuda()
    X, y, lengths = _data(variant)
    Xd = torch.asarray(X, device="cuda")
    yd = torch.asarray(y, device="cuda")

    def syncs(batch_size):
        est = RNNClassifier(cell=cell, hidden_size=4, epochs=2, batch_size=batch_size,
                            random_state=0, **VARIANTS[variant])
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                est.fit(Xd, yd, lengths=lengths)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in seen)

    # The first fits of a process pay one-off synchronisations (CUDA context, cuBLAS handles,
    # the caching allocator's first blocks: 17 against 16 on the first GPU run, whichever fit
    # came first), so both sizes are fitted once before counting: what is asserted is that the
    # count does not grow with the number of batches.
    syncs(32), syncs(8)
    few, many = syncs(32), syncs(8)
    assert many == few, f"{few} synchronisations with 2 batches an epoch, {many} with 8"


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("with_mask", [False, True], ids=["plain", "lengths"])
def test_tbptt_crossings_do_not_grow_with_chunks(cell, with_mask):
    """Truncated BPTT over 24 steps on ``device1`` (two layers, dropout): forward and backward
    per chunk, in 2 and in 8 chunks, cross between host and device equally often."""
    rng = np.random.default_rng(1)
    dev = array_api_strict.Device("device1")
    x = array_api_strict.asarray(rng.normal(size=(4, 24, 3)), device=dev)
    lengths = array_api_strict.asarray(np.array([24, 20, 9, 1]), device=dev) if with_mask \
        else None

    def run(k):
        def go():
            layer = Recurrent(3, 5, cell=cell, num_layers=2, dropout=0.3, seed=0,
                              return_sequences=True, backend="array_api_strict", device=dev)
            for chunk in TruncatedBPTT(layer, k).chunks(x, mask=lengths):
                layer.backward(chunk.out)
        return go

    few, many = (_count_crossings(run(k)) for k in (12, 3))
    assert many == few, f"{few} crossings in 2 chunks, {many} in 8"
