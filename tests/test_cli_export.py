"""``rnnx export`` end to end: ``rnnx train --save`` a tiny model, export it, run the file in
ONNX Runtime (the outside implementation) and compare with the saved model's own predictions;
bad options and files fail in one line, before any work, leaving no file behind.

Like the ONNX export checks it does not depend on the backend under test: it runs once, in the
NumPy session. Tolerance as in tests/test_interop_onnx.py: 1e-5 absolute on probabilities in
float32 (measured deviations 1e-7 .. 6e-7), 1e-10 for float64 in onnx's reference evaluator.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from click.testing import CliRunner

from rnnx.cli import main
from rnnx.datasets import load_digits_sequences
from rnnx.models import load_model

from ._selection import numpy_selected
from ._threads import one_thread  # noqa: F401  (autouse fixture)

if not numpy_selected():
    pytest.skip("rnnx export is checked in the numpy session only", allow_module_level=True)

onnx = pytest.importorskip("onnx", reason="rnnx export writes ONNX (the onnx extra)")
ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime runs the exported file")

TINY = ["--hidden-size", "8", "--epochs", "2", "--no-progress"]
TOL32, TOL64 = 1e-5, 1e-10


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits_sequences()
    lengths = np.random.default_rng(0).integers(1, X.shape[1] + 1, size=X.shape[0])
    return X, lengths


def _train(tmp_path, *options, name="m.npz"):
    path = tmp_path / name
    res = run("train", *TINY, *options, "--save", path)
    assert res.exit_code == 0, res.output
    return path


@pytest.mark.parametrize("options", [[], ["--cell", "gru", "--bidirectional"],
                                     ["--cell", "lstm", "--num-layers", "2"]],
                         ids=["elman", "gru-bidir", "lstm-2layers"])
def test_train_export_then_onnxruntime_gives_predict_proba(tmp_path, digits, options):
    X, lengths = digits
    model_path = _train(tmp_path, *options)
    out = tmp_path / "m.onnx"
    res = run("export", "--model", model_path, "--onnx", out, "--lengths")
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"wrote {out}: ") and "float32; inputs X, lengths" in res.output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    X32 = X.astype(np.float32)
    got = session.run(None, {"X": X32, "lengths": lengths.astype(np.int64)})[0]
    model = load_model(model_path)
    want = np.asarray(model.predict_proba(X32, lengths=lengths))
    assert got.shape == want.shape == (X.shape[0], 10)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "m.onnx"]  # no temp file


def test_float64_export_runs_in_the_reference_evaluator(tmp_path, digits):
    from onnx.reference import ReferenceEvaluator

    X, _ = digits
    model_path = _train(tmp_path, "--cell", "lstm", "--dtype", "float64")
    out = tmp_path / "m.onnx"
    res = run("export", "--model", model_path, "--onnx", out, "--dtype", "float64")
    assert res.exit_code == 0, res.output
    proto = onnx.load(out)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert [i.name for i in proto.graph.input] == ["X"]
    (got,) = ReferenceEvaluator(proto).run(None, {"X": X[:64]})
    want = np.asarray(load_model(model_path).predict_proba(X[:64]))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL64)


def _one_line_error(res, *fragments):
    assert res.exit_code == 2, res.output
    assert res.output.startswith("rnnx: error:") and res.output.count("\n") == 1, res.output
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in res.output, res.output


def test_bad_options_fail_before_any_work(tmp_path):
    model_path = _train(tmp_path)
    (tmp_path / "m.npy").write_bytes(b"")
    cases = [
        (["--model", tmp_path / "missing.npz", "--onnx", tmp_path / "m.onnx"],
         ["'--model'", "does not exist"]),
        (["--model", tmp_path / "m.npy", "--onnx", tmp_path / "m.onnx"],
         ["--model", "must be a file named *.npz", "m.npy"]),
        (["--model", model_path, "--onnx", tmp_path / "m.onx"],
         ["--onnx", "must be a file named *.onnx", "m.onx"]),
        (["--model", model_path, "--onnx", tmp_path / "nodir" / "m.onnx"],
         ["--onnx", "does not exist"]),
        (["--model", model_path, "--onnx", tmp_path / "m.onnx", "--dtype", "float16"],
         ["'--dtype'", "float16"]),
        (["--onnx", tmp_path / "m.onnx"], ["Missing option '--model'"]),
    ]
    for args, fragments in cases:
        _one_line_error(run("export", *args), *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy", "m.npz"]


def test_unsupported_or_foreign_models_are_refused_without_a_file(tmp_path):
    ln = _train(tmp_path, "--cell", "ln_lstm", name="ln.npz")
    _one_line_error(run("export", "--model", ln, "--onnx", tmp_path / "ln.onnx"),
                    "cell 'ln_lstm'", "has no ONNX operator")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, w=np.zeros(3))
    _one_line_error(run("export", "--model", foreign, "--onnx", tmp_path / "f.onnx"),
                    "not an rnnx model file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.npz", "ln.npz"]


def test_without_onnx_it_says_so_before_reading_the_model(tmp_path, monkeypatch):
    model_path = _train(tmp_path)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import raises ImportError
    _one_line_error(run("export", "--model", model_path, "--onnx", tmp_path / "m.onnx"),
                    "rnnx export needs the onnx package", "nothing was written")
