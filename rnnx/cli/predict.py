"""``rnnx predict``: a model saved by ``rnnx train --save`` on an array file, one line per
sequence (and optionally an ``.npy`` of the predictions, written atomically)."""

from __future__ import annotations

import click
import numpy as np

from .._backend import atomic_path, load_npz
from ..models import load_model
from ._common import check_backend, check_output, resolve_device

__all__ = ["predict"]


def _read_input(path: str) -> np.ndarray:
    """The array in INPUT (.npy, or .npz with one array or one named X), never unpickled. An
    .npz's only array under another name is used, and a line on stderr names it."""
    if path.endswith(".npz"):
        data = load_npz(path)  # ValueError naming the path for damaged or pickled archives
        if "X" in data:
            return data["X"]
        if len(data) == 1:
            (name, a), = data.items()
            click.echo(f"note: {path} holds one array, {name!r} {a.shape}, and none named 'X': "
                       "predicting on it", err=True)
            return a
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


@click.command()
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A model written by `rnnx train --save`.")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("--proba", is_flag=True, help="Print class probabilities instead of labels.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the predictions to this .npy file.")
@click.option("--backend", default="numpy", show_default=True, help="Backend to predict on.")
@click.option("--device", "device_name", default=None, help="Device of that backend.")
def predict(model_path: str, input_path: str, proba: bool, output: str | None, backend: str,
            device_name: str | None) -> None:
    """Predict with a saved model on INPUT (.npy array, or .npz with an array named X, or with
    a single array, which a note on stderr names): one line per sequence."""
    check_backend(backend)
    if output:
        check_output(output, "--output")
    model = load_model(model_path, backend=backend, device=resolve_device(backend, device_name))
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
