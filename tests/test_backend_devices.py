"""Running on the inputs' own device (rnnx._backend._devices).

The decision — which one device a call's arrays share, or a refusal naming two — is the same
function on every library, so it is tested here on real arrays of the libraries this machine
runs: array-api-strict's ``device1`` (the project's GPU stand-in) and torch's ``meta`` device
make mixed devices without a GPU. The CuPy scope itself runs for real where a CUDA device exists
and is skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import rnnx
import rnnx.diagnostics
import rnnx.losses
import rnnx.optim
from rnnx._backend import (
    common_device,
    device_label,
    device_scope,
    from_host,
    on_device,
    on_input_device,
)
from rnnx.datasets import seed_example
from rnnx.functional.registry import CELLS
from tests.conftest import _resolve


def _strict():
    xp = pytest.importorskip("array_api_strict")
    return xp, xp.Device("device1")


def test_common_device_of_numpy_arrays_is_the_cpu():
    a, b = np.zeros(3), np.ones((2, 2))
    assert common_device(a, None, b) == "cpu"
    assert common_device() is None
    assert common_device(None, None) is None


def test_common_device_refuses_strict_arrays_on_two_devices_naming_both():
    xp, dev1 = _strict()
    a = xp.zeros(3)
    b = xp.zeros(3, device=dev1)
    assert common_device(b, xp.ones(2, device=dev1)) == dev1
    with pytest.raises(ValueError, match=r"on one device.*argument 0 is on CPU_DEVICE but "
                                         r"argument 1 is on device1"):
        common_device(a, b)
    with pytest.raises(ValueError, match="x is on device1 but h0 is on CPU_DEVICE"):
        common_device(b, None, a, names=("x", "w", "h0"))


def test_common_device_refuses_torch_cpu_and_meta_naming_both():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="w_x is on cpu but w_h is on meta"):
        common_device(torch.zeros(2), torch.zeros(2, device="meta"), names=("w_x", "w_h"))


def test_the_scope_is_a_no_op_off_cupy_and_leaves_the_refusal_to_the_maths():
    """Off CuPy every library places arrays where ``device=`` says, so nothing is entered; a
    call spread over devices is still refused, by the functional checks, naming both."""
    xp, dev1 = _strict()
    for args in [(np.zeros(2),), (xp.zeros(2), xp.zeros(2, device=dev1)), (), (None,)]:
        with on_device(*args):
            pass
    for dev, backend in [(None, None), ("cpu", "numpy"), (dev1, "array_api_strict"),
                         (None, "cupy")]:
        with device_scope(dev, backend=backend):
            pass
    a = {k: from_host(v, xp=xp, device=dev1) for k, v in seed_example().items()}
    with pytest.raises(ValueError, match=r"device1.*CPU_DEVICE|CPU_DEVICE.*device1"):
        rnnx.rnn_forward(a["x"], a["w_x"], a["w_h"], from_host(seed_example()["b"], xp=xp))


def test_decorated_functions_keep_their_name_signature_results_and_errors():
    def f(x, w, *, scale=2.0):
        """doc"""
        if scale < 0:
            raise ValueError("scale must be >= 0")
        return x * scale + w

    g = on_input_device(f)
    assert g.__name__ == "f" and g.__doc__ == "doc"
    assert inspect.signature(g) == inspect.signature(f)
    np.testing.assert_array_equal(g(np.ones(2), np.ones(2), scale=3.0), [4.0, 4.0])
    with pytest.raises(ValueError, match="scale must be"):
        g(np.ones(2), np.ones(2), scale=-1.0)
    for name in ("rnn_forward", "rnn_backward", "lstm_forward", "gru_backward",
                 "ln_lstm_forward", "lengths_to_mask", "rnn_forward_checkpointed"):
        assert getattr(rnnx.functional, name).__wrapped__.__name__ == name


def test_results_stay_on_the_inputs_device_through_every_entry_point(backend):
    """Functional call, registry call, layer and estimator: outputs on the inputs' device (the
    scopes change nothing where the maths already was right)."""
    _, xp, dev = backend
    a = {k: from_host(v, xp=xp, device=dev, dtype=xp.float32) for k, v in seed_example().items()}
    hs, cache = rnnx.rnn_forward(a["x"], a["w_x"], a["w_h"], a["b"])
    out, cache2 = CELLS["rnn"].run(a, a["x"])
    assert common_device(hs, out, cache.hs, cache2.hs) == dev
    dx, _, grads = CELLS["rnn"].run_backward(cache2, out)
    assert common_device(dx, *grads.values()) == dev
    layer = rnnx.SimpleRNN.from_weights(a["w_x"], a["w_h"], a["b"])
    assert common_device(layer.forward(a["x"]), a["x"]) == dev


def test_losses_optimizers_and_diagnostics_run_on_the_inputs_device(backend):
    """The entry points outside the cell maths that create arrays (a loss's class range, an
    optimizer's moments, a clipping bound, the diagnostics' norms) put them on the inputs'
    device, and run under the same scope as the cells (CuPy enters the inputs' device)."""
    for f in (rnnx.losses.softmax_cross_entropy, rnnx.losses.mse, rnnx.losses.softmax,
              rnnx.losses.log_softmax, rnnx.optim.global_norm, rnnx.optim.clip_grad_norm,
              rnnx.optim.Optimizer.step, rnnx.diagnostics.state_grad_norms,
              rnnx.diagnostics.network_grad_norms):
        assert f.__wrapped__.__name__ == f.__name__
    _, xp, dev = backend
    rng = np.random.default_rng(0)
    logits = from_host(rng.normal(size=(4, 3)), xp=xp, device=dev, dtype=xp.float32)
    labels = from_host(np.array([0, 2, 1, 2]), xp=xp, device=dev)
    loss, dlogits = rnnx.losses.softmax_cross_entropy(logits, labels)
    err, derr = rnnx.losses.mse(logits, logits * 0.5)
    params = {"w": logits}
    clipped, norm = rnnx.optim.clip_grad_norm({"w": dlogits}, 0.1)
    rnnx.optim.Adam(lr=0.01).step(params, clipped)
    assert common_device(loss, dlogits, err, derr, norm, clipped["w"], params["w"]) == dev
    a = {k: from_host(v, xp=xp, device=dev, dtype=xp.float32) for k, v in seed_example().items()}
    layer = rnnx.SimpleRNN.from_weights(a["w_x"], a["w_h"], a["b"])
    norms = rnnx.diagnostics.state_grad_norms(layer, a["x"], layer.forward(a["x"]))
    assert common_device(*norms.values()) == dev


# ---------------------------------------------------------------------------------------------
# CuPy, for real: runs only where a CUDA device exists (fails where RNNX_REQUIRE_BACKENDS=cupy)


@pytest.fixture
def cupy_devices():
    xp, _ = _resolve("cupy", "cuda")
    import cupy

    return xp, [cupy.cuda.Device(i) for i in range(cupy.cuda.runtime.getDeviceCount())]


def test_cupy_runs_on_the_inputs_device_and_restores_the_current_one(cupy_devices):
    """Data on the last GPU while the first is current: every result lands on the data's GPU,
    and the caller's current device is the same after the call. With one GPU the data's device
    is the current one, and the same checks hold."""
    import cupy

    xp, devs = cupy_devices
    target = devs[-1]
    host = seed_example()
    with cupy.cuda.Device(0):
        a = {k: from_host(v, xp=xp, device=target) for k, v in host.items()}
        hs, cache = rnnx.rnn_forward(a["x"], a["w_x"], a["w_h"], a["b"])
        g = rnnx.rnn_backward(hs, cache)
        mask = rnnx.functional.lengths_to_mask(from_host(np.array([3]), xp=xp, device=target), 3)
        assert cupy.cuda.runtime.getDevice() == 0
        loss, dlogits = rnnx.losses.softmax_cross_entropy(
            hs[:, -1], from_host(np.array([1]), xp=xp, device=target))
        params = {"w": hs[:, -1]}
        rnnx.optim.Adam().step(params, {"w": dlogits})
        assert cupy.cuda.runtime.getDevice() == 0
    assert common_device(hs, *g, mask, loss, dlogits, params["w"]) == target
    np.testing.assert_allclose(hs.get()[:, -1], [[0.79494228, 0.81839002, 0.83939649,
                                                  0.85584174]], atol=5e-9)


def test_cupy_estimator_on_the_last_gpu(cupy_devices):
    import cupy

    from rnnx.models import RNNClassifier

    _, devs = cupy_devices
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(32, 5, 3)), rng.integers(0, 2, size=32)
    with cupy.cuda.Device(0):
        clf = RNNClassifier(hidden_size=8, epochs=2, backend="cupy", device=devs[-1].id,
                            random_state=0).fit(X, y)
        clf.score(X, y)
    assert all(common_device(p) == devs[-1] for p in clf.network_.parameters().values())


def test_cupy_refuses_arrays_on_two_gpus_naming_both(cupy_devices):
    xp, devs = cupy_devices
    if len(devs) < 2:
        pytest.skip(f"needs two CUDA devices; this machine has {len(devs)}")
    host = seed_example()
    a = {k: from_host(v, xp=xp, device=devs[0]) for k, v in host.items()}
    w_h = from_host(host["w_h"], xp=xp, device=devs[1])
    want = f"x is on {device_label(devs[0])} but w_h is on {device_label(devs[1])}"
    with pytest.raises(ValueError, match=re.escape(want)):
        rnnx.rnn_forward(a["x"], a["w_x"], w_h, a["b"])



def test_the_decorators_decision_names_the_arguments_on_strict_device1():
    """The decision the decorator makes for CuPy arrays, run on array-api-strict's arrays (the
    same code, another array kind): positional, keyword and cache-field arguments are named."""
    from rnnx._backend._devices import _PLAIN, call_device

    xp, dev1 = _strict()
    host = seed_example()
    a = {k: from_host(v, xp=xp, device=dev1) for k, v in host.items()}
    w_h0 = from_host(host["w_h"], xp=xp)
    f = rnnx.rnn_forward.__wrapped__
    assert call_device(f, (a["x"], a["w_x"], a["w_h"], a["b"]), {}, _PLAIN) == dev1
    assert call_device(f, (), {}, _PLAIN) is None
    with pytest.raises(ValueError, match="x is on device1 but w_h is on CPU_DEVICE"):
        call_device(f, (a["x"], a["w_x"], w_h0, a["b"]), {}, _PLAIN)
    with pytest.raises(ValueError, match="x is on device1 but h0 is on CPU_DEVICE"):
        call_device(f, (a["x"], a["w_x"], a["w_h"], a["b"]), {"h0": xp.zeros((1, 4))}, _PLAIN)
    _, cache = rnnx.rnn_forward(a["x"], a["w_x"], a["w_h"], a["b"])
    with pytest.raises(ValueError, match=r"dhs is on CPU_DEVICE but cache\[0\] is on device1"):
        call_device(rnnx.rnn_backward.__wrapped__, (xp.zeros((1, 3, 4)), cache), {}, _PLAIN)


def test_every_device_has_one_label_that_selects_it_back(backend):
    """``rnnx check``/``info`` print a device by :func:`device_label` and ``--device`` takes it
    back: the label is one word, a GPU is ``cuda:N`` on every library (CuPy's own string is
    ``<CUDA Device 0>``, torch's and JAX's ``cuda:0``), and the command line resolves it to the
    same device."""
    from rnnx.cli._common import resolve_device as _resolve_device

    name, _, dev = backend
    label = device_label(dev)
    assert label and label.split() == [label], label
    if name == "cupy" or getattr(dev, "type", "") == "cuda" or getattr(dev, "platform", "") == "gpu":
        assert re.fullmatch(r"cuda:\d+", label), label
    assert _resolve_device(name, label) == dev


def test_the_same_gpu_has_the_same_label_on_cupy_and_torch(cupy_devices):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    _, devs = cupy_devices
    assert [device_label(d) for d in devs] == [
        device_label(torch.device("cuda", i)) for i in range(len(devs))]
    from rnnx.cli._common import resolve_device as _resolve_device

    assert _resolve_device("cupy", "cuda") == devs[0]
    assert _resolve_device("cupy", f"cuda:{len(devs) - 1}") == devs[-1]
