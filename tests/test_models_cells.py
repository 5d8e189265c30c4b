"""Networks and estimators with every cell kind: LSTM/GRU, stacked, bidirectional and
variable-length batches, against torch (nn.LSTM/GRU + Linear + cross-entropy over packed
sequences) and central differences."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import backend_name, to_numpy
from rnnx._backend import device as device_of
from rnnx.interop import to_torch
from rnnx.models import RNNClassifier, RNNRegressor
from rnnx.models.network import SequenceNetwork
from rnnx.testing import finite_difference_grads, grad_check_error

from ._cells import KINDS
from ._threads import one_thread  # noqa: F401  (autouse fixture)

torch = pytest.importorskip("torch")

CONFIGS = [("rnn", 2, True), ("lstm", 1, False), ("lstm", 2, True), ("gru", 1, True),
           ("gru", 2, False)]
IDS = [f"{c}-{n}layer{'-bi' if b else ''}" for c, n, b in CONFIGS]


def _torch_loss_and_grads(net, x, labels, lengths):
    """The same network in torch: packed sequence -> h_n of the last layer (both directions)
    -> Linear -> cross-entropy. Returns the loss and host gradients keyed like rnnx's."""
    module = to_torch(net.recurrent)
    # Copies: torch.from_numpy wants writeable arrays (a JAX array's host view is read-only).
    dense_w, dense_b = (np.array(to_numpy(net.dense.params[k])) for k in ("w", "b"))
    lin = torch.nn.Linear(*dense_w.shape, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(dense_w.T.copy()))
        lin.bias.copy_(torch.from_numpy(dense_b))
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False)
    _, state = module(packed)
    h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
    dirs = 2 if module.bidirectional else 1
    last = torch.cat([h_n[-dirs + d] for d in range(dirs)], dim=1)  # (B, D*H)
    loss = torch.nn.functional.cross_entropy(lin(last), torch.from_numpy(labels))
    loss.backward()
    grads = {"dense.w": lin.weight.grad.numpy().T, "dense.b": lin.bias.grad.numpy()}
    return loss.item(), module, grads


@pytest.mark.parametrize(("cell", "layers", "bidirectional"), CONFIGS, ids=IDS)
def test_network_with_lengths_matches_torch_packed(xp, device, put, rng, cell, layers,
                                                    bidirectional):
    """Loss and gradients (dense layer, and the recurrent weights through torch's module)
    equal torch's in float64 to 1e-10 relative to each array's largest entry."""
    x, labels = rng.normal(size=(5, 6, 3)), rng.integers(0, 4, size=5)
    lengths = np.array([6, 2, 4, 1, 5])
    net = SequenceNetwork(3, 4, 4, cell=cell, num_layers=layers, bidirectional=bidirectional,
                          seed=3, backend=backend_name(xp), device=device, dtype="float64")
    ref_loss, module, ref = _torch_loss_and_grads(net, x, labels, lengths)
    loss, out = net.loss_and_grad(put(x, xp.float64), put(labels, xp.int64),
                                  steps=put(lengths))
    assert device_of(out) == device
    np.testing.assert_allclose(float(to_numpy(loss)), ref_loss, rtol=1e-12)
    grads = net.gradients()
    for k in ("dense.w", "dense.b"):
        err = np.max(np.abs(to_numpy(grads[k]) - ref[k])) / np.max(np.abs(ref[k]))
        assert err < 1e-10, (k, err)
    # Recurrent weights: compare through the round trip's naming (torch weight_ih_l0 = w_x.T).
    for name, p in module.named_parameters():
        kind, sfx = name.split("_l", 1)
        sfx = "l" + sfx
        if kind == "weight_ih":
            got = to_numpy(grads[f"recurrent.{sfx}.w_x"]).T
        elif kind == "weight_hh":
            got = to_numpy(grads[f"recurrent.{sfx}.w_h"]).T
        elif cell == "gru":
            got = to_numpy(grads[f"recurrent.{sfx}.{kind.replace('bias', 'b')}"])
        else:
            # rnnx keeps one combined bias for Elman/LSTM: both torch biases get its gradient.
            got = to_numpy(grads[f"recurrent.{sfx}.b"])
        want = p.grad.numpy()
        err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300)
        assert err < 1e-10, (name, err)


@pytest.mark.parametrize(("cell", "layers", "bidirectional"), CONFIGS[:2], ids=IDS[:2])
def test_many_to_many_with_padding_matches_finite_differences(xp, device, put, rng, cell,
                                                              layers, bidirectional):
    """Masked per-step MSE through padded sequences: padded steps leave the loss and carry no
    gradient; central differences in float64 agree to 1e-7."""
    net = SequenceNetwork(2, 3, 2, cell=cell, num_layers=layers, bidirectional=bidirectional,
                          loss="mse", sequence_output=True, seed=4, backend=backend_name(xp),
                          device=device, dtype="float64")
    x = put(rng.normal(size=(3, 4, 2)), xp.float64)
    target = put(rng.normal(size=(3, 4, 2)), xp.float64)
    steps = put(np.array([[True, True, True, True], [False, True, True, True],
                          [True, True, False, False]]))
    net.loss_and_grad(x, target, steps=steps)
    grads, params = net.gradients(), net.parameters()

    def f(**ps):
        net.load_parameters(ps)
        return net.loss_and_grad(x, target, steps=steps)[0]

    numeric = finite_difference_grads(f, params)
    for k in params:
        assert grad_check_error(grads[k], numeric[k]) < 1e-7, k


@pytest.mark.parametrize("cell", KINDS)
def test_estimators_train_every_cell(cell):
    """The classifier learns a toy problem with every registered cell (2 layers,
    bidirectional), and the regressor trains with it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 6, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    clf = RNNClassifier(cell=cell, num_layers=2, bidirectional=True, hidden_size=8, epochs=15,
                        batch_size=16, learning_rate=0.02, random_state=0).fit(X, y)
    assert clf.network_.recurrent.cell == cell
    assert clf.history_["loss"][-1] < 0.5 * clf.history_["loss"][0]
    assert clf.score(X, y) > 0.9
    reg = RNNRegressor(cell=cell, hidden_size=8, epochs=3, random_state=0).fit(X, X[:, -1, 0])
    assert reg.predict(X).shape == (128,)


# ------------------------------------------------------------------ estimators: layer options


def test_estimator_lstm_bidirectional_two_layers_save_numpy_load_torch(tmp_path):
    """A stacked bidirectional LSTM (with dropout and forget bias) saved from NumPy and loaded
    on torch predicts what the original predicts; the options travel in the file."""
    from rnnx.models import load_model, save_model

    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 7, 3))
    y = rng.normal(size=40)
    reg = RNNRegressor(cell="lstm", num_layers=2, bidirectional=True, dropout=0.3,
                       forget_bias=1.0, hidden_size=5, epochs=2, random_state=0).fit(X, y)
    assert sorted(k for k in reg.network_.parameters() if k.startswith("recurrent.l1_reverse"))
    path = tmp_path / "lstm.npz"
    save_model(reg, path)
    back = load_model(path, backend="torch")
    assert back.get_params() == {**reg.get_params(), "device": None}
    assert (back.network_.recurrent.num_layers, back.network_.recurrent.bidirectional,
            back.network_.recurrent.dropout) == (2, True, 0.3)
    got = back.predict(torch.from_numpy(X))
    assert isinstance(got, torch.Tensor)
    # float64 both sides: only the backends' summation order differs (~1e-15 relative).
    np.testing.assert_allclose(got.numpy(), reg.predict(X), rtol=1e-12, atol=1e-12)
    clf = RNNClassifier(cell="gru", num_layers=2, hidden_size=4, epochs=1, random_state=0)
    clf.fit(X, (y > 0).astype(int))
    save_model(clf, tmp_path / "gru.npz")
    np.testing.assert_allclose(load_model(tmp_path / "gru.npz").predict_proba(X),
                               clf.predict_proba(X), rtol=1e-12, atol=1e-12)


def test_estimator_dropout_trains_but_prediction_is_deterministic():
    """Dropout changes training (masks drawn while fitting), never prediction (eval mode)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(32, 5, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    kw = dict(cell="gru", num_layers=2, hidden_size=6, epochs=2, random_state=0)
    drop = RNNClassifier(dropout=0.5, **kw).fit(X, y)
    plain = RNNClassifier(dropout=0.0, **kw).fit(X, y)
    assert drop.history_["loss"] != plain.history_["loss"]
    p1, p2 = drop.predict_proba(X), drop.predict_proba(X)
    np.testing.assert_array_equal(p1, p2)
    assert drop.network_.recurrent.training  # the mode prediction borrowed is given back
    # Prediction equals the network's own forward in eval mode.
    drop.network_.recurrent.eval()
    from rnnx.losses import softmax

    np.testing.assert_allclose(softmax(drop.network_.forward(X)), p1, rtol=1e-14)


# ------------------------------------------------------------------ estimators: variable lengths


def _padded(seqs, time, side, rng):
    """Pad variable-length sequences ``[(len_i, F)]`` to ``(N, time, F)`` with finite garbage
    (never zeros, so padding that leaked would show) and return it with the step mask."""
    X = rng.normal(loc=3.0, scale=5.0, size=(len(seqs), time, seqs[0].shape[1]))
    mask = np.zeros((len(seqs), time), dtype=bool)
    for i, s in enumerate(seqs):
        sl = slice(0, len(s)) if side == "right" else slice(time - len(s), time)
        X[i, sl] = s
        mask[i, sl] = True
    return X, mask


@pytest.mark.parametrize("cell", KINDS)
@pytest.mark.parametrize("side", ["right", "left"])
def test_estimator_padded_batch_equals_unpadded_single_runs(cell, side):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(24, 6, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    clf = RNNClassifier(cell=cell, num_layers=2, bidirectional=True, hidden_size=5, epochs=1,
                        random_state=0).fit(X, y)
    lens = [1, 6, 3, 4]
    seqs = [rng.normal(size=(n, 2)) for n in lens]
    Xp, mask = _padded(seqs, 9, side, rng)
    got = clf.predict_proba(Xp, lengths=mask)
    if side == "right":  # integer lengths mean right padding
        np.testing.assert_array_equal(clf.predict_proba(Xp, lengths=np.array(lens)), got)
    alone = np.concatenate([clf.predict_proba(s[None]) for s in seqs])
    # float64: the masked loop and the plain loop do the same operations on valid steps;
    # only the hoisted input GEMM's row count differs (~1e-16 relative).
    np.testing.assert_allclose(got, alone, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sequence_output", [False, True])
def test_estimator_training_history_ignores_padding(sequence_output):
    """Padded inputs (and padded targets) never reach the loss: training on the same sequences
    padded with 2 or with 5 extra steps of garbage (and a validation split) gives the same
    loss history and the same predictions."""
    rng = np.random.default_rng(6)
    lens = rng.integers(1, 8, size=30)
    seqs = [rng.normal(size=(n, 2)) for n in lens]
    runs = []
    for extra in (2, 5):
        X, mask = _padded(seqs, 7 + extra, "right", np.random.default_rng(extra))
        if sequence_output:
            y = np.where(mask, X[:, :, 0] * 0.5, rng.normal(size=mask.shape) * 100.0)
        else:
            y = np.array([s[:, 0].sum() for s in seqs])
        reg = RNNRegressor(cell="lstm", hidden_size=4, epochs=3, batch_size=8,
                           validation_fraction=0.2, sequence_output=sequence_output,
                           random_state=0)
        reg.fit(X, y, lengths=lens)
        pred = reg.predict(X, lengths=lens)
        runs.append((reg.history_, pred[:, :7] if sequence_output else pred))
    (h2, p2), (h5, p5) = runs
    assert set(h2) == {"loss", "val_loss"}
    if sequence_output:
        # Identical to rounding (measured: 1 ulp): the masked many-to-many MSE sums 2 or 5
        # padded zeros per sample, and NumPy's pairwise summation groups them differently.
        np.testing.assert_allclose(h2["loss"], h5["loss"], rtol=1e-13)
        np.testing.assert_allclose(h2["val_loss"], h5["val_loss"], rtol=1e-13)
        m = np.arange(7)[None, :] < lens[:, None]
        np.testing.assert_allclose(p2[m], p5[m], rtol=1e-10, atol=1e-12)
    else:
        # Bit for bit: padded steps contribute exact zeros and nothing sums over time.
        assert h2 == h5
        np.testing.assert_array_equal(p2, p5)
    # Without lengths the garbage does reach the loss: the property can fail.
    X, _ = _padded(seqs, 9, "right", np.random.default_rng(2))
    if not sequence_output:
        plain = RNNRegressor(cell="lstm", hidden_size=4, epochs=3, batch_size=8,
                             validation_fraction=0.2, random_state=0).fit(X, y)
        assert not np.allclose(plain.history_["loss"], h2["loss"], rtol=1e-3)


def test_estimator_lengths_partial_fit_and_score():
    rng = np.random.default_rng(7)
    lens = rng.integers(2, 6, size=20)
    seqs = [rng.normal(size=(n, 1)) for n in lens]
    X, mask = _padded(seqs, 6, "left", rng)
    y = np.array([int(s.sum() > 0) for s in seqs])
    a = RNNClassifier(hidden_size=4, random_state=0).partial_fit(X, y, classes=[0, 1],
                                                                  lengths=mask)
    b = RNNClassifier(hidden_size=4, epochs=1, random_state=0).fit(X, y, lengths=mask)
    np.testing.assert_array_equal(a.predict_proba(X, lengths=mask), b.predict_proba(X, lengths=mask))
    assert a.score(X, y, lengths=mask) == float(np.mean(a.predict(X, lengths=mask) == y))
    reg = RNNRegressor(hidden_size=4, epochs=2, sequence_output=True, random_state=0)
    yt = np.where(mask, X[:, :, 0], 1e3)  # padded targets are wild: only valid steps may count
    reg.fit(X, yt, lengths=mask)
    pred = reg.predict(X, lengths=mask)
    r2 = 1 - ((yt[mask] - pred[mask]) ** 2).sum() / ((yt[mask] - yt[mask].mean()) ** 2).sum()
    assert reg.score(X, yt, lengths=mask) == pytest.approx(r2, rel=1e-12)


def test_estimator_grad_norms_equal_torch_autograd():
    """``estimator_grad_norms`` of a fitted GRU regressor equals ||dL/dh_t|| from torch
    autograd over the same model unrolled with ``GRUCell`` (every h_t kept with retain_grad)."""
    from rnnx.diagnostics import estimator_grad_norms

    rng = np.random.default_rng(8)
    X = rng.normal(size=(12, 9, 2))
    y = X[:, :3, 0].sum(axis=1)
    reg = RNNRegressor(cell="gru", hidden_size=5, epochs=2, random_state=0).fit(X, y)
    got = to_numpy(estimator_grad_norms(reg, X, y)["l0"])
    gru = to_torch(reg.network_.recurrent)
    cell = torch.nn.GRUCell(2, 5, dtype=torch.float64)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(gru, f"{name}_l0"))
    w, c = (torch.from_numpy(to_numpy(reg.network_.dense.params[k])) for k in ("w", "b"))
    z = torch.from_numpy((y - reg._y_mean[0]) / reg._y_scale[0])[:, None]  # (N, 1)
    h, hs = torch.zeros(12, 5, dtype=torch.float64), []
    for t in range(9):
        h = cell(torch.from_numpy(X[:, t]), h)
        h.retain_grad()
        hs.append(h)
    torch.nn.functional.mse_loss(h @ w + c, z).backward()
    want = np.array([float(torch.linalg.vector_norm(s.grad)) for s in hs])
    assert want[0] < 0.5 * want[-1]  # a real decay over 9 steps, not a flat line
    np.testing.assert_allclose(got, want, rtol=1e-10)  # float64 on both sides


def test_estimator_lengths_follow_the_data_namespace():
    """torch X with torch lengths (and NumPy lengths) trains and predicts as NumPy does."""
    rng = np.random.default_rng(9)
    lens = rng.integers(1, 6, size=16)
    X = rng.normal(size=(16, 6, 2))
    y = (X[:, 0, 0] > 0).astype(np.int64)
    kw = dict(cell="gru", hidden_size=4, epochs=2, batch_size=8, random_state=0)
    ref = RNNClassifier(**kw).fit(X, y, lengths=lens).predict_proba(X, lengths=lens)
    tX, tl = torch.from_numpy(X), torch.from_numpy(lens)
    clf = RNNClassifier(**kw).fit(tX, torch.from_numpy(y), lengths=tl)
    got = clf.predict_proba(tX, lengths=tl)
    assert isinstance(got, torch.Tensor)
    # float64; the backends' GEMMs may sum in different orders (~1e-16 per op, 2 epochs).
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(clf.predict_proba(tX, lengths=lens).numpy(), got.numpy())
    with pytest.raises(ValueError, match="lengths leave no valid step"):
        RNNRegressor(sequence_output=True, epochs=1).fit(X, X[:, :, 0],
                                                         lengths=np.zeros(16, int))
