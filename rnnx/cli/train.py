"""``rnnx train``: train an estimator on an embedded data set, print its held-out score, and
optionally save it (``--save``), plot it (``--plot``, ``--grad-plot``: :mod:`rnnx.cli._plots`) or
train it data-parallel on dask (``--workers``, ``--scheduler``: :mod:`rnnx.cli._dask`)."""

from __future__ import annotations

import time
from typing import Any

import click
import numpy as np

from .._backend import limit_threads
from ..datasets import DATASETS
from ..functional.registry import CELLS
from ..models._errors import TrainingDivergedError
from ._common import Float, Int, check_backend, check_output, finite, resolve_device
from ._dask import check_dask_options, dask_arrays, dask_cluster
from ._plots import check_figure_path, plot_history, plot_state_grads

__all__ = ["train"]


_REGRESSION_DATASETS = ("adding",)


def _split(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(test_size * n)), n - 1)  # one sequence on each side at least
    return perm[n_test:], perm[:n_test]


@click.command()
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), default="digits", show_default=True,
              help="Data set: digits (8x8 images row by row), parity, sine (classification) "
                   "or adding (regression).")
@click.option("--cell", default="rnn", show_default=True,
              help="Recurrent cell: " + "; ".join(f"{n} ({c.summary})" for n, c in CELLS.items())
                   + " (or one registered with rnnx.functional.registry.register_cell).")
@click.option("--hidden-size", type=Int(min=1), default=64, show_default=True)
@click.option("--num-layers", type=Int(min=1), default=1, show_default=True,
              help="Stacked recurrent layers.")
@click.option("--bidirectional/--no-bidirectional", default=False, show_default=True,
              help="Run every layer forward and backward in time.")
@click.option("--dropout", type=Float(0, 1, max_open=True), default=0.0,
              show_default=True, callback=finite,
              help="Dropout between stacked layers while training (off when predicting).")
@click.option("--epochs", type=Int(min=1), default=40, show_default=True)
@click.option("--batch-size", type=Int(min=1), default=32, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "momentum", "adagrad", "rmsprop", "adam"]),
              default="adam", show_default=True)
@click.option("--lr", type=Float(min=0, min_open=True), default=0.005, show_default=True,
              callback=finite,
              help="Learning rate.")
@click.option("--clip", type=Float(min=0), default=5.0, show_default=True,
              callback=finite,
              help="Global gradient-norm bound; 0 turns clipping off.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the split, the initial weights and the shuffling.")
@click.option("--backend", default="numpy", show_default=True,
              help="numpy, torch, cupy, array_api_strict or jax (see `rnnx info`).")
@click.option("--device", "device_label", default=None,
              help="Device of the backend (e.g. cuda, device1); default: its default device.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True)
@click.option("--test-size", type=Float(0, 1, min_open=True, max_open=True),
              callback=finite,
              default=0.2, show_default=True, help="Held-out share of the data.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write loss/accuracy curves to this PNG (needs matplotlib: rnnx[plot]).")
@click.option("--grad-plot", "grad_plot_path", type=click.Path(dir_okay=False, writable=True),
              default=None,
              help="Write the trained model's ||dL/dh_t|| per step on a held-out batch to this PNG "
                   "(the vanishing-gradient picture; needs matplotlib).")
@click.option("--save", "save_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the trained model (.npz + JSON metadata, no pickle).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar (tqdm, on stderr).")
@click.option("--threads", type=Int(min=0), default=1, show_default=True,
              help="CPU threads for BLAS, OpenMP and torch (0: the libraries' default, no cap), "
                   "set through threadpoolctl and printed on the `threads` line. Small "
                   "recurrent matrices gain nothing from more; on a busy machine they slow down.")
@click.option("--workers", type=Int(min=1), default=None,
              help="Train data-parallel on a local dask cluster of this many worker processes "
                   "(started and closed by the command; needs rnnx[dask]). The result equals "
                   "the one-process fit.")
@click.option("--scheduler", "scheduler_address", default=None, metavar="ADDRESS",
              help="Train data-parallel on the existing dask.distributed cluster of this "
                   "scheduler (e.g. tcp://host:8786; needs rnnx[dask]).")
def train(dataset: str, cell: str, hidden_size: int, num_layers: int, bidirectional: bool,
          dropout: float, epochs: int, batch_size: int, optimizer: str, lr: float, clip: float,
          seed: int, backend: str, device_label: str | None, dtype: str, test_size: float,
          plot_path: str | None, grad_plot_path: str | None, save_path: str | None,
          progress: bool, threads: int, workers: int | None,
          scheduler_address: str | None) -> None:
    """Train a recurrent model and print its held-out score.

    With no options: the Elman classifier (ScratchSimpleRNNClassifier) on the handwritten digits
    read row by row (8 steps x 8 features), 20 % held out.
    """
    from ..models import RNNClassifier, RNNRegressor, ScratchSimpleRNNClassifier, save_model
    from ..models._progress import EpochBar, compact

    # Everything that could fail after training is checked here, before it.
    if cell not in CELLS:
        raise click.BadParameter(f"{cell!r} is not a cell; know {', '.join(sorted(CELLS))}",
                                 param_hint="--cell")
    if dropout and num_layers == 1:
        raise click.BadParameter(
            f"--dropout {dropout:g} acts between stacked layers (after all but the last), so it "
            "needs --num-layers 2 or more; with one layer it would change nothing",
            param_hint="--dropout")
    on_dask = check_dask_options(workers, scheduler_address, backend, device_label)
    check_backend(backend)
    dev = resolve_device(backend, device_label)
    for option, path in (("--plot", plot_path), ("--grad-plot", grad_plot_path)):
        if path:
            check_figure_path(path, option)
    if save_path:
        check_output(save_path, "--save")
    X, y = DATASETS[dataset](seed=seed)
    tr, te = _split(X.shape[0], test_size, seed)
    regression = dataset in _REGRESSION_DATASETS
    if not regression:
        _check_split(y, tr, te, test_size)
    common = dict(hidden_size=hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                  dropout=dropout, epochs=epochs, batch_size=batch_size,
                  optimizer=optimizer, learning_rate=lr, clip_norm=clip or None,
                  random_state=seed, backend=None if on_dask else backend,
                  device=None if on_dask else dev, dtype=dtype)
    if regression:
        model = RNNRegressor(cell=cell, **common)
    elif cell == ScratchSimpleRNNClassifier().cell:  # the seed's classifier, by its own name
        model = ScratchSimpleRNNClassifier(**common)
    else:
        model = RNNClassifier(cell=cell, **common)
    classes = np.unique(y) if not regression else None
    click.echo(f"data    {dataset}: {X.shape[0]} sequences of {X.shape[1]} steps x {X.shape[2]} "
               f"features, " + (f"{classes.size} classes" if classes is not None else "regression")
               + f"; train {tr.size}, held out {te.size}")
    dev_name = "default device" if dev is None else str(dev)
    layers = "" if num_layers == 1 else f", num_layers={num_layers}"
    layers += ", bidirectional" if bidirectional else ""
    layers += f", dropout={dropout:g}" if dropout else ""
    click.echo(f"model   {type(model).__name__}(cell={cell}, hidden_size={hidden_size}{layers}), "
               f"{optimizer} lr={lr:g}, batch {batch_size}, clip {clip or 'off'}; "
               f"{backend} ({dev_name}) {dtype}")
    X_te, y_te = X[te], y[te]
    # One unit per curve: a regressor trains on standardised targets, so its training loss is
    # mapped back to the targets' units (x scale**2): MSE, like the held-out figure.
    history_test: dict[str, list[float]] = {"test_loss": [], "test_accuracy": []}

    def held_out(history: dict) -> dict[str, str]:
        if regression:
            pred = np.asarray(model.predict(X_te), dtype=np.float64)
            history_test["test_loss"].append(float(np.mean((pred - y_te) ** 2)))
            return {"loss": compact(_raw_loss(model, history["loss"][-1:])[0]),
                    "held-out MSE": compact(history_test["test_loss"][-1])}
        proba = np.asarray(model.predict_proba(X_te), dtype=np.float64)
        idx = np.searchsorted(model.classes_, y_te)
        history_test["test_loss"].append(
            float(-np.mean(np.log(np.clip(proba[np.arange(idx.size), idx], 1e-300, None)))))
        history_test["test_accuracy"].append(float(np.mean(proba.argmax(1) == idx)))
        return {"held-out acc": f"{history_test['test_accuracy'][-1]:.3f}"}

    bar = EpochBar(epochs, enabled=progress, extra=held_out if (progress or plot_path) else None)
    on_epoch = bar if (progress or plot_path) else None

    with limit_threads(threads or None) as cap:
        # dask's nannies start their workers with one BLAS/OpenMP thread each, whatever this is
        click.echo(f"threads {cap.describe()}"
                   + ("; on this process only (dask starts each worker with 1 thread)"
                      if on_dask else ""))
        if threads and not cap.applied:
            click.echo(f"warning: --threads {threads} did not cap the BLAS threads: {cap.reason}. "
                       "Small recurrent matrices may train several times slower on a busy "
                       "machine.", err=True)
        try:
            with dask_cluster(workers, scheduler_address) as client:
                start = time.perf_counter()  # the training only, not a cluster's start
                if client is None:
                    model.fit(X[tr], y[tr], callback=on_epoch, progress=False)
                else:  # data-parallel: one chunk of the training rows per worker
                    Xd, yd = dask_arrays(X[tr], y[tr], len(client.scheduler_info()["workers"]))
                    model.fit(Xd, yd, callback=on_epoch, progress=False)
        except TrainingDivergedError as exc:
            raise FloatingPointError(_diverged_message(exc, model, lr, clip)) from None
        finally:
            bar.close()
    seconds = time.perf_counter() - start
    train_loss = _raw_loss(model, model.history_["loss"])
    loss_name = "MSE" if regression else "loss (cross-entropy)"
    click.echo(f"trained {model.n_epochs_} epochs in {seconds:.1f} s; final training "
               f"{loss_name} {compact(train_loss[-1])}")
    if regression:
        pred = np.asarray(model.predict(X_te), dtype=np.float64)
        click.echo(f"held-out MSE: {compact(float(np.mean((pred - y_te) ** 2)))}  "
                   f"(R^2 {model.score(X_te, y_te):.4f}; predicting the mean: MSE "
                   f"{compact(float(np.var(y_te)))})")
    else:
        click.echo(f"held-out accuracy: {model.score(X_te, y_te):.4f} ({te.size} sequences)")
    if save_path:
        save_model(model, save_path)
        click.echo(f"saved model to {save_path}")
    if plot_path:
        history = {**model.history_, "loss": train_loss,
                   **{k: v for k, v in history_test.items() if v}}
        plot_history(history, plot_path, f"rnnx train --dataset {dataset} (cell={cell}, {backend} {dtype})",
              loss_label="MSE (target units)" if regression else "cross-entropy loss")
        click.echo(f"wrote curves to {plot_path}")
    if grad_plot_path:
        plot_state_grads(model, X_te[:batch_size], y_te[:batch_size], grad_plot_path,
                   f"rnnx train --dataset {dataset} (cell={cell}): {min(batch_size, te.size)} "
                   "held-out sequences")
        click.echo(f"wrote gradient norms to {grad_plot_path}")


def _raw_loss(model: Any, losses: list[float]) -> list[float]:
    """A regressor's per-epoch training losses in the targets' units: it trains on standardised
    targets, so its MSE is the raw one divided by scale**2 (averaged over outputs)."""
    if not hasattr(model, "_y_scale"):
        return list(losses)
    factor = float(np.mean(np.asarray(model._y_scale, dtype=np.float64) ** 2))
    return [v * factor for v in losses]


def _diverged_message(exc: Any, model: Any, lr: float, clip: float) -> str:
    """The divergence error in the command line's terms (--lr, --clip), not the estimator's."""
    from ..models._progress import compact

    kept = ("its initial weights" if model.n_epochs_ == 0 else
            f"the weights after epoch {model.n_epochs_}, the last finite one")
    how = ("turn on gradient clipping (--clip 0 turns it off now; try --clip 1)" if not clip
           else f"clip harder (--clip {clip:g} now; try --clip {clip / 5:g})")
    return (f"training diverged in epoch {exc.epoch}: the mean training loss is "
            f"{compact(exc.loss)}. Lower --lr ({lr:g} now; try --lr {lr / 10:g}) or {how}. "
            f"Nothing was saved or plotted (the model had kept {kept})")


def _check_split(y: np.ndarray, tr: np.ndarray, te: np.ndarray, test_size: float) -> None:
    """Every class must be in the training part (a held-out label the model never saw cannot be
    scored) and in the held-out part (else its accuracy is not measured)."""
    classes = np.unique(y)
    for part, idx in (("training", tr), ("held-out", te)):
        missing = np.setdiff1d(classes, np.unique(y[idx]))
        if missing.size:
            raise click.BadParameter(
                f"{test_size:g} holds out {te.size} of {y.size} sequences, leaving the "
                f"{part} part ({idx.size}) without class(es) {missing.tolist()[:5]} of "
                f"{classes.size}: choose a share that keeps every class on both sides",
                param_hint="--test-size")
