"""Estimators on dask arrays (:mod:`rnnx.models._dask`, the ``rnnx[dask]`` extra): synchronous
data-parallel ``fit``/``partial_fit`` on a ``distributed.LocalCluster`` of two worker processes
equals the NumPy fit (every cell, lengths, a validation split with early stopping, dropout),
a killed worker process is replaced without changing the result, a lost client ends the fit
with the last completed epoch's weights, ``predict``/``predict_proba``/``score`` are lazy, bad
inputs are refused before any step.

One cluster serves the whole module (starting one costs seconds). The module runs in the
NumPy session only (``RNNX_BACKENDS`` unset or naming numpy): the chunks compute in NumPy
whatever backend the session tests, and CI runs the suite once per backend.
"""

from __future__ import annotations

import importlib
import os
import signal

import numpy as np
import pytest

from ._selection import numpy_selected

if not numpy_selected():
    pytest.skip("the dask tests run in the numpy session only", allow_module_level=True)

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from rnnx.functional.registry import CELLS  # noqa: E402
from rnnx.models import ClusterLostError, RNNClassifier, RNNRegressor  # noqa: E402

N, T, F = 96, 6, 3
CHUNK = 40  # chunks (40, 40, 16): mini-batches of 32 straddle chunk boundaries
SMALL = dict(hidden_size=8, epochs=4, batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def cluster_client(cluster):
    client = distributed.Client(cluster, set_as_default=False)  # current only in `client`
    # Warm-up, so the first test's duration is its own: the workers' imports, and the first
    # graph a client submits (seconds).
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
    return (da.from_array(X, chunks=(CHUNK, *X.shape[1:])),
            da.from_array(y, chunks=(CHUNK, *y.shape[1:])))


# -- equal to one machine ------------------------------------------------------------------------

def _assert_same_weights(est, ref, atol=1e-9):
    for k, w in ref.network_.parameters().items():
        np.testing.assert_allclose(est.network_.parameters()[k], w, rtol=0, atol=atol, err_msg=k)


@pytest.mark.parametrize("cell", list(CELLS))
def test_fit_equals_numpy_fit_float64(client, data, cell):
    """Every registered cell: same seed and hyper-parameters, predict_proba within 1e-9 of the
    in-memory NumPy fit after 4 epochs (measured: 2e-16 to 1e-15; only the order of the
    gradient sums differs)."""
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


def test_no_client_refused(fitted, data):
    X, y = data
    _bad_fit(fitted, *_dask(X, y), RuntimeError, r"no.*distributed\.Client\(\)")


def test_score_on_dask_arrays(client, data):
    """score on dask X and y reduces on the cluster (the same accuracy / R^2 as in memory)."""
    X, y = data
    est = RNNClassifier(**SMALL).fit(X, y)
    assert est.score(*_dask(X, y)) == est.score(X, y)
    reg = RNNRegressor(**SMALL).fit(X, X[:, :, 1].sum(axis=1))
    r2 = reg.score(*_dask(X, X[:, :, 1].sum(axis=1)))
    assert isinstance(r2, float)
    assert abs(r2 - reg.score(X, X[:, :, 1].sum(axis=1))) < 1e-12


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


# -- lengths, validation split, early stopping, progress, partial_fit, dropout ------------------

@pytest.fixture(scope="module")
def lengths():
    return np.random.default_rng(7).integers(1, T + 1, size=N)


def _dl(a):
    return da.from_array(a, chunks=(CHUNK, *a.shape[1:]))


def test_lengths_fit_predict_score_equal_in_memory(client, data, lengths):
    """Integer lengths (a dask array chunked as X): fit, lazy predict_proba and score equal the
    in-memory ones (measured: 2e-16)."""
    X, y = data
    ref = RNNClassifier(cell="gru", **SMALL).fit(X, y, lengths=lengths)
    est = RNNClassifier(cell="gru", **SMALL).fit(*_dask(X, y), lengths=_dl(lengths))
    _assert_same_weights(est, ref)
    proba = est.predict_proba(_dask(X, y)[0], lengths=_dl(lengths))
    assert isinstance(proba, da.Array) and proba.chunks[0] == (40, 40, 16)
    np.testing.assert_allclose(proba.compute(), ref.predict_proba(X, lengths=lengths), rtol=0,
                               atol=1e-9)
    assert est.score(*_dask(X, y), lengths=_dl(lengths)) == ref.score(X, y, lengths=lengths)


def test_sequence_output_step_mask_equals_in_memory(client, data, lengths):
    """A boolean step mask on a many-to-many regressor: the loss is a mean over the valid steps
    of the whole batch, so each chunk's gradient is weighted by its valid steps (measured:
    4e-16)."""
    X, _ = data
    y = np.cumsum(X[:, :, :2], axis=1)  # (N, T, 2)
    mask = np.arange(T)[None, :] < lengths[:, None]  # (N, T)
    mask[::5, 0] = False  # padding on the left too
    ref = RNNRegressor(sequence_output=True, **SMALL).fit(X, y, lengths=mask)
    est = RNNRegressor(sequence_output=True, **SMALL).fit(*_dask(X, y), lengths=_dl(mask))
    np.testing.assert_allclose(est.history_["loss"], ref.history_["loss"], rtol=0, atol=1e-12)
    _assert_same_weights(est, ref)
    pred = est.predict(_dask(X, y)[0], lengths=_dl(mask)).compute()
    np.testing.assert_allclose(pred, ref.predict(X, lengths=mask), rtol=0, atol=1e-9)
    r2 = est.score(*_dask(X, y), lengths=_dl(mask))
    assert abs(r2 - ref.score(X, y, lengths=mask)) < 1e-12


def test_validation_split_and_early_stopping_equal_in_memory(client, data, capsys):
    """validation_fraction and early_stopping: the same split, val_* history, stopping epoch and
    restored best weights as in memory; fit(progress=True) draws the bar with the validation
    figures, and the callback sees every epoch."""
    X, y = data
    kw = dict(SMALL, epochs=12, early_stopping=True, validation_fraction=0.25, n_iter_no_change=2,
              tol=0.0, learning_rate=0.05)
    ref = RNNClassifier(**kw).fit(X, y)
    seen = []
    est = RNNClassifier(**kw).fit(*_dask(X, y), progress=True,
                                  callback=lambda e, h: seen.append((e, h["val_loss"][-1])))
    err = capsys.readouterr().err
    assert "epoch" in err and "val_loss=" in err
    assert est.n_epochs_ == ref.n_epochs_ < 12  # stopped early, at the same epoch
    assert est.best_epoch_ == ref.best_epoch_ == est.n_epochs_ - 2  # patience 2
    assert [e for e, _ in seen] == list(range(1, est.n_epochs_ + 1))
    for k in ("loss", "val_loss", "val_accuracy", "accuracy"):
        np.testing.assert_allclose(est.history_[k], ref.history_[k], rtol=0, atol=1e-12,
                                   err_msg=k)
    _assert_same_weights(est, ref)


def test_partial_fit_equals_in_memory(client, data):
    """partial_fit on dask arrays: the first call initialises (with classes), later calls
    continue the same shuffling stream, as in memory; and a dask partial_fit continues an
    in-memory fit."""
    X, y = data
    ref, est = RNNClassifier(**SMALL), RNNClassifier(**SMALL)
    for _ in range(3):
        ref.partial_fit(X, y, classes=[0, 1])
        est.partial_fit(*_dask(X, y), classes=[0, 1])
    assert est.n_epochs_ == ref.n_epochs_ == 3
    np.testing.assert_allclose(est.history_["loss"], ref.history_["loss"], rtol=0, atol=1e-12)
    _assert_same_weights(est, ref)
    ref2 = RNNClassifier(**SMALL).fit(X, y).partial_fit(X, y)
    est2 = RNNClassifier(**SMALL).fit(X, y).partial_fit(*_dask(X, y))
    assert est2.n_epochs_ == 5
    _assert_same_weights(est2, ref2)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_equals_in_memory(client, data, cell):
    """Dropout between stacked (bidirectional) layers: each worker draws, on its own device, the
    rows of the mask the whole mini-batch gets under the keys the driver draws from the layer's
    generator, so the fit equals the in-memory one (measured: 4e-16)."""
    X, y = data
    kw = dict(SMALL, cell=cell, num_layers=3, bidirectional=True, dropout=0.4)
    ref = RNNClassifier(**kw).fit(X, y)
    est = RNNClassifier(**kw).fit(*_dask(X, y))
    np.testing.assert_allclose(est.history_["loss"], ref.history_["loss"], rtol=0, atol=1e-12)
    _assert_same_weights(est, ref)
    off = RNNClassifier(**dict(kw, dropout=0.0)).fit(X, y)  # the masks mattered
    assert abs(off.history_["loss"][-1] - ref.history_["loss"][-1]) > 1e-3


# -- faults: a killed worker process, a lost client -------------------------------------------

def _shard_keys(keys):
    return [k for k in keys if str(k).startswith("make_shard")]  # _dask_worker.make_shard


def test_killed_workers_are_replaced_and_the_fit_equals(client, data):
    """Worker processes killed (SIGKILL) during a fit: after epoch 1 the one holding the most
    shards, after epoch 2 every worker. Their nannies start new ones, the scheduler recomputes
    the lost shards from their graph (the data are not lost with the workers) and reruns the
    lost tasks, and the fit ends equal to the in-memory one."""
    X, y = data
    kw = dict(SMALL, epochs=4)
    ref = RNNClassifier(**kw).fit(X, y)
    seen = {}

    def kill(epoch, history):
        if epoch in (1, 2):
            has = {w: _shard_keys(keys) for w, keys in client.has_what().items()}
            victims = [max(has, key=lambda w: len(has[w]))] if epoch == 1 else list(has)
            seen.setdefault("dead", []).extend(victims)
            seen["keys"] = sorted({k for keys in has.values() for k in keys})
            pids = client.run(os.getpid, workers=victims)
            assert os.getpid() not in pids.values()  # worker processes, not this one
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)
        elif epoch == 3:
            seen["who"] = client.who_has(seen["keys"])

    est = RNNClassifier(**kw).fit(*_dask(X, y), callback=kill)
    assert est.n_epochs_ == 4
    np.testing.assert_allclose(est.history_["loss"], ref.history_["loss"], rtol=0, atol=1e-12)
    _assert_same_weights(est, ref)
    # Every shard (3 chunks) was lost after epoch 2 and is held again by new workers only:
    # recomputed from the graph.
    assert len(seen["keys"]) == 3 and len(seen["dead"]) >= 2  # (epoch 2 may find 1 worker)
    assert all(v and not set(v) & set(seen["dead"]) for v in seen["who"].values())
    client.wait_for_workers(2, timeout=60)  # the nannies' new workers, for the next tests
    assert not set(client.scheduler_info()["workers"]) & set(seen["dead"])


def test_lost_client_keeps_the_last_completed_epoch(cluster, data):
    """Closing the client from the progress callback after epoch 2 ends the fit with
    ClusterLostError in epoch 3; the model keeps exactly the weights and history of epoch 2
    (no step of epoch 3 is applied)."""
    X, y = data
    ref = RNNClassifier(**dict(SMALL, epochs=2)).fit(X, y)
    est = RNNClassifier(**dict(SMALL, epochs=4))
    with distributed.Client(cluster, set_as_default=False) as own, own.as_current():
        Xd, yd = _dask(X, y)

        def close(epoch, history):
            if epoch == 2:
                own.close()

        with pytest.raises(ClusterLostError, match=r"lost its dask cluster in epoch 3.*the 2 "
                                                   r"completed epoch\(s\)"):
            est.fit(Xd, yd, callback=close)
    assert est.n_epochs_ == 2 and len(est.history_["loss"]) == 2
    np.testing.assert_allclose(est.history_["loss"], ref.history_["loss"], rtol=0, atol=1e-12)
    _assert_same_weights(est, ref)
    assert est.predict(X).shape == (N,)  # still a usable model


def test_lost_scheduler_keeps_the_last_completed_epoch(data):
    """A scheduler that goes away after epoch 2 (its own cluster's, closed from the progress
    callback) ends the fit with ClusterLostError once the client gives up reconnecting (5 s
    here); the model keeps exactly the weights and history of epoch 2."""
    X, y = data
    ref = RNNClassifier(**dict(SMALL, epochs=2)).fit(X, y)
    est = RNNClassifier(**dict(SMALL, epochs=4))
    with dask.config.set({"distributed.comm.timeouts.connect": "5s"}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     dashboard_address=":0") as own_cluster, \
            distributed.Client(own_cluster, set_as_default=False, timeout=5) as own, \
            own.as_current():
        Xd, yd = _dask(X, y)

        def lose_scheduler(epoch, history):
            if epoch == 2:
                own_cluster.sync(own_cluster.scheduler.close)

        with pytest.raises(ClusterLostError, match=r"lost its dask cluster in epoch 3.*the 2 "
                                                   r"completed epoch\(s\)"):
            est.fit(Xd, yd, callback=lose_scheduler)
    assert est.n_epochs_ == 2 and len(est.history_["loss"]) == 2
    np.testing.assert_allclose(est.history_["loss"], ref.history_["loss"], rtol=0, atol=1e-12)
    _assert_same_weights(est, ref)


# -- bad inputs: lengths, chunks, dtypes -------------------------------------------------------

def test_lengths_refused_before_any_step(client, fitted, data, lengths):
    X, y = data
    Xd, yd = _dask(X, y)
    _bad_fit(fitted, Xd, yd, TypeError, "X is a dask array but lengths is numpy.ndarray",
             lengths=lengths)
    _bad_fit(fitted, X, y, TypeError, "but X is numpy.ndarray", lengths=_dl(lengths))
    _bad_fit(fitted, Xd, yd, ValueError, r"X and lengths must have the same chunks.*"
             r"lengths.rechunk", lengths=da.from_array(lengths, chunks=32))
    _bad_fit(fitted, Xd, yd, ValueError, r"lengths must be integer lengths \(n_samples,\) = "
             r"\(96,\)", lengths=_dl(lengths[:90]))
    _bad_fit(fitted, Xd, yd, ValueError, r"lengths must lie in \[0, time\] = \[0, 6\]",
             lengths=_dl(lengths + 5))
    with pytest.raises(TypeError, match="X is a dask array but lengths"):
        fitted.predict(Xd, lengths=lengths)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_chunk_is_named(client, fitted, data, bad):
    X, y = data
    Xn = X.copy()
    Xn[70, 2, 1] = bad  # in the second chunk
    _bad_fit(fitted, *_dask(Xn, y), ValueError,
             r"Input X chunk 1 \(rows 40..79\) contains NaN or inf \(1 non-finite")


def test_unsupported_dtype_in_one_chunk_is_named(client, fitted, data):
    """A chunk whose data are complex in an array that says float64 (a lying map_blocks)."""
    X, y = data
    Xd, yd = _dask(X, y)
    lying = Xd.map_blocks(lambda b, block_info=None: b.astype(np.complex128)
                          if block_info[0]["chunk-location"][0] == 2 else b, dtype=X.dtype)
    _bad_fit(fitted, lying, yd, ValueError, r"Complex data not supported: X chunk 2 \(rows "
             r"80..95\) has dtype complex128")


def test_score_mixed_dask_and_in_memory_refused(client, fitted, data):
    X, y = data
    Xd, _ = _dask(X, y)
    with pytest.raises(TypeError, match=r"X is a dask array but y is numpy\.ndarray"):
        fitted.score(Xd, y)
    with pytest.raises(ValueError, match="same chunks along samples"):
        fitted.score(Xd, da.from_array(y, chunks=32))


def test_only_lengths_on_dask_is_refused_naming_x(client, data):
    X, y = data
    lengths = da.from_array(np.full(N, T), chunks=(CHUNK,))
    with pytest.raises(TypeError, match=r"lengths is a dask array but X is numpy\.ndarray"):
        RNNClassifier(**SMALL).fit(X, y, lengths=lengths)
