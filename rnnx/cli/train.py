"""The ``rnnx`` command line. This module (with the tests) is where results move to the host.
``rnnx export`` lives in :mod:`rnnx._cli_export`, the dask cluster of ``rnnx train --workers``
in :mod:`rnnx._cli_dask`, its figures in :mod:`rnnx._cli_plots`."""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from typing import Any

import click
import numpy as np

from .._backend import (
    REQUIRE_ENV,
    atomic_path,
    available_backends,
    device_label,
    devices,
    get_namespace,
    limit_threads,
    required_backends,
    requirement_status,
)
from ._dask import check_dask_options, dask_arrays, dask_cluster
from .export import export
from ._plots import plot_history, plot_state_grads
from .._version import __version__
from ..datasets import DATASETS
from ..functional.registry import CELLS
from ..models._errors import TrainingDivergedError
from ..testing import agreement_rows, float64_skips, seed_rows


def _fmt_row(cols: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    click.echo(_fmt_row(header, widths))
    click.echo(_fmt_row(["-" * w for w in widths], widths))
    for r in rows:
        click.echo(_fmt_row(r, widths))


class _OneLineErrors(click.Group):
    """Turn expected user errors into one line on stderr and exit status 2, never a traceback:
    bad arguments (click's usage errors, shown in one line with a pointer to --help), bad
    values and unreadable files. Ctrl-C prints one line and exits 130 (128 + SIGINT)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise  # click's own exits (--help is Exit(0), a RuntimeError)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "rnnx"
            msg = " ".join(exc.format_message().split())
            click.echo(f"rnnx: error: {msg} (see '{where} --help')", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"rnnx: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            _quiet_closed_pipe()
        except (ValueError, TypeError, OSError, RuntimeError, FloatingPointError, EOFError) as exc:
            click.echo(f"rnnx: error: {' '.join(str(exc).split())}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("rnnx: interrupted", err=True)
            sys.exit(130)


def _quiet_closed_pipe() -> None:
    """The reader of stdout went away (``rnnx check | head -3``): end quietly with the status
    of a process killed by SIGPIPE (141 = 128 + 13), as ``cat`` and ``grep`` do. stdout is
    pointed at /dev/null first, so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (click's runner)
        pass
    sys.exit(141)


class _Int(click.IntRange):
    """click's IntRange, whose conversion error says "'ten' is not a valid integer", not
    "... a valid integer range"."""

    name = "integer"


class _Float(click.FloatRange):
    name = "float"


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnnx")
def main() -> None:
    """rnnx: recurrent networks with hand-derived BPTT on any Array API backend."""


@main.command()
@click.option("--backend", "backends", multiple=True,
              help="Backend to check (repeatable). Default: every backend available here.")
@click.option("--strict/--no-strict", default=True, show_default=True,
              help="Exit with status 1 if any value is outside its tolerance.")
def check(backends: tuple[str, ...], strict: bool) -> None:
    """Seed value, gradient check and agreement with NumPy float64 on every backend.

    Backends named in RNNX_REQUIRE_BACKENDS (and torch-cuda: torch on a CUDA device) must run:
    one that cannot is a failing row and exit status 1, whatever --strict says."""
    required = required_backends()  # ValueError for an unknown name: one line, exit 2
    status = available_backends()
    if backends:
        for b in backends:
            if b not in status:
                raise click.BadParameter(f"unknown backend {b!r}; know {', '.join(status)}",
                                         param_hint="--backend")
            if not status[b].available:
                raise click.BadParameter(f"{b} is unavailable here: {status[b].reason}",
                                         param_hint="--backend")
    else:
        backends = tuple(n for n, s in status.items() if s.available)
    for s in status.values():
        if not s.available and s.name not in required:
            click.echo(f"skipped {s.name}: {s.reason}")
    rrows = [requirement_status(name) for name in required]
    if rrows:
        click.echo("")
        click.echo(f"Required backends ({REQUIRE_ENV}={','.join(required)})")
        _print_table(["requirement", "runs here", "why not"],
                     [[r.name, "yes" if r.available else "NO", r.reason] for r in rrows])
    for line in float64_skips(backends):
        click.echo(f"skipped {line}")
    click.echo("")
    click.echo("Seed Problem 2 (the seed printed [[0.79494228 0.81839002 0.83939649 0.85584174]])"
               " and finite-difference check (float64)")
    srows = seed_rows(backends)
    _print_table(
        ["backend", "device", "dtype", "last hidden state", "|err| vs seed", "grad-check rel err",
         "ok"],
        [[r["backend"], r["device"], r["dtype"],
          np.array2string(np.asarray(r["last_state"]), precision=8), f"{r['seed_err']:.1e}",
          "n/a (no float64)" if r["note"] else f"{r['grad_check']:.1e}",
          "yes" if r["ok"] else "NO"] for r in srows],
    )
    click.echo("")
    click.echo("Agreement with NumPy float64 (forward states and every gradient; rel = max abs "
               "deviation / max |reference| per array; limit = the rounding bound of the case "
               "in its dtype, rnnx.testing.recurrence_rtol)")
    arows = agreement_rows(backends)
    _print_table(
        ["cell", "backend", "device", "dtype", "max abs dev", "max rel dev", "limit", "ok"],
        [[r["cell"], r["backend"], r["device"], r["dtype"], f"{r['max_abs']:.2e}",
          f"{r['max_rel']:.2e}", f"{r['limit']:.1e}", "yes" if r["ok"] else "NO"]
         for r in arows],
    )
    bad = [r for r in srows + arows if not r["ok"]]
    unmet = [r for r in rrows if not r.available]
    if bad:
        click.echo(f"\n{len(bad)} check(s) outside tolerance", err=True)
    else:
        click.echo("\nall checks within tolerance")
    if unmet:
        click.echo(f"{len(unmet)} required backend(s) cannot run here: "
                   + "; ".join(f"{r.name}: {r.reason}" for r in unmet), err=True)
        sys.exit(1)
    if bad and strict:
        sys.exit(1)


# --------------------------------------------------------------------------------------------
# rnnx train / predict / info
# --------------------------------------------------------------------------------------------

_REGRESSION_DATASETS = ("adding",)


def _resolve_device(backend: str, label: str | None) -> Any:
    """A device of ``backend`` named by ``label`` (``"cpu"``, ``"cuda"``, ``"cuda:0"``,
    ``"device1"``...); ``None`` means the backend's default device."""
    if label is None:
        return None
    found = devices(backend)
    for d in found:
        names = {str(d), device_label(d)}
        if getattr(d, "type", None) is not None:
            names.add(d.type)
        if label in names:
            return d
    known = ", ".join(sorted({device_label(d) for d in found}))
    raise click.BadParameter(f"{label!r} is not a device of {backend} here; devices: {known}",
                             param_hint="--device")


def _check_backend(backend: str) -> None:
    # Only the requested backend is probed: importing every backend (torch, cupy) to list them
    # costs seconds.
    try:
        get_namespace(backend)
    except (ValueError, RuntimeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--backend") from None


def _finite(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    # click's FloatRange lets nan through (every comparison with nan is False) and allows inf.
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number; got {value}")
    return value


def _split(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(test_size * n)), n - 1)  # one sequence on each side at least
    return perm[n_test:], perm[:n_test]


@main.command()
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), default="digits", show_default=True,
              help="Data set: digits (8x8 images row by row), parity, sine (classification) "
                   "or adding (regression).")
@click.option("--cell", default="rnn", show_default=True,
              help="Recurrent cell: " + "; ".join(f"{n} ({c.summary})" for n, c in CELLS.items())
                   + " (or one registered with rnnx.functional.registry.register_cell).")
@click.option("--hidden-size", type=_Int(min=1), default=64, show_default=True)
@click.option("--num-layers", type=_Int(min=1), default=1, show_default=True,
              help="Stacked recurrent layers.")
@click.option("--bidirectional/--no-bidirectional", default=False, show_default=True,
              help="Run every layer forward and backward in time.")
@click.option("--dropout", type=_Float(0, 1, max_open=True), default=0.0,
              show_default=True, callback=_finite,
              help="Dropout between stacked layers while training (off when predicting).")
@click.option("--epochs", type=_Int(min=1), default=40, show_default=True)
@click.option("--batch-size", type=_Int(min=1), default=32, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "momentum", "adagrad", "rmsprop", "adam"]),
              default="adam", show_default=True)
@click.option("--lr", type=_Float(min=0, min_open=True), default=0.005, show_default=True,
              callback=_finite,
              help="Learning rate.")
@click.option("--clip", type=_Float(min=0), default=5.0, show_default=True,
              callback=_finite,
              help="Global gradient-norm bound; 0 turns clipping off.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the split, the initial weights and the shuffling.")
@click.option("--backend", default="numpy", show_default=True,
              help="numpy, torch, cupy, array_api_strict or jax (see `rnnx info`).")
@click.option("--device", "device_label", default=None,
              help="Device of the backend (e.g. cuda, device1); default: its default device.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True)
@click.option("--test-size", type=_Float(0, 1, min_open=True, max_open=True),
              callback=_finite,
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
@click.option("--threads", type=_Int(min=0), default=1, show_default=True,
              help="CPU threads for BLAS, OpenMP and torch (0: the libraries' default, no cap), "
                   "set through threadpoolctl and printed on the `threads` line. Small "
                   "recurrent matrices gain nothing from more; on a busy machine they slow down.")
@click.option("--workers", type=_Int(min=1), default=None,
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
    _check_backend(backend)
    dev = _resolve_device(backend, device_label)
    for option, path in (("--plot", plot_path), ("--grad-plot", grad_plot_path)):
        if path:
            _check_figure_path(path, option)
    if save_path:
        _check_output(save_path, "--save")
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


def _check_output(path: str, option: str) -> None:
    from .._backend import check_writable

    try:
        check_writable(path)
    except OSError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _check_figure_path(path: str, option: str) -> None:
    """matplotlib importable, the file's format one it writes, the folder writable."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise click.UsageError(f"{option} needs matplotlib ({exc}): pip install 'rnnx[plot]'; "
                               "nothing was trained") from None
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    formats = Figure().canvas.get_supported_filetypes()
    if ext and ext not in formats:
        raise click.BadParameter(f"cannot write a figure as {ext!r} ({path}); formats: "
                                 f"{', '.join(sorted(formats))}", param_hint=option)
    _check_output(path, option)


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


def _read_input(path: str) -> np.ndarray:
    """The array in INPUT (.npy, or .npz with one array or one named X), never unpickled."""
    from .._backend import load_npz

    if path.endswith(".npz"):
        data = load_npz(path)  # ValueError naming the path for damaged or pickled archives
        if "X" in data:
            return data["X"]
        if len(data) == 1:
            return next(iter(data.values()))
        raise click.BadParameter(f"{path} holds {sorted(data)}: name the input array 'X'",
                                 param_hint="INPUT")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith((b"\x93NUMPY", b"PK")):
        what = "the file is empty" if not head else (
            f"it does not start like one (it starts {head!r}; a text file? read it with "
            "numpy.loadtxt and write it with numpy.save, or use an .npz with an array named X)")
        raise ValueError(f"cannot read INPUT {path!r} as a .npy array: {what}")
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise ValueError(f"cannot read INPUT {path!r} as a .npy array without pickle ({exc})") \
            from None
    if not isinstance(a, np.ndarray):  # an .npz archive under another name
        a.close()
        raise ValueError(f"INPUT {path!r} is an .npz archive; name it *.npz")
    return a


@main.command()
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A model written by `rnnx train --save`.")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("--proba", is_flag=True, help="Print class probabilities instead of labels.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the predictions to this .npy file.")
@click.option("--backend", default="numpy", show_default=True, help="Backend to predict on.")
@click.option("--device", "device_label", default=None, help="Device of that backend.")
def predict(model_path: str, input_path: str, proba: bool, output: str | None, backend: str,
            device_label: str | None) -> None:
    """Predict with a saved model on INPUT (.npy array, or .npz with an array named X):
    one line per sequence."""
    from ..models import load_model

    _check_backend(backend)
    if output:
        _check_output(output, "--output")
    model = load_model(model_path, backend=backend, device=_resolve_device(backend, device_label))
    X = _read_input(input_path)
    if proba:
        if not hasattr(model, "predict_proba"):
            raise click.UsageError("--proba needs a classifier; this model is a regressor")
        out = np.asarray(model.predict_proba(X))
        for row in out:
            click.echo(" ".join(f"{p:.6f}" for p in row))
    else:
        out = np.asarray(model.predict(X))
        for v in out:
            click.echo(str(v) if out.ndim == 1 else " ".join(str(a) for a in np.ravel(v)))
    if output:
        _atomic_save_npy(out, output)


def _atomic_save_npy(a: np.ndarray, path: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, a, allow_pickle=False)


def _version_of(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "not installed"


@main.command()
def info() -> None:
    """Backends and their devices, versions, and why a backend is unavailable."""
    click.echo(f"rnnx {__version__} on Python {platform.python_version()} ({platform.machine()}, "
               f"{os.cpu_count()} CPUs)")
    rows = []
    for name, s in available_backends().items():
        if s.available:
            try:
                devs = ", ".join(device_label(d) for d in devices(name))
            except Exception as exc:  # a backend that imports but cannot list devices
                devs = f"? ({type(exc).__name__}: {exc})"
            rows.append([name, s.version or "?", "yes", devs])
        else:
            rows.append([name, s.version or "-", "no", s.reason])
    _print_table(["backend", "version", "available", "devices / why not"], rows)
    click.echo("")
    _print_table(["package", "version"],
                 [[p, _version_of(p)] for p in ("numpy", "array-api-compat", "click", "tqdm",
                                                "matplotlib", "scikit-learn")])


main.add_command(export)  # rnnx export --model m.npz --onnx m.onnx (rnnx/_cli_export.py)


if __name__ == "__main__":
    main()
