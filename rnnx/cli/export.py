"""``rnnx export``: a model saved by ``rnnx train --save`` as an ONNX file
(:func:`rnnx.interop.to_onnx`).

Everything that can be refused is checked before the model is read: the file names' extensions,
that onnx is installed, that the output's folder is writable. The file is written atomically
(a temporary file renamed into place), so a failed export leaves no partial ``.onnx`` behind.
"""

from __future__ import annotations

import importlib
import os

import click

from ._common import check_output


def _check_extension(path: str, ext: str, option: str, what: str) -> None:
    if os.path.splitext(path)[1].lower() != ext:
        raise click.BadParameter(f"{what} must be a file named *{ext}; got {path!r}",
                                 param_hint=option)


@click.command()
@click.option("--model", "model_path", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="A fitted model written by `rnnx train --save` (.npz).")
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False),
              help="The ONNX file to write (.onnx), atomically.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True,
              help="The graph's float type. ONNX Runtime runs RNN/LSTM/GRU in float32 only; a "
                   "float64 graph runs in onnx's reference evaluator.")
@click.option("--lengths/--no-lengths", default=False, show_default=True,
              help="Add an int64 input `lengths` (batch,): right-padded sequences.")
def export(model_path: str, onnx_path: str, dtype: str, lengths: bool) -> None:
    """Export a saved model as ONNX (standard RNN/LSTM/GRU operators, opset 17).

    The graph's input is X (batch, time, features); its output the classifier's
    `probabilities` or the regressor's `predictions`, as `rnnx predict` computes them."""
    _check_extension(model_path, ".npz", "--model", "the model")
    _check_extension(onnx_path, ".onnx", "--onnx", "the output")
    try:
        importlib.import_module("onnx")
    except ImportError as exc:
        raise click.UsageError(f"rnnx export needs the onnx package ({exc}): pip install "
                               f"'rnnx[onnx]'; nothing was written") from None
    check_output(onnx_path, "--onnx")

    from ..interop import to_onnx
    from ..models import load_model

    model = load_model(model_path)  # ModelFileError (a ValueError) naming the file: one line
    proto = to_onnx(model, onnx_path, lengths=lengths, dtype=dtype)  # refuses ln_lstm first
    inputs = ", ".join(i.name for i in proto.graph.input)
    click.echo(f"wrote {onnx_path}: {proto.doc_string}; {dtype}; inputs {inputs}; output "
               f"{proto.graph.output[0].name}")
