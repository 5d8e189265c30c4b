"""Nothing is lost, a seed means something, long sequences fit in memory.

- Divergence: a deliberately huge learning rate ends in ``TrainingDivergedError`` naming the
  epoch, with the model back at its last finite epoch.
- Ctrl-C: a ``KeyboardInterrupt`` raised inside a mini-batch of the real estimator leaves the
  weights, optimizer state and history of the last completed epoch; continuing with
  ``partial_fit`` reproduces the uninterrupted run bit for bit.
- Files: a real subprocess saving a large model in a loop is killed with SIGKILL; the file it
  was replacing always loads intact. Save/load round trips are bit-identical on every backend.
- Determinism: same seed, same initial estimator weights on every backend; the same training
  twice on one backend gives the same bits.
- Long sequences: ``time = 100_000`` forward and backward, no recursion, peak memory within a
  stated factor of the documented cache.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numpy as np
import pytest

from rnnx._backend import backend_name, from_host, namespace, to_numpy
from rnnx._backend import device as device_of
from rnnx.functional import rnn_backward, rnn_forward
from rnnx.models import (
    RNNClassifier,
    RNNRegressor,
    SequenceNetwork,
    TrainingDivergedError,
    load_model,
    save_model,
)

from ._subprocess import child_env
from ._threads import one_thread  # noqa: F401  (autouse fixture)

TINY = dict(hidden_size=8, epochs=3, batch_size=16, random_state=0)


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6, 2))  # (n_samples, time, features)
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)


def _host_params(model):
    return {k: to_numpy(v).copy() for k, v in model.network_.parameters().items()}


def _assert_same_bits(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ------------------------------------------------------------------ divergence


def test_huge_learning_rate_stops_with_last_finite_weights(xp, device, put):
    """Plain SGD at learning rate 10 without clipping on a float32 regressor: the loss grows
    ~1e15-fold per epoch and overflows float32 within a few epochs (measured: epoch 4 on NumPy).
    The error names the epoch and the remedies; weights and history are those of the last
    finite epoch, captured by the callback when that epoch ended."""
    X, _ = _data()
    y = X.sum(axis=(1, 2))
    model = RNNRegressor(hidden_size=8, epochs=20, batch_size=16, random_state=0, optimizer="sgd",
                         learning_rate=10.0, clip_norm=None, dtype="float32")
    after = {}

    def remember(epoch, history):
        after[epoch] = (_host_params(model), list(history["loss"]))

    with pytest.raises(TrainingDivergedError) as info:
        model.fit(put(X, xp.float64), put(y, xp.float64), callback=remember)
    err = info.value
    assert isinstance(err, FloatingPointError)
    last = model.n_epochs_
    assert last >= 1 and err.epoch == last + 1 and not np.isfinite(err.loss)
    msg = str(err)
    for part in (f"training diverged in epoch {last + 1}", f"the weights after epoch {last}",
                 "Lower learning_rate (10.0 now)", "clip_norm=1.0"):
        assert part in msg, msg
    _assert_same_bits(_host_params(model), after[last][0])
    assert model.history_["loss"] == after[last][1] and len(model.history_["loss"]) == last
    assert all(np.isfinite(model.history_["loss"]))
    for v in model.network_.parameters().values():
        assert device_of(v) == device
    assert np.all(np.isfinite(to_numpy(model.predict(put(X, xp.float64)))))


def test_divergence_in_the_first_epoch_keeps_the_initial_weights():
    X, _ = _data()
    y = X.sum(axis=(1, 2))
    params = dict(hidden_size=8, batch_size=16, random_state=0, optimizer="sgd", clip_norm=None,
                  dtype="float32")
    model = RNNRegressor(epochs=3, learning_rate=1e6, **params)

    def interrupt_first_batch(*args, **kwargs):
        raise KeyboardInterrupt

    # The initial weights, read through the public behaviour under test (Ctrl-C in batch 1).
    probe = RNNRegressor(epochs=1, learning_rate=1e6, **params)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SequenceNetwork, "train_step", interrupt_first_batch)
        with pytest.raises(KeyboardInterrupt):
            probe.fit(X, y)
    initial = _host_params(probe)
    with pytest.raises(TrainingDivergedError, match=r"in epoch 1: .* keeps its initial weights"):
        model.fit(X, y)
    assert model.n_epochs_ == 0 and model.history_["loss"] == []
    _assert_same_bits(_host_params(model), initial)


# ------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_inside_a_batch_keeps_the_last_completed_epoch():
    """KeyboardInterrupt from the 2nd mini-batch of epoch 3 (4 batches per epoch): fit
    re-raises it with a note, and the model is exactly as at the end of epoch 2; one
    partial_fit then gives the bits of an uninterrupted 3-epoch fit (weights, Adam moments and
    the shuffling generator were all restored)."""
    X, y = _data()
    reference = RNNClassifier(**TINY).fit(X, y)

    model = RNNClassifier(**TINY)
    after = {}
    real_step = SequenceNetwork.train_step
    calls = 0

    def step(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 2 * 4 + 2:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    def remember(epoch, history):
        after[epoch] = (_host_params(model), {k: list(v) for k, v in history.items()})

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SequenceNetwork, "train_step", step)
        with pytest.raises(KeyboardInterrupt) as info:
            model.fit(X, y, callback=remember)
    assert any("interrupted in epoch 3" in n and "2 completed epoch(s)" in n
               for n in getattr(info.value, "__notes__", []))
    assert model.n_epochs_ == 2 and sorted(after) == [1, 2]
    _assert_same_bits(_host_params(model), after[2][0])
    assert model.history_ == after[2][1]
    model.partial_fit(X, y)
    _assert_same_bits(_host_params(model), _host_params(reference))
    assert model.history_ == reference.history_


def test_ctrl_c_in_partial_fit_keeps_the_previous_state():
    X, y = _data()
    model = RNNClassifier(**TINY).partial_fit(X, y, classes=[0, 1])
    before, history = _host_params(model), {k: list(v) for k, v in model.history_.items()}
    with pytest.MonkeyPatch.context() as mp:
        real = SequenceNetwork.train_step
        seen = []

        def step(self, *a, **k):
            seen.append(1)
            if len(seen) == 3:
                raise KeyboardInterrupt
            return real(self, *a, **k)

        mp.setattr(SequenceNetwork, "train_step", step)
        with pytest.raises(KeyboardInterrupt) as info:
            model.partial_fit(X, y)
    assert any("RNNClassifier.partial_fit interrupted in epoch 2" in n
               for n in getattr(info.value, "__notes__", []))
    _assert_same_bits(_host_params(model), before)
    assert model.history_ == history and model.n_epochs_ == 1


# ------------------------------------------------------------------ files

_SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    from rnnx.models import RNNRegressor, save_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 3, 4))
    # hidden 1024: w_h alone is 8 MiB, so nearly all of the loop's time is spent inside a save.
    model = RNNRegressor(hidden_size=1024, epochs=1, batch_size=8, random_state=0,
                         recurrent_init="xavier").fit(X, X.sum(axis=(1, 2)))
    save_model(model, sys.argv[1])
    print("ready", flush=True)
    while True:
        save_model(model, sys.argv[1])
""")


def _env():
    return child_env()


def test_sigkill_mid_save_leaves_the_previous_file_intact(tmp_path):
    """A real process saves an 8 MiB model over the same path in a loop and is killed with
    SIGKILL at different moments. Every time the file loads, with the weights the process
    saved. A kill that landed inside a save shows as its leftover temporary file; at least one
    such kill must happen, or the test proves nothing."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("no SIGKILL on this platform")
    path = tmp_path / "model.npz"
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    reference = None
    mid_save = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env())
        try:
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read()
            time.sleep(0.005 + 0.013 * attempt)  # land at different points of the save loop
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        leftovers = sorted(p.name for p in tmp_path.iterdir()
                           if p.name.startswith(".model.npz.") and p.name.endswith(".tmp"))
        mid_save += bool(leftovers)  # earlier leftovers were deleted: this kill's
        loaded = load_model(path)  # never a partial file
        params = {k: to_numpy(v) for k, v in loaded.network_.parameters().items()}
        if reference is None:
            reference = params
        _assert_same_bits(params, reference)
        for name in leftovers:  # what a kill leaves: a hidden temporary file, safe to delete
            os.unlink(tmp_path / name)
        if mid_save and attempt >= 2:
            break
    assert mid_save >= 1, "no kill landed inside a save; the test did not exercise atomicity"


def test_round_trip_is_bit_identical_on_every_backend(xp, device, put, dtype, tmp_path):
    """Fit on a backend/device/dtype, save, load back onto the same one: every weight and
    every prediction (labels and probabilities) is bit-identical; history and classes too."""
    X, y = _data()
    dname = "float32" if dtype == xp.float32 else "float64"
    Xd, yd = put(X, dtype), put(y, xp.int64)
    model = RNNClassifier(**{**TINY, "epochs": 2}, dtype=dname).fit(Xd, yd)
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz", backend=backend_name(xp), device=device)
    for k, v in loaded.network_.parameters().items():
        assert device_of(v) == device and v.dtype == dtype, k
    _assert_same_bits(_host_params(loaded), _host_params(model))
    np.testing.assert_array_equal(to_numpy(loaded.predict_proba(Xd)), to_numpy(model.predict_proba(Xd)))
    np.testing.assert_array_equal(to_numpy(loaded.predict(Xd)), to_numpy(model.predict(Xd)))
    assert loaded.history_ == model.history_
    np.testing.assert_array_equal(loaded.classes_, model.classes_)


def test_regressor_round_trip_is_bit_identical(tmp_path):
    X, _ = _data()
    reg = RNNRegressor(**TINY, sequence_output=True).fit(X, np.cumsum(X[:, :, 0], axis=1))
    save_model(reg, tmp_path / "r.npz")
    loaded = load_model(tmp_path / "r.npz")
    _assert_same_bits(_host_params(loaded), _host_params(reg))
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))


def test_loading_never_unpickles(tmp_path, monkeypatch):
    """A file with an object array is refused before anything could be unpickled: pickle's
    loaders are replaced by traps for the duration."""
    import pickle

    def trap(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", trap)
    monkeypatch.setattr(pickle, "loads", trap)
    np.savez(tmp_path / "evil.npz", meta=np.array([{"format": "rnnx-model"}], dtype=object))
    with pytest.raises(ValueError, match="never unpickles"):
        load_model(tmp_path / "evil.npz")


# ------------------------------------------------------------------ determinism


def _initial_estimator_weights(X, y, **params):
    """The weights a fit starts from: Ctrl-C in its first mini-batch restores exactly those."""
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    model = RNNClassifier(**params)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SequenceNetwork, "train_step", interrupt)
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y)
    return model


def test_estimator_initial_weights_are_bit_identical_across_backends(backend, dtype):
    """random_state=7 gives NumPy's initial weights on every backend and device: they are
    drawn on the host and moved, never drawn by a backend."""
    name, xp, dev = backend
    dtype_name = "float32" if dtype == xp.float32 else "float64"
    X, y = _data()
    ref = _host_params(_initial_estimator_weights(X, y, **TINY | {"random_state": 7},
                                                  dtype=dtype_name))
    model = _initial_estimator_weights(from_host(X, xp=xp, device=dev),
                                       from_host(y, xp=xp, device=dev),
                                       **TINY | {"random_state": 7}, dtype=dtype_name)
    for v in model.network_.parameters().values():
        assert backend_name(namespace(v)) == name
        assert device_of(v) == dev
    host = _host_params(model)
    assert all(v.dtype == np.dtype(dtype_name) for v in host.values())
    _assert_same_bits(host, ref)
    other = _host_params(_initial_estimator_weights(X, y, **TINY | {"random_state": 8},
                                                    dtype=dtype_name))
    assert not np.array_equal(other["recurrent.l0.w_h"], ref["recurrent.l0.w_h"])


def test_training_twice_is_bit_identical(xp, device, put):
    """The same seed and data on the same backend and device: every epoch's loss and every
    final weight are the same bits (single-threaded BLAS, as under this module's fixture)."""
    X, y = _data()
    runs = []
    for _ in range(2):
        m = RNNClassifier(**TINY, validation_fraction=0.25).fit(put(X, xp.float64), put(y, xp.int64))
        runs.append((_host_params(m), m.history_))
    _assert_same_bits(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


# ------------------------------------------------------------------ long sequences

LONG_T, LONG_H = 100_000, 32
CACHE_BYTES = 1 * LONG_T * LONG_H * 8  # hs (batch, time, hidden) float64 = 25.6 MB

# Peak traced memory of rnn_forward / rnn_backward over the cache size. Measured (NumPy 2.4,
# Python 3.11, the time-major core): forward 25.7 MB = 1.00x — the input projection buffer
# becomes the state buffer, so the cache is all the forward allocates (plus the (T, B, F) copy of
# x, F/H = 1/32 here); backward 52.0 MB = 2.03x — the cache it reads, the (T, B, H) da buffer
# (1x) and the small x-sized pieces (x's time-major copy, dx). 2.5 leaves room for other NumPy
# versions' temporaries yet fails if one more (batch, time, hidden) buffer appears (2.03 + 1).
PEAK_FACTOR = 2.5


def _frames_deep() -> int:
    f, n = sys._getframe(), 0
    while f is not None:
        f, n = f.f_back, n + 1
    return n


def test_long_sequence_forward_backward_memory():
    """time = 100_000, batch 1, hidden 32, float64: forward and backward run under a recursion
    limit only 100 frames above the caller (nothing recurses per step), give finite results, and
    their traced peak stays within PEAK_FACTOR of the cache."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, LONG_T, 1))  # (batch, time, features)
    w_x = rng.normal(size=(1, LONG_H))
    w_h = rng.normal(size=(LONG_H, LONG_H)) * (0.5 / np.sqrt(LONG_H))
    b = np.zeros(LONG_H)
    dlast = rng.normal(size=(1, LONG_H))  # (batch, hidden): a many-to-one loss
    # Warm-up: the first call imports array-api-compat's NumPy wrappers (~5 MB of module
    # objects), which are not the algorithm's memory.
    rnn_backward(dlast, rnn_forward(x[:, :2, :], w_x, w_h, b)[1])
    limit = sys.getrecursionlimit()
    tracemalloc.start()
    try:
        sys.setrecursionlimit(_frames_deep() + 100)
        hs, cache = rnn_forward(x, w_x, w_h, b)
        _, peak_fwd = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        grads = rnn_backward(dlast, cache)
        _, peak_bwd = tracemalloc.get_traced_memory()
    finally:
        sys.setrecursionlimit(limit)
        tracemalloc.stop()
    assert hs.shape == (1, LONG_T, LONG_H) and np.all(np.isfinite(hs))
    assert all(np.all(np.isfinite(g)) for g in grads)
    ratios = peak_fwd / CACHE_BYTES, peak_bwd / CACHE_BYTES
    print(f"long sequence: forward peak {peak_fwd / 1e6:.1f} MB, backward peak {peak_bwd / 1e6:.1f} "
          f"MB, cache {CACHE_BYTES / 1e6:.1f} MB")
    assert max(ratios) <= PEAK_FACTOR, (
        f"peak traced memory forward {peak_fwd / 1e6:.1f} MB ({ratios[0]:.2f}x), backward "
        f"{peak_bwd / 1e6:.1f} MB ({ratios[1]:.2f}x) of the {CACHE_BYTES / 1e6:.1f} MB cache")
    assert min(ratios) >= 1.0  # the cache itself is traced: the measurement sees NumPy's memory


def test_ctrl_c_during_rnnx_train_is_one_line(tmp_path):
    """SIGINT to a real `rnnx train` in the middle of training: exit status 130 (128 + SIGINT),
    one line on stderr, no traceback; with --save, the model of the last completed epoch is
    written and the line says so (none if no epoch completed; the saving itself is tested in
    tests/test_cli.py)."""
    if not hasattr(signal, "SIGINT") or os.name == "nt":
        pytest.skip("POSIX signals only")
    model = tmp_path / "m.npz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnx", "train", "--no-progress", "--epochs", "1000",
         "--hidden-size", "16", "--save", str(model)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    try:
        assert proc.stdout.readline().startswith("data")
        assert proc.stdout.readline().startswith("model")
        assert proc.stdout.readline().startswith("threads")  # printed just before fit starts
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err, err
    assert err.startswith("rnnx: interrupted in epoch "), err
    assert model.exists() == ("saved the model of the last completed epoch" in err), err


def test_score_accepts_the_same_labels_in_any_equivalent_dtype():
    """The unseen-label check of score compares values, not dtypes: str labels given back as an
    object array or a list score the same; integer labels against string classes are refused."""
    X, y = _data()
    labels = np.array(["neg", "pos"])[y]
    clf = RNNClassifier(**TINY).fit(X, labels)
    expected = float(np.mean(clf.predict(X) == labels))
    assert clf.score(X, labels.astype(object)) == clf.score(X, list(labels)) == expected
    with pytest.raises(ValueError, match=r"y holds label\(s\) \[0, 1\] not in classes_"):
        clf.score(X, y)
