"""The captured executor (rnnx._backend._capture): torch on CUDA replays one CUDA graph of the
estimators' training step per mini-batch. On a GPU: a captured fit equals the same step run
eagerly batch after batch bit for bit (the same kernels), nothing fell back, a replayed epoch
synchronises with the host as often whatever the number of batches, and the fit agrees with the
plain eager trainer to rounding. On any machine: the scan's contract, through its eager path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rnnx._backend import _executors as executors
from rnnx._backend import epoch_executor, forced_executor
from rnnx._backend._capture import Captured
from rnnx.models import RNNClassifier, RNNRegressor
from rnnx.testing import assert_close, assert_equal
from tests.conftest import _resolve

torch = pytest.importorskip("torch")


def _data(rng, n=50, t=6, f=3):
    return rng.normal(size=(n, t, f)), rng.integers(0, 3, size=n), rng.integers(1, t + 1, size=n)


def _fit(cell, X, y, lengths, **kw):
    return RNNClassifier(cell=cell, hidden_size=8, num_layers=2, dropout=0.25, epochs=3,
                         batch_size=16, random_state=0, dtype="float32", **kw).fit(
        X, y, lengths=lengths)


def test_the_scan_contract_through_the_eager_path():
    """``scan(body, carry, xs)``: the carry after every step and the per-step outputs stacked,
    as ``jax.lax.scan`` gives them (the path a step that cannot be captured takes)."""
    runner = Captured(capture=False)

    def body(carry, x):
        total, count = carry
        return (total + x["v"], count + 1), (total * 2, {"seen": x["v"]})

    xs = {"v": torch.arange(5, dtype=torch.float64)}
    (total, count), (doubled, seen) = runner.scan(body, (torch.tensor(0.0, dtype=torch.float64),
                                                          torch.tensor(0)), xs)
    assert float(total) == 10.0 and int(count) == 5
    assert doubled.tolist() == [0.0, 0.0, 2.0, 6.0, 12.0] and seen["seen"].tolist() == [0, 1, 2, 3, 4]


def test_the_captured_runner_is_torch_cudas_and_can_be_turned_off(monkeypatch):
    assert epoch_executor(torch, torch.device("cpu")) is None
    monkeypatch.setattr(executors, "_GPU", {})
    assert epoch_executor(torch, torch.device("cuda", 0)).name == "captured"
    monkeypatch.setenv("RNNX_GPU_EXECUTOR", "eager")
    assert epoch_executor(torch, torch.device("cuda", 0)) is None
    monkeypatch.setenv("RNNX_GPU_EXECUTOR", "graphs")
    with pytest.raises(ValueError, match=r"RNNX_GPU_EXECUTOR must be 'eager'.*got 'graphs'"):
        epoch_executor(torch, torch.device("cuda", 0))


def test_a_step_run_eagerly_by_the_captured_runner_trains_as_the_trainer_does():
    """On torch CPU the captured runner's eager path (what a step that cannot be captured
    runs) trains to the plain trainer's weights within float32 rounding of a few epochs (the
    last mini-batch is padded there, masked out of the loss)."""
    rng = np.random.default_rng(3)
    X, y, lengths = _data(rng)
    Xt, yt, lt = torch.asarray(X, dtype=torch.float32), torch.asarray(y), torch.asarray(lengths)
    eager = _fit("lstm", Xt, yt, lt)
    with forced_executor("captured") as runner:
        captured = _fit("lstm", Xt, yt, lt)
    assert runner.replays == 0 or runner.fallbacks  # no CUDA here: nothing was replayed
    for k, v in eager.network_.parameters().items():
        assert_close(captured.network_.parameters()[k], v, rtol=2e-5, err_msg=k)


@pytest.fixture
def cuda():
    _resolve("torch", "cuda")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "gru_reset_before", "ln_lstm"])
def test_a_captured_fit_equals_its_steps_run_one_by_one(cuda, monkeypatch, cell):
    rng = np.random.default_rng(5)
    X, y, lengths = (torch.asarray(a, device="cuda") for a in _data(rng))
    X = X.to(torch.float32)
    monkeypatch.setattr(executors, "_GPU", {"captured": Captured(capture=False)})
    one_by_one = _fit(cell, X, y, lengths)
    runner = Captured()
    monkeypatch.setattr(executors, "_GPU", {"captured": runner})
    captured = _fit(cell, X, y, lengths)
    assert runner.fallbacks == {} and runner.captures >= 1 and runner.replays >= 9
    for k, v in one_by_one.network_.parameters().items():
        assert_equal(captured.network_.parameters()[k], v, err_msg=k)
    assert captured.history_["loss"] == one_by_one.history_["loss"]
    monkeypatch.setenv("RNNX_GPU_EXECUTOR", "eager")  # the plain trainer: to rounding
    monkeypatch.setattr(executors, "_GPU", {})
    eager = _fit(cell, X, y, lengths)
    for k, v in eager.network_.parameters().items():
        assert_close(captured.network_.parameters()[k], v, rtol=2e-4, err_msg=k)


def test_a_captured_regressor_with_a_step_mask_and_partial_fit(cuda, monkeypatch):
    rng = np.random.default_rng(6)
    X = torch.asarray(rng.normal(size=(40, 5, 2)), device="cuda", dtype=torch.float32)
    Y = torch.asarray(rng.normal(size=(40, 5, 1)), device="cuda", dtype=torch.float32)
    runner = Captured()
    monkeypatch.setattr(executors, "_GPU", {"captured": runner})
    reg = RNNRegressor(cell="gru", hidden_size=6, batch_size=16, random_state=0, dtype="float32",
                       sequence_output=True)
    for _ in range(3):
        reg.partial_fit(X, Y)
    assert runner.fallbacks == {} and runner.captures == 1 and reg.n_epochs_ == 3
    assert np.isfinite(reg.history_["loss"]).all()


def test_replayed_epochs_do_not_synchronise_per_batch(cuda, monkeypatch):
    rng = np.random.default_rng(8)
    X, y, lengths = (torch.asarray(a, device="cuda") for a in _data(rng, n=64))
    X = X.to(torch.float32)
    runner = Captured()
    monkeypatch.setattr(executors, "_GPU", {"captured": runner})

    def syncs(batch_size):
        est = RNNClassifier(cell="lstm", hidden_size=8, epochs=2, batch_size=batch_size,
                            random_state=0, dtype="float32")
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                est.fit(X, y, lengths=lengths)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in seen)

    syncs(32), syncs(8)  # the first captures of each shape (and their warm-ups) are one-offs
    few, many = syncs(32), syncs(8)
    assert runner.fallbacks == {}
    assert many == few, f"{few} synchronisations with 2 batches an epoch, {many} with 8"
