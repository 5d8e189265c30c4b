"""The catalogue of bad inputs: each is refused with the right exception type and a message
that names the argument, what was expected and what was given. Nothing is broadcast, cast,
truncated or lost silently.

Each entry is ``(id, thunk, exception type, [substrings the message must contain])``.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnx import SimpleRNN
from rnnx.functional import rnn_backward, rnn_forward

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

CATALOGUE = FUNCTIONAL + LAYER


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
