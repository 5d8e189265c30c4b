"""Estimators on dask arrays (:mod:`rnnx.models._dask`, the ``rnnx[dask]`` extra): synchronous
data-parallel ``fit`` on a ``distributed.LocalCluster`` of two worker processes equals the
NumPy fit, ``predict``/``predict_proba`` are lazy, bad inputs are refused before any step.

One cluster serves the whole module (starting one costs seconds). The module runs in the
NumPy session only (``RNNX_BACKENDS`` unset or naming numpy): the chunks compute in NumPy
whatever backend the session tests, and CI runs the suite once per backend.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from ._selection import numpy_selected

if not numpy_selected():
    pytest.skip("the dask tests run in the numpy session only", allow_module_level=True)

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from rnnx.models import RNNClassifier, RNNRegressor  # noqa: E402

N, T, F = 96, 6, 3
CHUNK = 40  # chunks (40, 40, 16): mini-batches of 32 straddle chunk boundaries
SMALL = dict(hidden_size=8, epochs=4, batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def cluster_client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        client = distributed.Client(cluster, set_as_default=False)  # current only in `client`
        # Warm-up, so the first test's duration is its own: the workers' imports, and the
        # first graph a client submits (seconds).
        client.run(importlib.import_module, "rnnx.models")
        client.compute(da.ones(4, chunks=2).sum()).result()
        try:
            yield client
        finally:
            client.close()


@pytest.fixture
def client(cluster_client):
    """The cluster's client, current for the test (so a test without it has no client)."""
    with cluster_client.as_current():
        yield cluster_client


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20261202)
    X = rng.normal(size=(N, T, F))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    return X, y


def _dask(X, y):
    return da.from_array(X, chunks=(CHUNK, T, F)), da.from_array(y, chunks=(CHUNK,))


# -- equal to one machine ------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_fit_equals_numpy_fit_float64(client, data, cell):
    """Same seed and hyper-parameters: predict_proba within 1e-9 of the in-memory NumPy fit
    after 4 epochs (measured: 2e-16; only the order of the gradient sums differs)."""
    X, y = data
    Xd, yd = _dask(X, y)
    ref = RNNClassifier(cell=cell, **SMALL).fit(X, y)
    est = RNNClassifier(cell=cell, **SMALL).fit(Xd, yd)
    assert est.n_epochs_ == 4 and len(est.history_["loss"]) == 4
    np.testing.assert_allclose(est.history_["loss"], ref.history_["loss"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(est.history_["accuracy"], ref.history_["accuracy"])
    for k, w in ref.network_.parameters().items():
        np.testing.assert_allclose(est.network_.parameters()[k], w, rtol=0, atol=1e-9, err_msg=k)
    proba = est.predict_proba(Xd)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(proba.compute(), ref.predict_proba(X), rtol=0, atol=1e-9)


def test_fit_equals_numpy_fit_float32(client, data):
    """float32: measured 1.2e-7 (one ulp of a probability near 1) after 4 epochs; the bound is
    100 ulps, a margin for BLAS blocking that differs between one batch and its pieces."""
    X, y = data
    X32 = X.astype(np.float32)
    Xd, yd = _dask(X32, y)
    ref = RNNClassifier(**SMALL).fit(X32, y)
    est = RNNClassifier(**SMALL).fit(Xd, yd)
    assert est.network_.parameters()["dense.w"].dtype == np.float32
    np.testing.assert_allclose(est.predict_proba(Xd).compute(), ref.predict_proba(X32),
                               rtol=0, atol=100 * np.finfo(np.float32).eps)


def test_regressor_fit_equals_numpy_fit(client, data):
    X, _ = data
    y = X[:, :, 1].sum(axis=1)
    Xd, yd = _dask(X, y)
    ref = RNNRegressor(**SMALL).fit(X, y)
    est = RNNRegressor(**SMALL).fit(Xd, yd)
    pred = est.predict(Xd)
    assert isinstance(pred, da.Array) and pred.shape == (N,)
    np.testing.assert_allclose(pred.compute(), ref.predict(X), rtol=0, atol=1e-9)


# -- lazy inference ------------------------------------------------------------------------------

def test_predict_is_lazy_and_equals_in_memory(client, data):
    """An in-memory fit scores dask data lazily, chunk by chunk, as it scores the array."""
    X, y = data
    Xd, _ = _dask(X, y)
    est = RNNClassifier(cell="gru", **SMALL).fit(X, y)
    proba, labels = est.predict_proba(Xd), est.predict(Xd)
    for lazy in (proba, labels):
        assert isinstance(lazy, da.Array)
        assert lazy.chunks[0] == Xd.chunks[0]
    assert proba.shape == (N, 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.compute(), est.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(labels.compute(), est.predict(X))


def test_predict_sequence_output_shape(client, data):
    X, _ = data
    y = np.cumsum(X[:, :, :2], axis=1)  # (N, T, 2)
    est = RNNRegressor(sequence_output=True, **SMALL).fit(X, y)
    pred = est.predict(da.from_array(X, chunks=(CHUNK, T, F)))
    assert pred.shape == (N, T, 2)
    np.testing.assert_allclose(pred.compute(), est.predict(X), rtol=0, atol=1e-12)


# -- bad inputs: refused with the argument named, nothing trained --------------------------------

def _bad_fit(est, X, y, exc, match, **kw):
    before = {k: np.asarray(v).copy() for k, v in est.network_.parameters().items()}
    with pytest.raises(exc, match=match):
        est.fit(X, y, **kw)
    for k, v in est.network_.parameters().items():  # the previous model is untouched
        np.testing.assert_array_equal(v, before[k])


@pytest.fixture
def fitted(data):
    X, y = data
    return RNNClassifier(hidden_size=4, epochs=1, random_state=0).fit(X, y)


def test_different_chunks_refused(fitted, data):
    X, y = data
    _bad_fit(fitted, da.from_array(X, chunks=(CHUNK, T, F)), da.from_array(y, chunks=(32,)),
             ValueError, r"same chunks along samples.*y.rechunk")


def test_different_lengths_refused(fitted, data):
    X, y = data
    _bad_fit(fitted, da.from_array(X, chunks=(CHUNK, T, F)), da.from_array(y[:90], chunks=(CHUNK,)),
             ValueError, "inconsistent numbers of samples: X has 96, y has 90")


def test_chunked_along_time_refused(fitted, data):
    X, y = data
    _bad_fit(fitted, da.from_array(X, chunks=(CHUNK, 3, F)), da.from_array(y, chunks=(CHUNK,)),
             ValueError, r"X must be chunked along samples.*X.rechunk\(\{1: -1, 2: -1\}\)")


@pytest.mark.parametrize("which", ["X", "y"])
def test_dask_mixed_with_in_memory_refused(fitted, data, which):
    X, y = data
    Xd, yd = _dask(X, y)
    args = (X, yd) if which == "X" else (Xd, y)
    _bad_fit(fitted, *args, TypeError, f"but {which} is numpy.ndarray")


@pytest.mark.parametrize("kw", [{"validation_fraction": 0.2}, {"early_stopping": True},
                                {"lengths": np.full(N, T)}], ids=lambda kw: next(iter(kw)))
def test_not_supported_yet_refused(fitted, data, kw):
    X, y = data
    params = {k: v for k, v in kw.items() if k != "lengths"}
    fitted.set_params(**params)
    _bad_fit(fitted, *_dask(X, y), NotImplementedError, "not supported yet with dask arrays",
             **({"lengths": kw["lengths"]} if "lengths" in kw else {}))


def test_no_client_refused(fitted, data):
    X, y = data
    _bad_fit(fitted, *_dask(X, y), RuntimeError, r"no.*distributed\.Client\(\)")


def test_nan_refused_on_the_workers_before_any_step(client, fitted, data):
    X, y = data
    Xn = X.copy()
    Xn[70, 2, 1] = np.nan  # in the second chunk
    _bad_fit(fitted, *_dask(Xn, y), ValueError, "Input X contains NaN or inf")


def test_partial_fit_not_supported_yet(data):
    X, y = data
    est = RNNClassifier(hidden_size=4, random_state=0)
    with pytest.raises(NotImplementedError, match="partial_fit is not supported yet with dask"):
        est.partial_fit(*_dask(X, y), classes=[0, 1])
    assert not hasattr(est, "network_")


def test_score_on_dask_arrays(client, data):
    X, y = data
    est = RNNClassifier(**SMALL).fit(X, y)
    assert est.score(*_dask(X, y)) == est.score(X, y)


def test_univariate_2d_X(client, data):
    """A 2-D dask X (n_samples, time) trains and scores as the in-memory 2-D X does."""
    X, y = data
    X2 = X[:, :, 0]
    kw = {**SMALL, "epochs": 2}
    ref = RNNClassifier(**kw).fit(X2, y)
    est = RNNClassifier(**kw).fit(da.from_array(X2, chunks=(CHUNK, T)), da.from_array(y, chunks=(CHUNK,)))
    assert est.n_features_in_ == ref.n_features_in_ == T
    proba = est.predict_proba(da.from_array(X2, chunks=(CHUNK, T)))
    assert proba.shape == (N, 2)
    np.testing.assert_allclose(proba.compute(), ref.predict_proba(X2), rtol=0, atol=1e-9)


def test_importing_rnnx_does_not_import_dask():
    """Dask is imported only when a dask array is passed (rnnx works without the extra)."""
    import subprocess
    import sys

    code = "import sys, rnnx.models; sys.exit('dask' in sys.modules or 'distributed' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_divergence_keeps_the_initial_weights(client, data):
    """A diverging fit raises as in memory, with the model put back to its initial weights
    (the driver keeps the model, so the Trainer's guard works unchanged)."""
    from rnnx.models import TrainingDivergedError

    X, _ = data
    y = X.sum(axis=(1, 2))
    params = dict(hidden_size=8, batch_size=16, random_state=0, optimizer="sgd", clip_norm=None,
                  dtype="float32", epochs=3, learning_rate=1e6)
    ref, est = RNNRegressor(**params), RNNRegressor(**params)
    with pytest.raises(TrainingDivergedError, match=r"in epoch 1: .* keeps its initial weights"):
        ref.fit(X, y)
    with pytest.raises(TrainingDivergedError, match=r"in epoch 1: .* keeps its initial weights"):
        est.fit(*_dask(X, y))
    assert est.n_epochs_ == 0 and est.history_["loss"] == []
    for k, w in ref.network_.parameters().items():
        assert est.network_.parameters()[k].dtype == np.float32
        np.testing.assert_array_equal(est.network_.parameters()[k], w, err_msg=k)
