"""Backend x device x dtype fixtures.

``RNNX_BACKENDS`` (comma-separated names; ``torch-cuda`` selects torch on its CUDA device alone)
restricts the matrix; nox sets it per session. A backend or device that cannot run here is
skipped inside the fixture, with the reason — unless ``RNNX_REQUIRE_BACKENDS`` names it (a
backend, or ``torch-cuda``): then the session refuses to start, and the fixture fails.
"""

from __future__ import annotations

import enum
import importlib.util
import os

# JAX takes 75 % of a GPU's memory at its first array unless told otherwise; under pytest -n
# several worker processes (and CuPy or torch beside them) would each ask for it. Set before
# anything imports JAX; a value the user set wins.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import numpy as np
import pytest

from rnnx._backend import (
    BACKENDS,
    REQUIRE_ENV,
    available_backends,
    devices,
    float64_unavailable,
    from_host,
    get_namespace,
    required_backends,
    requirement_status,
    settle_torch_cpu_kernels,
)


class Backend(enum.Enum):
    NUMPY = "numpy"
    ARRAY_API_STRICT = "array_api_strict"
    TORCH = "torch"
    CUPY = "cupy"
    JAX = "jax"


# (backend, device label): the strict "device1" is the stand-in for an accelerator namespace —
# arrays there refuse to mix with default-device arrays, so a missing `device=` shows up as an
# error. Devices are resolved in the fixture, so collection never touches a GPU.
_DEVICE_LABELS = {
    "numpy": ["cpu"],
    "array_api_strict": ["default", "device1"],
    "torch": ["cpu", "cuda"],
    "cupy": ["cuda"],
    "jax": ["default"],
}


# Selection names beyond the backends': one backend on one device.
_ONE_DEVICE = {"torch-cuda": ("torch", "cuda")}


def _selected() -> list[tuple[str, str]]:
    raw = os.environ.get("RNNX_BACKENDS", "").strip()
    names = [n.strip() for n in raw.split(",") if n.strip()] or list(BACKENDS)
    unknown = sorted(set(names) - set(BACKENDS) - set(_ONE_DEVICE))
    if unknown:
        raise pytest.UsageError(f"RNNX_BACKENDS names unknown backends {unknown}; know "
                                f"{(*BACKENDS, *_ONE_DEVICE)}")
    combos = [c for n in names
              for c in ([_ONE_DEVICE[n]] if n in _ONE_DEVICE else
                        [(n, d) for d in _DEVICE_LABELS[n]])]
    return list(dict.fromkeys(combos))


def _required() -> tuple[str, ...]:
    try:
        return required_backends()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config):
    """Fail fast: a required backend that cannot run here stops the session before collection,
    naming the reason, instead of a run of skips that looks green."""
    if importlib.util.find_spec("torch") is not None:
        # torch is the oracle in every session: its first concurrent VML calls can be
        # low-accuracy (pytorch/pytorch#188792), so settle them before any test calls torch.
        settle_torch_cpu_kernels()
    unmet = [s for s in map(requirement_status, _required()) if not s.available]
    if unmet:
        raise pytest.UsageError(f"{REQUIRE_ENV} requires what cannot run here: "
                                + "; ".join(f"{s.name}: {s.reason}" for s in unmet))


_COMBOS = _selected()


def _unavailable(requirement: str, reason: str):
    """Skip with ``reason``, or fail with it where ``requirement`` is required."""
    if requirement in _required():
        pytest.fail(f"{requirement} is required ({REQUIRE_ENV}) but unavailable: {reason}",
                    pytrace=False)
    pytest.skip(f"{requirement}: unavailable: {reason}")


def _resolve(name: str, label: str):
    status = available_backends()[name]
    if not status.available:
        _unavailable(name, status.reason)
    xp = get_namespace(name)
    devs = devices(name)
    if label in ("cpu", "default"):
        return xp, devs[0]
    if name == "torch" and label == "cuda":
        cuda = [d for d in devs if getattr(d, "type", "") == "cuda"]
        if not cuda:
            _unavailable("torch-cuda", requirement_status("torch-cuda").reason
                         or "no CUDA device visible to torch")
        return xp, cuda[0]
    if name == "array_api_strict" and label == "device1":
        return xp, devs[1]
    return xp, devs[0]


@pytest.fixture(params=_COMBOS, ids=[f"{b}-{d}" for b, d in _COMBOS])
def backend(request):
    """``(name, xp, device)`` for every selected backend/device that can run here."""
    name, label = request.param
    xp, dev = _resolve(name, label)
    return name, xp, dev


@pytest.fixture
def xp(backend):
    return backend[1]


@pytest.fixture
def device(backend):
    return backend[2]


@pytest.fixture(params=["float32", "float64"])
def dtype(request, xp):
    if request.param == "float64":
        reason = float64_unavailable(xp)
        if reason:
            pytest.skip(reason)
    return getattr(xp, request.param)


@pytest.fixture
def put(xp, device):
    """``put(host_array, dtype)``: move a host array to the fixture's backend and device."""

    no64 = float64_unavailable(xp)

    def _put(a, dtype=None):
        a = np.asarray(a)
        if no64:
            # JAX without x64 has 32-bit types only: a float64 case cannot run (rnnx refuses
            # it), integer data (labels, lengths) go over as int32, which holds them exactly.
            if dtype == xp.float64 or (dtype is None and a.dtype == np.float64):
                pytest.skip(no64)
            if dtype == xp.int64 or (dtype is None and a.dtype == np.int64):
                a, dtype = a.astype(np.int32), xp.int32
        return from_host(a, xp=xp, device=device, dtype=dtype)

    return _put


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)
