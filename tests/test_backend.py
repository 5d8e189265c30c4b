"""The backend package: names, availability with reasons, devices and host transfer."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx._backend import (
    BACKENDS,
    available_backends,
    backend_name,
    from_host,
    get_namespace,
    namespace,
    to_numpy,
)
from rnnx._backend import (
    device as device_of,
)


def test_every_backend_has_a_status_with_a_reason_when_unavailable():
    status = available_backends()
    assert tuple(status) == BACKENDS
    assert status["numpy"].available
    for s in status.values():
        assert s.available == (s.reason == ""), s


def test_cupy_without_cuda_device_says_so():
    """Where CuPy imports but no CUDA device is visible (this CI), the reason says exactly that;
    where a GPU is present, CuPy must be available."""
    cupy = pytest.importorskip("cupy")
    s = available_backends()["cupy"]
    if cupy.cuda.is_available():
        assert s.available, s.reason
    else:
        assert not s.available
        assert "no CUDA device" in s.reason


def test_status_is_computed_once():
    assert available_backends()["cupy"] is available_backends()["cupy"]


def test_unknown_backend_name_is_refused():
    with pytest.raises(ValueError, match=r"backend must be one of .*; got 'tensorflow'"):
        get_namespace("tensorflow")


def test_unavailable_backend_raises_with_reason():
    for name, s in available_backends().items():
        if not s.available:
            with pytest.raises(RuntimeError, match=f"backend '{name}' is unavailable: "):
                get_namespace(name)


def test_round_trip_through_every_backend(xp, device, dtype, rng):
    host = rng.normal(size=(3, 4))
    a = from_host(host, xp=xp, device=device, dtype=dtype)
    assert device_of(a) == device
    assert a.dtype == dtype
    assert backend_name(namespace(a)) == backend_name(xp)
    back = to_numpy(a)
    assert isinstance(back, np.ndarray)
    expected = host.astype(np.float32 if dtype == xp.float32 else np.float64)
    np.testing.assert_array_equal(back, expected)


def test_mixed_namespaces_are_named(rng):
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="one array library"):
        namespace(np.ones(2), torch.ones(2))


def test_namespace_per_type_cache_agrees_with_array_api_compat(xp, device, put):
    """The per-type fast path returns what array_api_compat returns, call after call, and a
    mix of libraries still raises once both types are cached."""
    import array_api_compat

    a, b = put(np.ones(3), xp.float64), put(np.zeros((2, 3)), xp.float32)
    expected = array_api_compat.array_namespace(a, b)
    assert namespace(a, b) is expected
    assert namespace(a, None, b) is expected  # second call: from the cache
    torch = pytest.importorskip("torch")
    namespace(torch.ones(2))
    if not array_api_compat.is_torch_array(a):
        with pytest.raises(TypeError, match="one array library"):
            namespace(a, torch.ones(2))


def test_device_of_numpy_array():
    assert device_of(np.ones(2)) == "cpu"


def test_package_re_exports_every_public_name_of_its_modules():
    """Callers import from ``rnnx._backend`` only, so every public name of its modules is there
    (except ``status`` and ``is_known``, which serve the package's own modules)."""
    import importlib

    import rnnx._backend as backend

    internal = {"status", "is_known"}
    for module in ("_availability", "_namespaces", "_host", "_cpu", "_files"):
        mod = importlib.import_module(f"rnnx._backend.{module}")
        for name in set(mod.__all__) - internal:
            assert name in backend.__all__, (module, name)
            assert getattr(backend, name) is getattr(mod, name)
    assert all(hasattr(backend, name) for name in backend.__all__)


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_limit_threads_caps_the_blas_and_says_so():
    """Inside the block every BLAS pool of the process runs one thread (threadpoolctl's own
    view), the report names them; on exit the previous setting (2 here, set first so that the
    cap is visible on any machine) comes back."""
    from threadpoolctl import threadpool_limits

    from rnnx._backend import limit_threads

    with threadpool_limits(limits=2, user_api="blas"):
        assert set(_blas_threads()) == {2}
        with limit_threads(1) as cap:
            assert _blas_threads() and set(_blas_threads()) == {1}
            assert cap and cap.applied and cap.reason == "" and cap.requested == 1
            blas = [p for p in cap.pools if p[1] == "blas"]
            assert blas and all(p[2] == 1 for p in blas)
            names = ", ".join(sorted({p[0] for p in blas}))
            assert cap.describe().startswith(f"BLAS capped at 1 thread ({names} via threadpoolctl)")
        assert set(_blas_threads()) == {2}
        with limit_threads(None) as none:  # no cap: reports the libraries' own counts
            assert set(_blas_threads()) == {2}
            assert not none and none.describe().startswith("not capped (library defaults: ")
            assert "at 2 threads" in none.describe()


def test_limit_threads_without_threadpoolctl_says_why(monkeypatch):
    import sys

    from rnnx._backend import limit_threads

    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails as if not installed
    with limit_threads(1) as cap:
        assert not cap and not cap.applied
        assert "threadpoolctl is not installed" in cap.reason
        assert cap.describe().startswith("BLAS NOT capped: threadpoolctl is not installed")


def test_torch_cpu_kernels_are_settled_where_rnnx_first_meets_torch():
    """pytorch/pytorch#188792: the first concurrent call of a oneMKL VML kernel can run a
    low-accuracy one. rnnx settles them (one single-threaded call each) when it first resolves
    torch, by name or from a tensor; measured: 0 of 35 processes with a bad first tanh/exp after
    it, 3 of 15 without (rnnx._backend._namespaces.settle_torch_cpu_kernels)."""
    torch = pytest.importorskip("torch")
    from rnnx._backend import _namespaces

    _namespaces.settle_torch_cpu_kernels.cache_clear()
    get_namespace("torch")
    assert _namespaces.settle_torch_cpu_kernels.cache_info().currsize == 1
    _namespaces.settle_torch_cpu_kernels.cache_clear()
    _namespaces._NAMESPACE_BY_TYPE.pop(torch.Tensor, None)
    namespace(torch.ones(2))
    assert _namespaces.settle_torch_cpu_kernels.cache_info().currsize == 1
