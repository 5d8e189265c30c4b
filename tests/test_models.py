"""Dense layer, the sequence network and the estimators: gradients against PyTorch autograd and
finite differences, placement on every backend/device, seeded weights bit-identical across
backends, scikit-learn's estimator checks, save/load across backends."""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
import pytest

from rnnx._backend import backend_name, float64_unavailable, from_host, get_namespace, namespace, to_numpy
from rnnx._backend import device as device_of
from rnnx.layers import Dense
from rnnx.models import (
    DataConversionWarning,
    NotFittedError,
    RNNClassifier,
    RNNRegressor,
    ScratchSimpleRNNClassifier,
    SequenceNetwork,
    load_model,
    register_cell,
    save_model,
)
from rnnx.testing import assert_close, finite_difference_grads, grad_check_error

from ._threads import one_thread  # noqa: F401  (autouse fixture)

torch = pytest.importorskip("torch")

# Tiny estimator settings so every fit in this file takes milliseconds.
TINY = dict(hidden_size=8, epochs=3, batch_size=16, random_state=0)


def _backend_of(xp):
    return backend_name(xp)


# ------------------------------------------------------------------ Dense


@pytest.mark.parametrize("shape", [(4, 5), (3, 6, 5)], ids=["2d", "3d"])
def test_dense_matches_torch(xp, device, put, rng, shape):
    """Output and all gradients equal torch.nn.Linear's (float64, 1e-12 relative: same
    products, different summation order)."""
    w, b = rng.normal(size=(5, 3)), rng.normal(size=(3,))
    h, dout = rng.normal(size=shape), rng.normal(size=(*shape[:-1], 3))
    lin = torch.nn.Linear(5, 3, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w.T.copy()))
        lin.bias.copy_(torch.from_numpy(b))
    ht = torch.from_numpy(h.copy()).requires_grad_(True)
    out_t = lin(ht)
    (out_t * torch.from_numpy(dout)).sum().backward()
    layer = Dense.from_weights(put(w, xp.float64), put(b, xp.float64))
    out = layer.forward(put(h, xp.float64))
    dh = layer.backward(put(dout, xp.float64))
    assert device_of(out) == device and device_of(dh) == device
    assert_close(out, put(out_t.detach().numpy(), xp.float64), rtol=1e-12)
    assert_close(dh, put(ht.grad.numpy(), xp.float64), rtol=1e-12)
    assert_close(layer.grads["w"], put(lin.weight.grad.numpy().T, xp.float64), rtol=1e-12)
    assert_close(layer.grads["b"], put(lin.bias.grad.numpy(), xp.float64), rtol=1e-12)


def test_dense_rejects_wrong_input(xp, device, put):
    layer = Dense(4, 2, seed=0, backend=_backend_of(xp), device=device, dtype="float64")
    with pytest.raises(ValueError, match=r"h must have shape \(batch, 4\)"):
        layer.forward(put(np.zeros((2, 3)), xp.float64))
    with pytest.raises(RuntimeError, match="before forward"):
        Dense(4, 2, seed=0).backward(np.zeros((2, 2)))


# ------------------------------------------------------------------ network


def _torch_network(net, x, labels):
    """torch.nn.RNN + Linear + cross-entropy with the network's weights; host gradients."""
    # Copies: torch.from_numpy wants writeable arrays (a JAX array's host view is read-only).
    p = {k: np.array(to_numpy(v)) for k, v in net.parameters().items()}
    f, h = p["recurrent.l0.w_x"].shape
    rnn = torch.nn.RNN(f, h, batch_first=True, dtype=torch.float64)
    lin = torch.nn.Linear(h, p["dense.w"].shape[1], dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["recurrent.l0.w_x"].T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["recurrent.l0.w_h"].T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["recurrent.l0.b"]))
        rnn.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(p["dense.w"].T.copy()))
        lin.bias.copy_(torch.from_numpy(p["dense.b"]))
    hs, _ = rnn(torch.from_numpy(x))
    loss = torch.nn.functional.cross_entropy(lin(hs[:, -1, :]), torch.from_numpy(labels))
    loss.backward()
    return loss.item(), {
        "recurrent.l0.w_x": rnn.weight_ih_l0.grad.numpy().T,
        "recurrent.l0.w_h": rnn.weight_hh_l0.grad.numpy().T,
        "recurrent.l0.b": rnn.bias_ih_l0.grad.numpy(),
        "dense.w": lin.weight.grad.numpy().T,
        "dense.b": lin.bias.grad.numpy(),
    }


def test_many_to_one_network_matches_torch(xp, device, put, rng):
    """Loss and every parameter gradient of RNN -> last state -> Linear -> CE equal torch's
    (float64; 1e-10 relative to each array's largest entry, as in the core's torch test)."""
    x, labels = rng.normal(size=(4, 7, 3)), rng.integers(0, 5, size=4)
    net = SequenceNetwork(3, 6, 5, seed=1, backend=_backend_of(xp), device=device,
                          dtype="float64")
    ref_loss, ref = _torch_network(net, x, labels)
    loss, out = net.loss_and_grad(put(x, xp.float64), put(labels, xp.int64))
    assert device_of(out) == device and tuple(out.shape) == (4, 5)
    np.testing.assert_allclose(float(to_numpy(loss)), ref_loss, rtol=1e-12)
    for k, g in net.gradients().items():
        assert device_of(g) == device
        err = np.max(np.abs(to_numpy(g) - ref[k])) / np.max(np.abs(ref[k]))
        assert err < 1e-10, (k, err)


def test_many_to_many_network_matches_finite_differences(xp, device, put, rng):
    """A loss on every step (masked MSE through the all-steps BPTT path) against central
    differences in float64."""
    net = SequenceNetwork(2, 4, 3, loss="mse", sequence_output=True, seed=2,
                          backend=_backend_of(xp), device=device, dtype="float64")
    x = put(rng.normal(size=(3, 5, 2)), xp.float64)
    target = put(rng.normal(size=(3, 5, 3)), xp.float64)
    mask = put(rng.random((3, 5)) < 0.7)
    _, out = net.loss_and_grad(x, target, mask=mask)
    assert tuple(out.shape) == (3, 5, 3) and device_of(out) == device
    grads = net.gradients()
    params = net.parameters()

    def f(**ps):
        net.load_parameters(ps)
        return net.loss_and_grad(x, target, mask=mask)[0]

    numeric = finite_difference_grads(f, params)
    for k in params:
        assert grad_check_error(grads[k], numeric[k]) < 1e-7, k


def test_seeded_initial_weights_are_bit_identical_across_backends(backend, dtype):
    """Every backend and device: the same seed gives NumPy's bits."""
    name, xp, dev = backend
    dtype_name = "float32" if dtype == xp.float32 else "float64"
    ref = {k: to_numpy(v) for k, v in
           SequenceNetwork(8, 16, 10, seed=123, dtype=dtype_name).parameters().items()}
    net = SequenceNetwork(8, 16, 10, seed=123, backend=name, device=dev, dtype=dtype_name)
    for k, v in net.parameters().items():
        assert device_of(v) == dev, k
        host = to_numpy(v)
        assert host.dtype == ref[k].dtype
        np.testing.assert_array_equal(host, ref[k], err_msg=f"{name} {k}")


def test_registered_cell_is_one_line():
    """A new cell kind is one registry record: it then builds, trains through both estimators
    and reports its own options, with nothing else changed (here an Elman variant whose only
    nonlinearity is relu, built from the Elman maths)."""
    from rnnx.functional import registry

    relu_only = dataclasses.replace(registry.CELLS["rnn"], name="relu_test",
                                    options={"nonlinearity": ("relu",)})
    register_cell(relu_only)
    try:
        X, y = _toy_classification()
        clf = RNNClassifier(cell="relu_test", nonlinearity="relu", **TINY).fit(X, y)
        assert clf.network_.recurrent.nonlinearity == "relu"
        reg = RNNRegressor(cell="relu_test", nonlinearity="relu", sequence_output=True,
                           **TINY).fit(X, X[:, :, 0])
        assert reg.network_.recurrent.return_sequences
        with pytest.raises(ValueError, match=r"nonlinearity must be one of \('relu',\)"):
            RNNClassifier(cell="relu_test", **TINY).fit(X, y)
        with pytest.raises(ValueError, match="registered already"):
            register_cell(relu_only)
    finally:
        registry.unregister_cell("relu_test")
    assert "relu_test" not in registry.CELLS


# ------------------------------------------------------------------ estimators


def _toy_classification(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    return X, y


def test_classifier_follows_x_on_every_backend(xp, device, put):
    """Fit and predict in X's namespace, on X's device; labels and probabilities agree with the
    NumPy run (float64: same seeded start, same maths; 1e-8 absolute on probabilities leaves
    room for BLAS summation order over 3 epochs)."""
    X, y = _toy_classification()
    ref = RNNClassifier(**TINY, dtype="float64").fit(X, y)
    Xd, yd = put(X, xp.float64), put(y, xp.int64)
    clf = RNNClassifier(**TINY, dtype="float64").fit(Xd, yd)
    for v in clf.network_.parameters().values():
        assert namespace(v) is namespace(Xd) and device_of(v) == device
    pred, proba = clf.predict(Xd), clf.predict_proba(Xd)
    assert device_of(pred) == device and device_of(proba) == device
    assert backend_name(namespace(pred)) == backend_name(xp)
    np.testing.assert_array_equal(to_numpy(pred), ref.predict(X))
    np.testing.assert_allclose(to_numpy(proba), ref.predict_proba(X), rtol=0, atol=1e-8)
    np.testing.assert_allclose(clf.history_["loss"], ref.history_["loss"], rtol=1e-9)


def test_backend_parameter_moves_host_data():
    X, y = _toy_classification()
    strict = get_namespace("array_api_strict")
    dev1 = strict.Device("device1")
    clf = RNNClassifier(**TINY, backend="array_api_strict", device=dev1).fit(X, y)
    assert all(device_of(v) == dev1 for v in clf.network_.parameters().values())
    pred = clf.predict(X)
    assert isinstance(pred, np.ndarray)  # results come back in the caller's namespace
    reg = RNNRegressor(**TINY, backend="torch").fit(X, X[:, :, 0].sum(axis=1))
    assert isinstance(reg.predict(X), np.ndarray)
    assert backend_name(namespace(reg.network_.dense.params["w"])) == "torch"


def test_predict_follows_x_even_when_the_model_lives_elsewhere():
    """Fitted on strict's default device, asked about data on device1 (and on torch): the data
    are moved to the model, the answers back to the caller's namespace and device."""
    X, y = _toy_classification()
    strict = get_namespace("array_api_strict")
    dev1 = strict.Device("device1")
    clf = RNNClassifier(**TINY).fit(from_host(X, xp=strict), from_host(y, xp=strict))
    ref = to_numpy(clf.predict_proba(from_host(X, xp=strict)))
    p1 = clf.predict_proba(from_host(X, xp=strict, device=dev1))
    assert device_of(p1) == dev1
    np.testing.assert_array_equal(to_numpy(p1), ref)
    pt = clf.predict(from_host(X, xp=get_namespace("torch")))
    assert backend_name(namespace(pt)) == "torch"
    assert all(device_of(v) != dev1 for v in clf.network_.parameters().values())


def test_training_curves_decrease_on_digits():
    """A small model on 400 digits: loss falls and accuracy rises over the epochs."""
    from rnnx.datasets import load_digits_sequences

    X, y = load_digits_sequences()
    clf = ScratchSimpleRNNClassifier(hidden_size=32, epochs=8, random_state=0).fit(X[:400], y[:400])
    loss, acc = clf.history_["loss"], clf.history_["accuracy"]
    assert len(loss) == 8 and loss[-1] < 0.3 * loss[0] and acc[-1] > acc[0] + 0.3
    assert clf.score(X[400:700], y[400:700]) > 0.8


def test_early_stopping_and_validation_history():
    X, y = _toy_classification(96)
    # tol larger than any possible improvement: only the first epoch counts as one.
    clf = RNNClassifier(**{**TINY, "epochs": 20}, early_stopping=True, n_iter_no_change=2,
                        tol=1e6).fit(X, y)
    assert clf.n_epochs_ == 3
    assert set(clf.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in clf.history_.values())
    full = RNNClassifier(**{**TINY, "epochs": 5}, validation_fraction=0.25).fit(X, y)
    assert full.n_epochs_ == 5 and len(full.history_["val_loss"]) == 5


def test_early_stopping_keeps_the_best_epochs_weights(tmp_path):
    """With early stopping on a validation split the model keeps the weights of the epoch of
    the lowest validation loss, and says which (``best_epoch_``): they equal, bit for bit, a fit
    of exactly that many epochs on the same split (the split and the shuffling draw the same
    numbers with or without early stopping). ``best_epoch_`` travels in the saved file; without
    early stopping it is None."""
    X, y = _toy_classification(96)
    kw = dict(TINY, epochs=12, validation_fraction=0.25, learning_rate=0.5)  # a bumpy descent
    clf = RNNClassifier(**kw, early_stopping=True, n_iter_no_change=12, tol=0.0).fit(X, y)
    val = clf.history_["val_loss"]
    assert clf.n_epochs_ == 12 and clf.best_epoch_ == int(np.argmin(val)) + 1 < 12
    short = RNNClassifier(**{**kw, "epochs": clf.best_epoch_}).fit(X, y)
    assert short.best_epoch_ is None and short.history_["val_loss"] == val[:clf.best_epoch_]
    got, want = dict(clf.network_.parameters()), dict(short.network_.parameters())
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    save_model(clf, tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz").best_epoch_ == clf.best_epoch_
    save_model(short, tmp_path / "s.npz")
    assert load_model(tmp_path / "s.npz").best_epoch_ is None


def test_partial_fit_continues_and_checks_features():
    X, y = _toy_classification(128)
    clf = RNNClassifier(hidden_size=8, random_state=0)
    for _ in range(6):
        clf.partial_fit(X, y, classes=[0, 1])
    assert clf.n_epochs_ == 6 and clf.history_["loss"][-1] < clf.history_["loss"][0]
    with pytest.raises(ValueError, match="X has 3 features, but RNNClassifier is expecting 2"):
        clf.partial_fit(np.zeros((4, 6, 3)), y[:4])


def test_two_dimensional_x_is_univariate_sequences():
    X, y = _toy_classification()
    X2 = X[:, :, 0]  # (n, time)
    clf = RNNClassifier(**TINY).fit(X2, y)
    assert clf.n_features_in_ == 6 and clf.network_.recurrent.input_size == 1
    np.testing.assert_array_equal(clf.predict(X2), clf.predict(X2[:, :, None]))
    with pytest.raises(ValueError, match="X has 5 features, but RNNClassifier is expecting 6"):
        clf.predict(X2[:, :5])


def test_string_labels_and_errors():
    X, y = _toy_classification()
    labels = np.array(["neg", "pos"])[y]
    clf = RNNClassifier(**TINY).fit(X, labels)
    assert list(clf.classes_) == ["neg", "pos"]
    assert set(clf.predict(X)) <= {"neg", "pos"}
    with pytest.raises(NotFittedError, match="not fitted yet"):
        RNNClassifier().predict(X)
    with pytest.raises(ValueError, match="at least 2 classes"):
        RNNClassifier(**TINY).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="Unknown label type"):
        RNNClassifier(**TINY).fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match="contains NaN"):
        RNNClassifier(**TINY).fit(np.full((4, 3, 2), np.nan), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        RNNClassifier(hidden_size=0).fit(X, y)
    with pytest.raises(ValueError, match="cell must be one of"):
        RNNClassifier(cell="nope").fit(X, y)
    with pytest.raises(ValueError, match="Elman"):
        ScratchSimpleRNNClassifier().cell = "lstm"


def test_regressor_many_to_one_and_many_to_many():
    """y = running sum of x: the last value (many-to-one) and every prefix (many-to-many)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(256, 5))
    cums = np.cumsum(X, axis=1)
    one = RNNRegressor(hidden_size=16, epochs=40, random_state=0).fit(X, cums[:, -1])
    assert one.predict(X).shape == (256,)
    assert one.score(X, cums[:, -1]) > 0.9
    many = RNNRegressor(hidden_size=16, epochs=40, random_state=0, sequence_output=True)
    many.fit(X, cums)
    assert many.predict(X).shape == (256, 5)
    assert many.score(X, cums) > 0.9
    multi = RNNRegressor(**TINY).fit(X, np.stack([cums[:, -1], -cums[:, -1]], axis=1))
    assert multi.predict(X).shape == (256, 2)


def test_fit_is_reproducible_and_does_not_touch_inputs():
    X, y = _toy_classification()
    X0, y0 = X.copy(), y.copy()
    a = RNNClassifier(**TINY).fit(X, y).predict_proba(X)
    b = RNNClassifier(**TINY).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


# ------------------------------------------------------------------ save / load


def test_save_on_one_backend_load_on_another(tmp_path, backend):
    """Fitted on NumPy, saved, loaded onto every backend and device: the same predictions."""
    name, xp, dev = backend
    X, y = _toy_classification()
    clf = RNNClassifier(**TINY, dtype="float64").fit(X, y)
    path = tmp_path / "model.npz"
    save_model(clf, path)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # the temporary file was renamed away
    with np.load(path, allow_pickle=False) as data:  # readable without pickle
        assert "meta" in data.files
    if float64_unavailable(xp):
        with pytest.raises(ValueError, match="JAX_ENABLE_X64"):
            load_model(path, backend=name, device=dev)
        return
    loaded = load_model(path, backend=name, device=dev)
    for v in loaded.network_.parameters().values():
        assert backend_name(namespace(v)) == name
        assert device_of(v) == dev
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    # The same float64 operations on another library: rounding-level differences.
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-12)
    assert loaded.history_ == clf.history_


def test_save_load_regressor_and_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 4, 2))
    reg = RNNRegressor(**TINY, dtype="float32").fit(X, X.sum(axis=(1, 2)))
    save_model(reg, tmp_path / "r.npz")
    loaded = load_model(tmp_path / "r.npz")
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(ValueError, match=r"not an \.npz archive"):
        load_model(tmp_path / "x.npy")
    np.savez(tmp_path / "other.npz", a=X)
    with pytest.raises(ValueError, match="not an rnnx model file"):
        load_model(tmp_path / "other.npz")


def test_files_of_the_flat_elman_layout_still_load(tmp_path):
    """Before the one-layer Elman network became a one-layer Recurrent, its file named the
    recurrent parameters without the layer suffix (param/recurrent.w_x): such a file loads and
    predicts exactly as the model that wrote it."""
    X, y = _toy_classification()
    clf = RNNClassifier(**TINY).fit(X, y)
    save_model(clf, tmp_path / "new.npz")
    with np.load(tmp_path / "new.npz", allow_pickle=False) as data:
        arrays = {k.replace("param/recurrent.l0.", "param/recurrent."): data[k] for k in data.files}
    assert "param/recurrent.w_x" in arrays and "param/recurrent.l0.w_x" not in arrays
    np.savez(tmp_path / "old.npz", **arrays)
    old = load_model(tmp_path / "old.npz")
    np.testing.assert_array_equal(old.predict_proba(X), clf.predict_proba(X))
    assert sorted(old.network_.parameters()) == sorted(clf.network_.parameters())


# ------------------------------------------------------------------ scikit-learn contract

# Checks that cannot apply, with the reason. Empty: every check runs and passes. (Two checks
# skip themselves in an environment without pandas or without SCIPY_ARRAY_API; that is
# scikit-learn's decision, not ours.)
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@pytest.mark.filterwarnings("ignore:Estimator .* does not inherit from:UserWarning")
@pytest.mark.parametrize("Estimator", [RNNClassifier, ScratchSimpleRNNClassifier, RNNRegressor])
def test_scikit_learn_check_estimator(Estimator):
    estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")
    with warnings.catch_warnings():
        # check_supervised_y_2d records warnings and expects this one to be among them.
        warnings.simplefilter("always", DataConversionWarning)
        estimator_checks.check_estimator(Estimator(), expected_failed_checks=EXPECTED_FAILED_CHECKS,
                                         on_skip=None)


def test_package_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = ("import sys, rnnx, rnnx.models, rnnx.datasets, rnnx.cli; "
            "print(any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_limit_threads_restores_torch_setting():
    from rnnx._backend import limit_threads

    before = torch.get_num_threads()  # 1 under this module's fixture
    with limit_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_partial_fit_after_load_model(tmp_path):
    """A loaded model continues training (it had no shuffling generator: io._build set none)."""
    from rnnx.models import load_model, save_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 5, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    clf = RNNClassifier(hidden_size=4, epochs=2, random_state=0).fit(X, y)
    save_model(clf, tmp_path / "m.npz")
    back = load_model(tmp_path / "m.npz")
    back.partial_fit(X, y)
    assert back.n_epochs_ == 3 and len(back.history_["loss"]) == 3
    reg = RNNRegressor(hidden_size=4, epochs=1, random_state=None).fit(X, X[:, -1, 0])
    save_model(reg, tmp_path / "r.npz")
    assert load_model(tmp_path / "r.npz").partial_fit(X, X[:, -1, 0]).n_epochs_ == 2


def test_fit_progress_bar(capsys):
    """fit(progress=True) draws the CLI's tqdm bar on stderr; the default (None) stays silent
    when stderr is not a terminal, as under pytest; progress=False never draws."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(16, 4, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    seen = []
    RNNClassifier(hidden_size=4, epochs=3, random_state=0).fit(
        X, y, progress=True, callback=lambda e, h: seen.append(e))
    err = capsys.readouterr().err
    assert "/3 [" in err and "epoch" in err  # tqdm redraws at most every 0.1 s: short here
    assert seen == [1, 2, 3]  # the user's callback still runs
    for progress in (None, False):
        RNNClassifier(hidden_size=4, epochs=2, random_state=0).fit(X, y, progress=progress)
        assert capsys.readouterr().err == ""


def test_dropout_with_one_layer_warns_as_torch_does():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(16, 4, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        RNNClassifier(hidden_size=4, epochs=1, dropout=0.5).fit(X, y)


def test_one_2d_sequence_gets_a_reshape_hint():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(16, 8, 8))
    clf = RNNClassifier(hidden_size=4, epochs=1, random_state=0).fit(X, np.arange(16) % 2)
    with pytest.raises(ValueError, match=r"is X\.reshape\(1, 8, 8\)"):
        clf.predict(X[0])
