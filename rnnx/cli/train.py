"""``rnnx train``: train an estimator on an embedded data set, print its held-out score, and
optionally save it (``--save``), plot it (``--plot``, ``--grad-plot``: :mod:`rnnx.cli._plots`) or
train it data-parallel on dask (``--workers``, ``--scheduler``: :mod:`rnnx.cli._dask`).

The estimator's hyper-parameters are options whose values the estimators' own table checks and
whose defaults are the estimators' (:class:`~rnnx.cli._common.Hyper`); they reach the estimator
as they were parsed, under their own names."""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from typing import Any

import click
import numpy as np
from click.core import ParameterSource

from .._backend import device_label, first_use_note, limit_threads
from ..datasets import DATASETS
from ..functional.registry import CELLS
from ..models import (
    RNNClassifier,
    RNNRegressor,
    ScratchSimpleRNNClassifier,
    TrainingDivergedError,
    save_model,
)
from ..models._constraints import PARAMETER_CONSTRAINTS, StrOptions, expected
from ..models._progress import EpochBar, compact
from ._common import Float, Hyper, Int, check_backend, check_output, finite, resolve_device
from ._dask import (
    check_dask_options,
    dask_arrays,
    dask_cluster,
    small_data_warning,
    step_seconds,
)
from ._held_out import HeldOut
from ._plots import check_figure_path, plot_history, plot_state_grads
from ._verdict import NOT_LEARNED

__all__ = ["train"]

_REGRESSION_DATASETS = ("adding",)
#: The estimators' defaults, read off their signature (the one place they are written).
_DEFAULTS = {n: p.default for n, p in inspect.signature(RNNClassifier).parameters.items()}


#: Where ``rnnx train``'s default differs from the estimators' for one data set, and why (the
#: help shows them): at the estimators' lr 0.005 the Elman network's loss on the 40-step sine
#: waves jumps between 1e-2 and 1 late in training and the last epoch scored 0.30-1.00 held
#: out over seeds 0-9 (float32 and float64); at lr 0.001 it scored 0.975-1.000 on every one
#: (docs/training.md, "The data sets").
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {"sine": {"learning_rate": 0.001}}


def _hyper(flag: str, param: str, *, help: str = "") -> Callable:
    """The option of estimator hyper-parameter ``param``: checked by the estimators' table, with
    the estimators' default (or a data set's, :data:`DATASET_DEFAULTS`, resolved once the data
    set is known); the help says what the table accepts."""
    if not any(isinstance(c, StrOptions) for c in PARAMETER_CONSTRAINTS[param]):  # choices
        what = expected(param, none=None)
        help = f"{help} Must be {what}." if help else f"Must be {what}."
    special = {d: v[param] for d, v in DATASET_DEFAULTS.items() if param in v}
    if special:
        shown = f"{_DEFAULTS[param]}; " + "; ".join(f"{v} for --dataset {d}"
                                                    for d, v in special.items())
        return click.option(flag, param, type=Hyper(param), default=None, show_default=shown,
                            help=help)
    return click.option(flag, param, type=Hyper(param), default=_DEFAULTS[param],
                        show_default=True, help=help)


@click.command()
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), default="digits", show_default=True,
              help="Data set: digits (8x8 images row by row), parity, sine (classification) "
                   "or adding (regression).")
@_hyper("--cell", "cell",
        help="Recurrent cell: " + "; ".join(f"{n} ({c.summary})" for n, c in CELLS.items())
             + " (or one registered with rnnx.functional.registry.register_cell).")
@_hyper("--hidden-size", "hidden_size")
@_hyper("--num-layers", "num_layers", help="Stacked recurrent layers.")
@click.option("--bidirectional/--no-bidirectional", default=_DEFAULTS["bidirectional"],
              show_default=True, help="Run every layer forward and backward in time.")
@_hyper("--dropout", "dropout", help="Off when predicting.")
@_hyper("--epochs", "epochs")
@_hyper("--batch-size", "batch_size")
@_hyper("--optimizer", "optimizer")
@_hyper("--lr", "learning_rate", help="Learning rate.")
@_hyper("--clip", "clip_norm", help="Global gradient-norm bound (clip_norm=).")
@click.option("--early-stopping", is_flag=True, default=False,
              help="Stop once the validation loss has not improved for --patience epochs, and "
                   "keep the weights of its best epoch (the estimators' early_stopping=True).")
@_hyper("--patience", "n_iter_no_change",
        help="Epochs without a better validation loss before --early-stopping stops "
             "(n_iter_no_change=).")
@click.option("--restore-best", is_flag=True, default=False,
              help="Train every epoch, then keep the weights of the one with the lowest "
                   "validation loss (Keras's restore_best_weights).")
@_hyper("--validation-fraction", "validation_fraction",
        help="Share of the training part held out to choose the epoch (never the held-out "
             "part, which only scores); 0.1 with --early-stopping or --restore-best unless "
             "given.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the synthetic data sets (their random_state=), the split, the initial "
                   "weights and the shuffling.")
@click.option("--backend", default="numpy", show_default=True,
              help="numpy, torch, cupy, array_api_strict or jax (see `rnnx info`).")
@click.option("--device", "device_name", default=None,
              help="Device of the backend (e.g. cuda, device1); default: its default device.")
# float32 unless told otherwise: the estimators' None would keep the data sets' float64.
@click.option("--dtype", "dtype", type=Hyper("dtype"), default="float32", show_default=True,
              metavar="[float32|float64]")
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
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (tqdm, on stderr). Default: only when stderr is a "
                   "terminal, so logs and CI never get its carriage returns.")
@click.option("--log-epochs", is_flag=True, default=False,
              help="Write one line per epoch to stderr (losses, accuracies, held-out figure, "
                   "time): a record for logs, kept above the bar in a terminal.")
@click.option("--threads", type=Int(min=0), default=1, show_default=True,
              help="CPU threads for BLAS, OpenMP and torch (0: the libraries' default, no cap), "
                   "set through threadpoolctl and printed on the `threads` line. Small "
                   "recurrent matrices gain nothing from more; on a busy machine they slow down.")
@click.option("--workers", type=Int(min=1), default=None,
              help="Train data-parallel on a local dask cluster of this many worker processes "
                   "(started and closed by the command; needs rnnx[dask]). The steps are the "
                   "one-process fit's up to the order of floating-point sums: in float64 the "
                   "results agree to rounding; in float32 training amplifies the rounding over "
                   "the epochs, so scores can differ in their last digits. Pays only for large "
                   "batches or models: a warning says when it cannot.")
@click.option("--scheduler", "scheduler_address", default=None, metavar="ADDRESS",
              help="Train data-parallel on the existing dask.distributed cluster of this "
                   "scheduler (e.g. tcp://host:8786; needs rnnx[dask]).")
def train(dataset: str, seed: int, backend: str, device_name: str | None, test_size: float,
          plot_path: str | None, grad_plot_path: str | None, save_path: str | None,
          progress: bool | None, log_epochs: bool, threads: int, workers: int | None,
          scheduler_address: str | None, early_stopping: bool, restore_best: bool,
          **hyper: Any) -> None:
    """Train a recurrent model and print its held-out score.

    With no options: the Elman classifier (ScratchSimpleRNNClassifier) on the handwritten digits
    read row by row (8 steps x 8 features), 20 % held out.

    Exit status: 0 trained and learned; 2 a bad option or file, or training diverged (nothing
    saved); 3 trained to the end but did no better than knowing nothing (a warning line on
    stderr says so in figures and what to try; the results are still printed, saved and
    plotted); 130 interrupted (Ctrl-C; with --save, the model of the last completed epoch is
    saved first).
    """
    # Everything that could fail after training is checked here, before it.
    if hyper["dropout"] and hyper["num_layers"] == 1:
        raise click.BadParameter(
            f"--dropout {hyper['dropout']:g} acts between stacked layers (after all but the "
            "last), so it needs --num-layers 2 or more; with one layer it would change nothing",
            param_hint="--dropout")
    for param, default in _DEFAULTS.items():  # the options left to a data set's default
        if param in hyper and hyper[param] is None and any(param in v for v in
                                                           DATASET_DEFAULTS.values()):
            hyper[param] = DATASET_DEFAULTS.get(dataset, {}).get(param, default)
    _epoch_selection(hyper, early_stopping, restore_best)
    on_dask = check_dask_options(workers, scheduler_address, backend, device_name)
    check_backend(backend)
    dev = resolve_device(backend, device_name)
    for option, path in (("--plot", plot_path), ("--grad-plot", grad_plot_path)):
        if path:
            check_figure_path(path, option)
    if save_path:
        check_output(save_path, "--save")
    X, y = DATASETS[dataset](random_state=seed)
    tr, te = _split(X.shape[0], test_size, seed)
    regression = dataset in _REGRESSION_DATASETS
    if not regression:
        _check_split(y, tr, te, test_size)
    model = _estimator(regression, hyper, random_state=seed,
                       backend=None if on_dask else backend, device=None if on_dask else dev)
    click.echo(f"data    {dataset}: {X.shape[0]} sequences of {X.shape[1]} steps x {X.shape[2]} "
               "features, " + ("regression" if regression else f"{np.unique(y).size} classes")
               + f"; train {tr.size}{_validation_note(hyper, tr.size)}, held out {te.size}")
    click.echo(f"model   {_describe(model, hyper)}; {backend} "
               f"({'default device' if dev is None else device_label(dev)}) {hyper['dtype']}")
    if note := first_use_note(backend):
        click.echo(note)
    held = HeldOut(model, X[te], y[te], regression)
    bar = None
    with limit_threads(threads or None) as cap:
        # dask's nannies start their workers with one BLAS/OpenMP thread each, whatever this is
        click.echo(f"threads {cap.describe()}"
                   + ("; on this process only (dask starts each worker with 1 thread)"
                      if on_dask else ""))
        if threads and not cap.applied:
            click.echo(f"warning: --threads {threads} did not cap the BLAS threads: {cap.reason}. "
                       "Small recurrent matrices may train several times slower on a busy "
                       "machine.", err=True)
        # One step timed in this process, before a local cluster's workers compete for the CPU.
        step = step_seconds(model, X[tr], y[tr]) if on_dask else 0.0
        try:
            with dask_cluster(workers, scheduler_address) as client:
                start = time.perf_counter()  # the training only, not a cluster's start
                Xt, yt = X[tr], y[tr]
                if client is not None:  # data-parallel: one chunk of the training rows per worker
                    n_workers = len(client.scheduler_info()["workers"])
                    if slow := small_data_warning(step, model, Xt.shape[0], n_workers):
                        click.echo(f"warning: {slow}", err=True)
                    Xt, yt = dask_arrays(Xt, yt, n_workers)
                # The bar starts after the header's last line: its first frame would otherwise
                # share a line with it on a terminal.
                bar = EpochBar(hyper["epochs"], enabled=progress, lines=log_epochs, extra=held)
                watch = plot_path or log_epochs or not bar.disabled  # else skip held-out scoring
                model.fit(Xt, yt, callback=bar if watch else None, progress=False)
        except TrainingDivergedError as exc:
            raise FloatingPointError(_diverged_message(exc, model, hyper)) from None
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()  # before the message, so that it does not land on the bar
            if save_path:
                _save_interrupted(model, save_path, hyper)
            raise
        finally:
            if bar is not None:
                bar.close()
    seconds = time.perf_counter() - start
    train_loss = held.raw_loss(model.history_["loss"])
    stopped = (f", stopped early (no lower validation loss in {hyper['n_iter_no_change']} "
               "epochs)" if model.n_epochs_ < hyper["epochs"] else "")
    click.echo(f"trained {model.n_epochs_} epochs in {seconds:.1f} s{stopped}; final training "
               f"{'MSE' if regression else 'loss (cross-entropy)'} {compact(train_loss[-1])}")
    if model.best_epoch_ is not None:
        k = model.best_epoch_
        val = held.raw_loss(model.history_["val_loss"])[k - 1]
        click.echo(f"kept    the weights of epoch {k}, the lowest validation "
                   f"{'MSE' if regression else 'loss'} ({compact(val)}); training "
                   f"{'MSE' if regression else 'loss'} then {compact(train_loss[k - 1])}")
    click.echo(held.summary())
    kept = model.best_epoch_ or model.n_epochs_
    warning = held.verdict(model.history_["loss"][kept - 1], y[tr], hyper)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if save_path:
        save_model(model, save_path)
        click.echo(f"saved model to {save_path}")
    where = f"rnnx train --dataset {dataset} (cell={hyper['cell']}"
    if plot_path:
        history = {**model.history_, "loss": train_loss, **held.history()}
        if "val_loss" in history:
            history["val_loss"] = held.raw_loss(history["val_loss"])
        plot_history(history, plot_path, f"{where}, {backend} {hyper['dtype']})",
                     loss_label="MSE (target units)" if regression else "cross-entropy loss",
                     kept=model.best_epoch_)
        click.echo(f"wrote curves to {plot_path}")
    if grad_plot_path:
        n = hyper["batch_size"]
        plot_state_grads(model, X[te][:n], y[te][:n], grad_plot_path,
                         f"{where}): {min(n, te.size)} held-out sequences")
        click.echo(f"wrote gradient norms to {grad_plot_path}")
    if warning:
        raise click.exceptions.Exit(NOT_LEARNED)


def _estimator(regression: bool, hyper: dict[str, Any], **placement: Any) -> Any:
    """The estimator ``rnnx train`` trains: the regressor for a regression data set, the seed's
    Elman classifier for its cell, the general classifier otherwise."""
    if regression:
        return RNNRegressor(**hyper, **placement)
    if hyper["cell"] == ScratchSimpleRNNClassifier.fixed_cell:
        return ScratchSimpleRNNClassifier(**{k: v for k, v in hyper.items() if k != "cell"},
                                          **placement)
    return RNNClassifier(**hyper, **placement)


def _describe(model: Any, hyper: dict[str, Any]) -> str:
    """``ScratchSimpleRNNClassifier(cell=rnn, hidden_size=64), adam lr=0.005, batch 32, clip
    5.0``: the options that differ from a one-layer model, then the training's."""
    layers = "" if hyper["num_layers"] == 1 else f", num_layers={hyper['num_layers']}"
    layers += ", bidirectional" if hyper["bidirectional"] else ""
    layers += f", dropout={hyper['dropout']:g}" if hyper["dropout"] else ""
    select = ""
    if hyper["early_stopping"]:
        select = (f", early stopping (patience {hyper['n_iter_no_change']})"
                  if hyper["n_iter_no_change"] < hyper["epochs"] else ", best epoch kept")
    return (f"{type(model).__name__}(cell={hyper['cell']}, hidden_size={hyper['hidden_size']}"
            f"{layers}), {hyper['optimizer']} lr={hyper['learning_rate']:g}, batch "
            f"{hyper['batch_size']}, clip {hyper['clip_norm'] or 'off'}{select}")


def _epoch_selection(hyper: dict[str, Any], early_stopping: bool, restore_best: bool) -> None:
    """``--early-stopping`` / ``--restore-best`` as the estimators' parameters: both are
    ``early_stopping=True`` on a validation split (0.1 unless given), whose best epoch the
    estimator restores; ``--restore-best`` alone never stops (a patience of every epoch).
    ``--patience`` without ``--early-stopping`` is refused: it would change nothing."""
    ctx = click.get_current_context()
    if (ctx.get_parameter_source("n_iter_no_change") is ParameterSource.COMMANDLINE
            and not early_stopping):
        raise click.BadParameter(
            f"{hyper['n_iter_no_change']} is how many epochs --early-stopping waits for a lower "
            "validation loss; without --early-stopping it would change nothing",
            param_hint="--patience")
    hyper["early_stopping"] = early_stopping or restore_best
    if hyper["early_stopping"]:
        if not early_stopping:
            hyper["n_iter_no_change"] = hyper["epochs"]  # never stale that long: no stop
        if hyper["validation_fraction"] is None:
            hyper["validation_fraction"] = 0.1


def _validation_note(hyper: dict[str, Any], n_train: int) -> str:
    """`` (144 of them validate)``: the part of the training rows the estimator holds out to
    choose the epoch (its own rule: ``ceil(fraction * n)``)."""
    vf = hyper["validation_fraction"]
    return "" if vf is None else f" ({math.ceil(vf * n_train)} of them validate)"


def _split(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(test_size * n)), n - 1)  # one sequence on each side at least
    return perm[n_test:], perm[:n_test]


def _save_interrupted(model: Any, path: str, hyper: dict[str, Any]) -> None:
    """Ctrl-C during training with ``--save``: the estimator has put the model back to the
    end of the last completed epoch; write that model (atomically, as every save), say so in
    one line and end with the status of an interrupt (130 = 128 + SIGINT)."""
    done = getattr(model, "n_epochs_", 0)
    if done == 0:
        click.echo(f"rnnx: interrupted in epoch 1, before any epoch completed: nothing saved to "
                   f"{path}", err=True)
    else:
        save_model(model, path)
        best = (" (its weights, not those of the best validation epoch so far)"
                if hyper["early_stopping"] else "")
        click.echo(f"rnnx: interrupted in epoch {done + 1}: saved the model of the last completed "
                   f"epoch, {done} of {hyper['epochs']}{best}, to {path}", err=True)
    raise click.exceptions.Exit(130)


def _diverged_message(exc: TrainingDivergedError, model: Any, hyper: dict[str, Any]) -> str:
    """The divergence error in the command line's terms (--lr, --clip), not the estimator's."""
    lr, clip = hyper["learning_rate"], hyper["clip_norm"]
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
