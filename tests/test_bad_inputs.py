"""The catalogue of bad inputs: each is refused with the right exception type and a message
that names the argument, what was expected and what was given. Nothing is broadcast, cast,
truncated or lost silently.

Each entry is ``(id, thunk, exception type, [substrings the message must contain])``. Sections:
the functional core, the SimpleRNN layer, the estimators (data, labels, dtypes, namespaces,
devices, hyper-parameters), model files, and the command line (run as a real ``python -m rnnx``
subprocess for some entries, in-process through click's runner for the rest; each must exit
non-zero with one line on stderr and no traceback).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import rnnx
from rnnx import SimpleRNN
from rnnx.functional import rnn_backward, rnn_forward
from rnnx.models import (
    ModelFileError,
    NotFittedError,
    RNNClassifier,
    RNNRegressor,
    load_model,
    save_model,
)

B, T, F, H = 2, 3, 4, 5


def _arrays(dtype=np.float64):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(B, T, F)).astype(dtype), rng.normal(size=(F, H)).astype(dtype),
            rng.normal(size=(H, H)).astype(dtype), rng.normal(size=(H,)).astype(dtype))


x, w_x, w_h, b = _arrays()
h0 = np.zeros((B, H))


def fwd(**over):
    args = {"x": x, "w_x": w_x, "w_h": w_h, "b": b, "h0": None, **over}
    return lambda: rnn_forward(**args)


def bwd(dhs):
    _, cache = rnn_forward(x, w_x, w_h, b)
    return lambda: rnn_backward(dhs, cache)


def _torch():
    return pytest.importorskip("torch")


def _strict():
    return pytest.importorskip("array_api_strict")


def mixed_namespaces():
    torch = _torch()
    return rnn_forward(torch.from_numpy(x), w_x, w_h, b)


def two_devices():
    s = _strict()
    d1 = s.Device("device1")
    return rnn_forward(s.asarray(x, device=d1), s.asarray(w_x), s.asarray(w_h), s.asarray(b))


def two_devices_h0():
    s = _strict()
    d1 = s.Device("device1")
    return rnn_forward(*(s.asarray(a, device=d1) for a in (x, w_x, w_h, b)), s.asarray(h0))


FUNCTIONAL = [
    ("x-rank-2", fwd(x=x[0]), ValueError, ["x must be 3-D", "(batch, time, features)", "2-D shape (3, 4)"]),
    ("x-rank-4", fwd(x=x[None]), ValueError, ["x must be 3-D", "4-D shape (1, 2, 3, 4)"]),
    ("x-features-vs-w_x", fwd(x=x[:, :, :3]), ValueError,
     ["w_x must have shape (features, hidden) = (3, ?)", "got shape (4, 5)"]),
    ("w_x-rank-1", fwd(w_x=w_x[0]), ValueError, ["w_x must have shape (features, hidden)", "got shape (5,)"]),
    ("w_h-not-square", fwd(w_h=w_h[:4]), ValueError, ["w_h must have shape (hidden, hidden) = (5, 5)", "got shape (4, 5)"]),
    ("w_h-wrong-hidden", fwd(w_h=np.ones((6, 6))), ValueError, ["w_h must have shape (hidden, hidden) = (5, 5)", "(6, 6)"]),
    ("b-wrong-length", fwd(b=b[:4]), ValueError, ["b must have shape (hidden,) = (5,)", "got shape (4,)"]),
    ("b-2d", fwd(b=b[None]), ValueError, ["b must have shape (hidden,) = (5,)", "got shape (1, 5)"]),
    ("h0-wrong-batch", fwd(h0=np.zeros((3, H))), ValueError, ["h0 must have shape (batch, hidden) = (2, 5)", "(3, 5)"]),
    ("h0-1d", fwd(h0=np.zeros(H)), ValueError, ["h0 must have shape (batch, hidden) = (2, 5)", "got shape (5,)"]),
    ("h0-3d-torch-layout", fwd(h0=np.zeros((1, B, H))), ValueError, ["h0 must have shape (batch, hidden)", "(1, 2, 5)"]),
    ("batch-0", fwd(x=np.zeros((0, T, F))), ValueError, ["x must have at least one sample", "batch >= 1", "(0, 3, 4)"]),
    ("time-0", fwd(x=np.zeros((B, 0, F))), ValueError, ["x must have at least one", "time >= 1", "(2, 0, 4)"]),
    ("x-int", fwd(x=x.astype(np.int64)), TypeError, ["x must have a real floating dtype", "float32 or float64", "got int64"]),
    ("x-bool", fwd(x=x > 0), TypeError, ["x must have a real floating dtype", "got bool"]),
    ("x-complex", fwd(x=x.astype(np.complex128)), TypeError, ["x must have a real floating dtype", "got complex128"]),
    ("x-float16", fwd(x=x.astype(np.float16)), TypeError, ["x must have a real floating dtype", "got float16"]),
    ("w_x-float32-x-float64", fwd(w_x=w_x.astype(np.float32)), TypeError,
     ["w_x must have the same dtype as x (float64)", "got float32"]),
    ("w_h-int", fwd(w_h=w_h.astype(np.int32)), TypeError, ["w_h must have a real floating dtype", "got int32"]),
    ("b-float32", fwd(b=b.astype(np.float32)), TypeError, ["b must have the same dtype as x (float64)", "got float32"]),
    ("h0-float32", fwd(h0=h0.astype(np.float32)), TypeError, ["h0 must have the same dtype as x (float64)", "got float32"]),
    ("x-list", fwd(x=x.tolist()), TypeError, ["x must be an array", "got list"]),
    ("w_h-scalar", fwd(w_h=1.0), TypeError, ["w_h must be an array", "got float"]),
    ("nonlinearity", fwd(nonlinearity="sigmoid"), ValueError, ["nonlinearity must be one of", "'tanh'", "got 'sigmoid'"]),
    ("mixed-namespaces", mixed_namespaces, TypeError, ["one array library", "x: torch", "w_x: numpy"]),
    ("two-devices", two_devices, ValueError, ["one device", "x is on", "device1", "w_x is on", "CPU_DEVICE"]),
    ("two-devices-h0", two_devices_h0, ValueError, ["one device", "h0 is on", "CPU_DEVICE"]),
    ("dhs-wrong-time", bwd(np.ones((B, T + 1, H))), ValueError,
     ["dhs must have shape (batch, time, hidden) = (2, 3, 5)", "(2, 4, 5)"]),
    ("dhs-wrong-hidden-last", bwd(np.ones((B, H + 1))), ValueError,
     ["dhs must have shape (batch, hidden) = (2, 5)", "(2, 6)"]),
    ("dhs-float32", bwd(np.ones((B, T, H), dtype=np.float32)), TypeError,
     ["dhs must have the forward pass's dtype float64", "got float32"]),
]

LAYER = [
    ("layer-input_size-0", lambda: SimpleRNN(0, 3), ValueError, ["input_size must be a positive int", "got 0"]),
    ("layer-hidden-float", lambda: SimpleRNN(2, 2.5), ValueError, ["hidden_size must be a positive int", "got 2.5"]),
    ("layer-hidden-bool", lambda: SimpleRNN(2, True), ValueError, ["hidden_size must be a positive int", "got True"]),
    ("layer-init", lambda: SimpleRNN(2, 3, init="zeros"), ValueError, ["init must be one of", "got 'zeros'"]),
    ("layer-dtype-float16", lambda: SimpleRNN(2, 3, dtype="float16"), ValueError,
     ["dtype must be 'float32' or 'float64'", "got 'float16'"]),
    ("layer-backend", lambda: SimpleRNN(2, 3, backend="mxnet"), ValueError, ["backend must be one of", "got 'mxnet'"]),
    ("layer-backward-first", lambda: SimpleRNN(2, 3).backward(np.ones((1, 3))), RuntimeError,
     ["backward() called before forward()"]),
    ("layer-x-features", lambda: SimpleRNN(2, 3, seed=0).forward(np.ones((1, 4, 5))), ValueError,
     ["w_x must have shape (features, hidden) = (5, ?)", "got shape (2, 3)"]),
    ("layer-x-float32-params-float64", lambda: SimpleRNN(2, 3, seed=0).forward(np.ones((1, 4, 2), np.float32)),
     TypeError, ["w_x must have the same dtype as x (float32)", "got float64"]),
]

# ------------------------------------------------------------------ estimators

N = 16
_rng = np.random.default_rng(1)
EX = _rng.normal(size=(N, 4, 2))  # (n_samples, time, features)
EY = (EX[:, :, 0].sum(axis=1) > 0).astype(np.int64)  # two classes
TINY = dict(hidden_size=4, epochs=1, batch_size=8, random_state=0)


@functools.cache
def fitted() -> RNNClassifier:
    return RNNClassifier(**TINY).fit(EX, EY)


@functools.cache
def fitted_regressor() -> RNNRegressor:
    return RNNRegressor(**TINY).fit(EX, EX.sum(axis=(1, 2)))


def fit(X=EX, y=EY, est=RNNClassifier, **params):
    return lambda: est(**{**TINY, **params}).fit(X, y)


def with_nan(a, where=(0, 1, 1), value=np.nan):
    a = np.array(a, dtype=np.float64)
    a[where] = value
    return a


def torch_fit_numpy_y():
    torch = _torch()
    return RNNClassifier(**TINY).fit(torch.from_numpy(EX), EY)


def torch_score_strict_y():
    torch, s = _torch(), _strict()
    return fitted().score(torch.from_numpy(EX), s.asarray(EY))


def strict_two_devices():
    s = _strict()
    return RNNClassifier(**TINY).fit(s.asarray(EX, device=s.Device("device1")), s.asarray(EY))


def torch_half():
    torch = _torch()
    return RNNClassifier(**TINY).fit(torch.from_numpy(EX).half(), torch.from_numpy(EY))


ESTIMATOR = [
    ("est-X-nan", fit(X=with_nan(EX)), ValueError,
     ["Input X contains NaN or inf", "(1 non-finite of 128 values)", "expected finite"]),
    ("est-X-inf-predict", lambda: fitted().predict(with_nan(EX, value=np.inf)), ValueError,
     ["Input X contains NaN or inf", "1 non-finite"]),
    ("est-y-nan-regressor", fit(y=with_nan(EX.sum(axis=(1, 2)), where=3), est=RNNRegressor),
     ValueError, ["Input y contains NaN or inf", "(1 non-finite of 16 values)", "finite targets"]),
    ("est-y-inf-classifier", fit(y=with_nan(EY, where=3, value=np.inf)), ValueError,
     ["Input y contains NaN or inf", "expected finite class labels"]),
    ("est-y-length", fit(y=EY[:-1]), ValueError,
     ["inconsistent numbers of samples", "X has 16", "y has 15"]),
    ("est-y-scalar", fit(y=np.int64(1)), ValueError, ["y must have one entry per sample of X (16)",
                                                      "got a scalar"]),
    ("est-y-none", fit(y=None), ValueError, ["requires y to be passed", "y is None"]),
    ("est-single-class", fit(y=np.zeros(N, np.int64)), ValueError,
     ["needs samples of at least 2 classes in y", "got 1 class: [0]"]),
    ("est-y-continuous", fit(y=np.linspace(0, 1, N)), ValueError,
     ["Unknown label type: 'continuous'", "use RNNRegressor"]),
    ("est-y-2d-labels", fit(y=np.stack([EY, EY], axis=1)), ValueError,
     ["y must be 1-D class labels (n_samples,)", "got shape (16, 2)"]),
    ("est-partial_fit-new-label",
     lambda: RNNClassifier(**TINY).partial_fit(EX, EY, classes=[0, 1]).partial_fit(EX, EY + 2),
     ValueError, ["y holds label(s) [2, 3] not in classes_ [0, 1]", "first partial_fit"]),
    ("est-score-unseen-labels", lambda: fitted().score(EX, EY + 5), ValueError,
     ["y holds label(s) [5, 6] not in classes_ [0, 1]", "never predict"]),
    ("est-score-length", lambda: fitted().score(EX, EY[:1]), ValueError,
     ["inconsistent numbers of samples", "X has 16", "y has 1 (shape (1,))"]),
    ("est-score-regressor-nan", lambda: fitted_regressor().score(EX, with_nan(np.zeros(N), 2)),
     ValueError, ["Input y contains NaN or inf", "expected finite"]),
    ("est-predict-before-fit", lambda: RNNClassifier().predict(EX), NotFittedError,
     ["This RNNClassifier instance is not fitted yet", "Call 'fit'"]),
    ("est-predict_proba-before-fit", lambda: RNNClassifier().predict_proba(EX), NotFittedError,
     ["not fitted yet"]),
    ("est-score-before-fit", lambda: RNNRegressor().score(EX, EY), NotFittedError,
     ["This RNNRegressor instance is not fitted yet"]),
    ("est-save-before-fit", lambda: save_model(RNNClassifier(), os.devnull), NotFittedError,
     ["not fitted yet"]),
    ("est-mixed-namespaces-fit", torch_fit_numpy_y, TypeError,
     ["X and y must come from one array library", "X: torch.Tensor", "y: numpy.ndarray"]),
    ("est-mixed-namespaces-score", torch_score_strict_y, TypeError,
     ["X and y must come from one array library", "X: torch.Tensor", "y: array_api_strict"]),
    ("est-two-devices", strict_two_devices, ValueError,
     ["X and y must be on one device", "X is on array_api_strict.Device('device1')",
      "y is on array_api_strict.Device('CPU_DEVICE')"]),
    ("est-X-complex", fit(X=EX.astype(np.complex128)), ValueError,
     ["Complex data not supported", "X has dtype complex128", "real float32/float64"]),
    ("est-X-complex-predict", lambda: fitted().predict(EX.astype(np.complex64)), ValueError,
     ["Complex data not supported", "complex64"]),
    ("est-X-float16", fit(X=EX.astype(np.float16)), TypeError,
     ["X has dtype float16", "compute in float32 or float64", "X.astype(float32)"]),
    ("est-X-float16-torch", torch_half, TypeError, ["X has dtype float16"]),
    ("est-X-float16-predict", lambda: fitted().predict(EX.astype(np.float16)), TypeError,
     ["X has dtype float16"]),
    ("est-X-strings", fit(X=EX.astype(str)), TypeError,
     ["X must hold numbers (float32, float64, integer or bool)", "got dtype <U"]),
    ("est-X-int-beyond-float32", fit(X=np.full((N, 4, 2), 2**24 + 1), dtype="float32"), ValueError,
     ["X holds integer 16777217", "beyond +-16777216 (2**24)", "float32 represents exactly"]),
    ("est-X-uint64-beyond-float64", fit(X=np.full((N, 4, 2), 2**60, dtype=np.uint64)), ValueError,
     ["X holds integer 1152921504606846976", "(2**53)", "float64"]),
    ("est-X-rank-1", lambda: fitted().predict(EX[0, 0]), ValueError,
     ["Expected 2D (n_samples, time) or 3D (n_samples, time, features) X", "1D array of shape (2,)"]),
    ("est-X-rank-4", fit(X=EX[None]), ValueError, ["Expected 2D", "got 4D array of shape (1, 16, 4, 2)"]),
    ("est-X-no-samples", fit(X=EX[:0], y=EY[:0]), ValueError,
     ["Found array with 0 sample(s) (shape=(0, 4, 2))", "minimum of 1"]),
    ("est-X-features-predict", lambda: fitted().predict(EX[:, :, :1]), ValueError,
     ["X has 1 features", "expecting 2 features"]),
    ("est-regressor-y-time", fit(y=EX[:, :3, 0], est=RNNRegressor, sequence_output=True), ValueError,
     ["y must have X's 4 time steps", "got y of shape (16, 3)"]),
    ("est-learning_rate-nan", fit(learning_rate=float("nan")), ValueError,
     ["learning_rate must be a positive finite number", "got nan"]),
    ("est-tol-negative", fit(tol=-1.0), ValueError, ["tol must be a non-negative finite number",
                                                     "got -1.0"]),
    ("est-hidden_size-0", fit(hidden_size=0), ValueError, ["hidden_size must be a positive int",
                                                           "got 0"]),
    ("est-cell", fit(cell="gru-ish"), ValueError, ["cell must be one of", "got 'gru-ish'"]),
    ("est-dtype-float16", fit(dtype="float16"), ValueError,
     ["dtype must be 'float32', 'float64' or None", "got 'float16'"]),
    ("est-backend", fit(backend="mxnet"), ValueError, ["backend must be one of", "got 'mxnet'"]),
    ("est-validation_fraction", fit(validation_fraction=1.5), ValueError,
     ["validation_fraction must be in (0, 1) or None", "got 1.5"]),
    ("est-num_layers-0", fit(num_layers=0), ValueError, ["num_layers must be a positive int",
                                                         "got 0"]),
    ("est-num_layers-float", fit(num_layers=2.0), ValueError, ["num_layers must be a positive int",
                                                               "got 2.0"]),
    ("est-bidirectional-str", fit(bidirectional="yes"), ValueError,
     ["bidirectional must be True or False", "got 'yes'"]),
    ("est-dropout-1", fit(dropout=1.0, num_layers=2), ValueError,
     ["dropout must be a probability in [0, 1)", "got 1.0"]),
    ("est-misspelt-keyword", lambda: RNNClassifier(hiden_size=4), TypeError,
     ["RNNClassifier.__init__() got an unexpected keyword argument 'hiden_size'"]),
    ("est-fit-progress", lambda: RNNClassifier(**TINY).fit(EX, EY, progress="yes"), ValueError,
     ["progress must be True, False or None", "got 'yes'"]),
    ("est-dropout-negative", fit(dropout=-0.1), ValueError,
     ["dropout must be a probability in [0, 1)", "got -0.1"]),
    ("est-forget_bias-nan", fit(forget_bias=float("nan"), cell="lstm"), ValueError,
     ["forget_bias must be a finite number", "got nan"]),
    ("est-forget_bias-gru", fit(forget_bias=1.0, cell="gru"), ValueError,
     ["forget_bias is an option of cells with a forget gate", "cell='gru'"]),
    ("est-lengths-wrong-shape", lambda: RNNClassifier(**TINY).fit(EX, EY, lengths=[4, 4]),
     ValueError, ["lengths must be integer lengths (n_samples,) = (16,)",
                  "or a boolean mask (n_samples, time) = (16, 4)", "of shape (2,)"]),
    ("est-lengths-mask-wrong-shape", lambda: fitted().predict(EX, lengths=np.ones((16, 5), bool)),
     ValueError, ["lengths must be", "(16, 4)", "got a boolean array of shape (16, 5)"]),
    ("est-lengths-float", lambda: fitted().predict_proba(EX, lengths=np.full(16, 2.0)), TypeError,
     ["lengths must be integer lengths", "got dtype float64", "lengths.astype(int)"]),
    ("est-lengths-too-long", lambda: fitted().score(EX, EY, lengths=np.full(16, 5)), ValueError,
     ["lengths must lie in [0, time] = [0, 4]", "X has 4 steps", "got a length of 5"]),
    ("est-lengths-negative",
     lambda: fitted_regressor().partial_fit(EX, EX.sum(axis=(1, 2)), lengths=np.full(16, -1)),
     ValueError, ["lengths must lie in [0, time]", "got a length of -1"]),
]

# ------------------------------------------------------------------ model files

_TMP = tempfile.TemporaryDirectory(prefix="rnnx-bad-inputs-")  # removed at interpreter exit


def tmp(name: str) -> str:
    return os.path.join(_TMP.name, name)


@functools.cache
def saved_model() -> tuple[str, bytes]:
    path = tmp("good.npz")
    save_model(fitted(), path)
    with open(path, "rb") as f:
        return path, f.read()


def model_file(name: str, make) -> str:
    """Write the bytes ``make(good bytes, good arrays)`` returns (or the arrays it returns,
    with np.savez) to ``name`` and give the path."""
    path, raw = saved_model()
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    out, target = make(raw, arrays), tmp(name)
    if isinstance(out, bytes):
        with open(target, "wb") as f:
            f.write(out)
    else:
        np.savez(target, **out)
    return target


def load(name: str, make):
    return lambda: load_model(model_file(name, make))


def flip_middle_byte(raw, _):
    b = bytearray(raw)
    b[len(b) // 2] ^= 0xFF
    return bytes(b)


def with_meta(**changes):
    def make(_, arrays):
        meta = {**json.loads(str(arrays["meta"])), **changes}
        return {**arrays, "meta": np.asarray(json.dumps(meta))}

    return make


FILES = [
    ("file-truncated", load("trunc.npz", lambda raw, _: raw[: len(raw) // 2]), ModelFileError,
     ["trunc.npz", "is a truncated or corrupted .npz archive"]),
    ("file-corrupted", load("flip.npz", flip_middle_byte), ModelFileError,
     ["flip.npz", "truncated or corrupted", "Bad CRC-32"]),
    ("file-empty", load("empty.npz", lambda raw, _: b""), ModelFileError,
     ["empty.npz", "is not an .npz archive: the file is empty"]),
    ("file-text-named-npz", load("text.npz", lambda raw, _: b"hello\n"), ModelFileError,
     ["text.npz", "is not an .npz archive: it does not start like one (it starts b'hello\\n'",
      "the zip archive of .npy arrays that numpy.savez writes"]),
    ("file-newer-version", load("v9.npz", with_meta(format_version=9)), ModelFileError,
     ["v9.npz", "has format version 9", "reads versions up to 1", "upgrade rnnx"]),
    ("file-version-not-int", load("vs.npz", with_meta(format_version="1")), ModelFileError,
     ["invalid format_version '1'", "expected an integer from 1 to 1"]),
    ("file-not-rnnx", load("other.npz", lambda _, a: {"weights": a["param/dense.w"]}),
     ModelFileError, ["other.npz", "is not an rnnx model file (no 'meta' entry)"]),
    ("file-foreign-meta", load("foreign.npz", with_meta(format="keras")), ModelFileError,
     ["foreign.npz", "is not an rnnx model file"]),
    ("file-needs-pickle", load("pickled.npz", lambda _, a: {**a, "extra": np.array([{}], object)}),
     ModelFileError, ["pickled.npz", "holds an object array 'extra'", "never unpickles"]),
    ("file-npy-not-npz", lambda: (np.save(tmp("a.npy"), EX), load_model(tmp("a.npy"))), ModelFileError,
     ["a.npy", "is a single .npy array, not an .npz archive"]),
    ("file-meta-not-json", load("json.npz", lambda _, a: {**a, "meta": np.asarray("{oops")}),
     ModelFileError, ["is damaged: its metadata is not valid JSON"]),
    ("file-meta-missing-field", load("nohist.npz", lambda _, a: {**a, "meta": np.asarray(json.dumps(
        {k: v for k, v in json.loads(str(a["meta"])).items() if k != "history"}))}),
     ModelFileError, ["is damaged: its metadata lacks ['history']"]),
    ("file-param-dtype", load("dtype.npz", lambda _, a: {**a, "param/dense.w": a["param/dense.w"]
                                                         .astype(np.float32)}),
     ModelFileError, ["parameter 'dense.w' has dtype float32, but the model is float64"]),
    ("file-param-shape", load("shape.npz", lambda _, a: {**a, "param/dense.w": a["param/dense.w"][:2]}),
     ModelFileError, ["parameter 'dense.w' must have shape (4, 2)", "got (2, 2)"]),
    ("file-missing", lambda: load_model(tmp("nowhere.npz")), FileNotFoundError,
     ["No such file or directory", "nowhere.npz"]),
]

# ------------------------------------------------------------------ command line


class CLIFailed(Exception):
    """A command that failed as it should: non-zero exit, one line on stderr, no traceback.
    The message is that line."""


def _check_failure(code: int, err: str, out: str) -> None:
    assert code != 0, f"exit status 0; stdout {out!r}"
    assert "Traceback" not in err + out, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    raise CLIFailed(f"[exit {code}] {lines[0]}")


def cli_process(*args: str):
    """``python -m rnnx ARGS`` in a real subprocess, using this checkout's rnnx."""

    def run():
        root = os.path.dirname(os.path.dirname(os.path.abspath(rnnx.__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        res = subprocess.run([sys.executable, "-m", "rnnx", *args], capture_output=True, text=True,
                             env=env, timeout=120, cwd=_TMP.name)
        _check_failure(res.returncode, res.stderr, res.stdout)

    return run


def cli(*args: str):
    """The same through click's in-process runner (no interpreter start-up)."""

    def run():
        from click.testing import CliRunner

        from rnnx.cli import main

        res = CliRunner().invoke(main, [a() if callable(a) else a for a in args])
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise AssertionError(f"uncaught {res.exception!r}")
        _check_failure(res.exit_code, res.stderr, res.stdout)

    return run


def model_path():
    return saved_model()[0]


def npy(name: str, a, **kw):
    def make():
        np.save(tmp(name), a, **kw)
        return tmp(name)

    return make


def raw_file(name: str, data: bytes):
    def make():
        with open(tmp(name), "wb") as f:
            f.write(data)
        return tmp(name)

    return make


def npz(name: str, **arrays):
    def make():
        np.savez(tmp(name), **arrays)
        return tmp(name)

    return make


def truncated_model():
    return model_file("cli-trunc.npz", lambda raw, _: raw[:-100])


QUICK = ["--no-progress", "--hidden-size", "4", "--epochs", "2"]

CLI = [
    ("cli-epochs-0", cli_process("train", "--epochs", "0"), CLIFailed,
     ["[exit 2] rnnx: error: Invalid value for '--epochs'", "must be a positive int; got 0",
      "rnnx train --help"]),
    ("cli-backend", cli_process("train", "--backend", "mxnet"), CLIFailed,
     ["[exit 2]", "--backend", "backend must be one of", "got 'mxnet'"]),
    ("cli-predict-truncated-model", cli_process("predict", "--model", "cli-trunc.npz", "x.npy"),
     CLIFailed, ["[exit 2] rnnx: error:", "cli-trunc.npz", "truncated or corrupted .npz archive"]),
    ("cli-predict-empty-input", cli_process("predict", "--model", "good.npz", "empty.npy"), CLIFailed,
     ["[exit 2]", "cannot read INPUT 'empty.npy' as a .npy array: the file is empty"]),
    ("cli-unknown-command", cli("fit"), CLIFailed, ["[exit 2]", "No such command 'fit'"]),
    ("cli-unknown-option", cli("train", "--epoch", "3"), CLIFailed,
     ["[exit 2]", "No such option '--epoch'", "Did you mean one of: '--epochs'"]),
    ("cli-lr-nan", cli("train", "--lr", "nan"), CLIFailed,
     ["[exit 2]", "Invalid value for '--lr'", "must be a positive finite number; got nan"]),
    ("cli-lr-text", cli("train", "--lr", "fast"), CLIFailed,
     ["[exit 2]", "Invalid value for '--lr'", "'fast' is not a valid float"]),
    ("cli-test-size", cli("train", "--test-size", "1.5"), CLIFailed,
     ["[exit 2]", "Invalid value for '--test-size'", "1.5 is not in the range 0<x<1"]),
    ("cli-dataset", cli("train", "--dataset", "mnist"), CLIFailed,
     ["[exit 2]", "Invalid value for '--dataset'", "'mnist' is not one of"]),
    ("cli-device", cli("train", "--device", "quantum"), CLIFailed,
     ["[exit 2]", "'quantum' is not a device of numpy here; devices: cpu"]),
    ("cli-diverges", cli("train", "--dataset", "adding", *QUICK, "--optimizer", "sgd", "--lr", "1000",
                         "--clip", "0"), CLIFailed,
     ["[exit 2]", "training diverged in epoch 1", "had kept its initial weights",
      "Lower --lr (1000 now; try --lr 100)", "--clip 0 turns it off now; try --clip 1",
      "Nothing was saved or plotted"]),
    # Options that can fail after training are refused before it (nothing is trained).
    ("cli-plot-format", cli("train", *QUICK, "--plot", tmp("curves.xyz")), CLIFailed,
     ["[exit 2]", "Invalid value for --plot", "cannot write a figure as 'xyz'", "formats:", "png"]),
    ("cli-grad-plot-format", cli("train", *QUICK, "--grad-plot", tmp("g.bmpx")), CLIFailed,
     ["[exit 2]", "Invalid value for --grad-plot", "cannot write a figure as 'bmpx'"]),
    ("cli-plot-no-folder", cli("train", *QUICK, "--plot", tmp("nodir/c.png")), CLIFailed,
     ["[exit 2]", "Invalid value for --plot", "nodir/c.png", "does not exist"]),
    ("cli-save-no-folder", cli("train", *QUICK, "--save", tmp("nodir/m.npz")), CLIFailed,
     ["[exit 2]", "Invalid value for --save", "cannot write", "nodir/m.npz", "its folder", "does not exist"]),
    ("cli-save-folder-is-file", cli("train", *QUICK, "--save", lambda: os.path.join(tmp("x.npy"), "m.npz")),
     CLIFailed, ["[exit 2]", "Invalid value for --save", "x.npy", "is not a folder"]),
    ("cli-predict-output-no-folder", cli("predict", "--model", model_path, lambda: tmp("x.npy"),
                                         "--output", tmp("nodir/p.npy")), CLIFailed,
     ["[exit 2]", "Invalid value for --output", "nodir/p.npy", "does not exist"]),
    ("cli-test-size-starves-training", cli("train", *QUICK, "--test-size", "0.999"), CLIFailed,
     ["[exit 2]", "Invalid value for --test-size", "0.999 holds out 1795 of 1797",
      "training part (2) without class(es)", "keeps every class on both sides"]),
    ("cli-test-size-starves-held-out", cli("train", *QUICK, "--test-size", "0.001"), CLIFailed,
     ["[exit 2]", "Invalid value for --test-size", "held-out part (2) without class(es)"]),
    ("cli-dropout-one-layer", cli("train", *QUICK, "--dropout", "0.5"), CLIFailed,
     ["[exit 2]", "Invalid value for --dropout", "needs --num-layers 2 or more",
      "with one layer it would change nothing"]),
    ("cli-patience-without-early-stopping", cli("train", "--patience", "3"), CLIFailed,
     ["[exit 2]", "Invalid value for --patience", "3 is how many epochs --early-stopping waits",
      "without --early-stopping it would change nothing"]),
    ("cli-validation-fraction", cli("train", "--restore-best", "--validation-fraction", "1"),
     CLIFailed, ["[exit 2]", "Invalid value for '--validation-fraction'", "must be in (0, 1); "
                 "got 1.0"]),
    ("cli-epochs-text", cli("train", "--epochs", "ten"), CLIFailed,
     ["[exit 2]", "Invalid value for '--epochs'", "'ten' is not a valid integer."]),
    ("cli-predict-one-2d-sequence", cli("predict", "--model", model_path, npy("one.npy", EX[0])),
     CLIFailed, ["[exit 2]", "is expecting 2 features", "one sequence of 4 steps x 2 features is "
                 "X.reshape(1, 4, 2)"]),
    ("cli-predict-model-missing", cli("predict", "--model", tmp("nope.npz"), model_path), CLIFailed,
     ["[exit 2]", "Invalid value for '--model'", "does not exist"]),
    ("cli-predict-input-missing", cli("predict", "--model", model_path, tmp("nope.npy")), CLIFailed,
     ["[exit 2]", "Invalid value for 'INPUT'", "does not exist"]),
    ("cli-predict-input-is-directory", cli("predict", "--model", model_path, _TMP.name), CLIFailed,
     ["[exit 2]", "Invalid value for 'INPUT'", "is a directory"]),
    ("cli-predict-input-pickled", cli("predict", "--model", model_path,
                                      npy("obj.npy", np.array([{}], object), allow_pickle=True)),
     CLIFailed, ["[exit 2]", "cannot read INPUT", "obj.npy", "Object arrays cannot be loaded"]),
    ("cli-predict-input-text", cli("predict", "--model", model_path, raw_file("t.npy", b"1,2,3\n")),
     CLIFailed, ["[exit 2]", "cannot read INPUT", "t.npy", "a text file? read it with numpy.loadtxt"]),
    ("cli-predict-input-features", cli("predict", "--model", model_path, npy("f.npy", EX[:, :, :1])),
     CLIFailed, ["[exit 2]", "X has 1 features, but RNNClassifier is expecting 2"]),
    ("cli-predict-input-nan", cli("predict", "--model", model_path, npy("n.npy", with_nan(EX))),
     CLIFailed, ["[exit 2]", "Input X contains NaN or inf (1 non-finite of 128 values)"]),
    ("cli-predict-input-complex", cli("predict", "--model", model_path,
                                      npy("c.npy", EX.astype(np.complex128))),
     CLIFailed, ["[exit 2]", "Complex data not supported"]),
    ("cli-predict-input-text-npz", cli("predict", "--model", model_path,
                                       raw_file("t.npz", b"1,2,3\n")), CLIFailed,
     ["[exit 2]", "t.npz' is not an .npz archive: it does not start like one"]),
    ("cli-predict-npz-ambiguous", cli("predict", "--model", model_path, npz("two.npz", a=EX, b=EX)),
     CLIFailed, ["[exit 2]", "two.npz holds ['a', 'b']", "name the input array 'X'"]),
    ("cli-predict-model-not-rnnx", cli("predict", "--model", npz("plain.npz", a=EX), model_path),
     CLIFailed, ["[exit 2]", "plain.npz", "is not an rnnx model file"]),
    ("cli-predict-proba-regressor", cli("predict", "--proba", "--model", lambda: _saved_regressor(),
                                        npy("r.npy", EX)), CLIFailed,
     ["[exit 2]", "--proba needs a classifier; this model is a regressor"]),
]


def _saved_regressor() -> str:
    path = tmp("reg.npz")
    if not os.path.exists(path):
        save_model(fitted_regressor(), path)
    return path


@pytest.fixture(scope="module", autouse=True)
def _cli_files():
    """Files the subprocess entries name relative to the catalogue's directory."""
    saved_model()
    truncated_model()
    np.save(tmp("x.npy"), EX)
    with open(tmp("empty.npy"), "wb"):
        pass


CATALOGUE = FUNCTIONAL + LAYER + ESTIMATOR + FILES + CLI


@pytest.mark.parametrize(("thunk", "exc", "parts"), [c[1:] for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])
def test_bad_input_is_refused_clearly(thunk, exc, parts):
    with pytest.raises(exc) as info:
        thunk()
    msg = str(info.value)
    for part in parts:
        assert part in msg, f"message {msg!r} lacks {part!r}"


def test_catalogue_ids_are_unique():
    ids = [c[0] for c in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert len(CATALOGUE) >= 40


def test_docs_quote_the_catalogue_size():
    """README.md and docs/hardening.md say how many bad inputs the catalogue holds: this one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    n = len(CATALOGUE)
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        assert f"catalogue of {n} bad inputs" in f.read()
    with open(os.path.join(root, "docs", "hardening.md"), encoding="utf-8") as f:
        assert f"**{n} bad inputs**" in f.read()
