"""The one module that knows backend libraries.

Everything else in rnnx gets its array namespace from its inputs (:func:`namespace`) and never
imports NumPy, CuPy, PyTorch, JAX or array-api-strict for computation. This module does the few
things that cannot be written against the standard:

* namespace lookup from arrays and by backend name,
* whether a backend can run here, and why not (CuPy without a CUDA device is detected lazily,
  once, on first use),
* the device of an array and a device synchronisation for timers,
* host transfer at the edges (:func:`to_numpy`, :func:`from_host`) and the host random
  generator that makes a seed mean the same weights on every backend.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "BACKENDS",
    "BackendStatus",
    "available_backends",
    "backend_name",
    "device",
    "devices",
    "from_host",
    "get_namespace",
    "host_namespace",
    "host_rng",
    "namespace",
    "synchronize",
    "to_numpy",
    "writeable",
]

#: Backend names rnnx knows, in the order tables list them.
BACKENDS: tuple[str, ...] = ("numpy", "array_api_strict", "torch", "cupy", "jax")

# The module each backend name needs importing (its distribution name may differ).
_MODULES = {
    "numpy": "numpy",
    "array_api_strict": "array_api_strict",
    "torch": "torch",
    "cupy": "cupy",
    "jax": "jax.numpy",
}


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can run on this machine; ``reason`` says why not (empty if it can)."""

    name: str
    available: bool
    reason: str = ""
    version: str = ""

    def __str__(self) -> str:
        if self.available:
            return f"{self.name} {self.version}: available"
        return f"{self.name}: unavailable: {self.reason}"


def namespace(*arrays: Any) -> Any:
    """Array API namespace shared by ``arrays`` (``None`` entries are ignored).

    Raises ``TypeError`` naming the namespaces when arrays from different libraries are mixed,
    and when an argument is not an array at all.
    """
    present = [a for a in arrays if a is not None]
    if not present:
        raise TypeError("no arrays given: cannot infer an array namespace")
    try:
        return array_api_compat.array_namespace(*present)
    except TypeError as exc:
        kinds = sorted({f"{type(a).__module__}.{type(a).__qualname__}" for a in present})
        raise TypeError(
            f"arrays must all come from one array library (one namespace); got {', '.join(kinds)}"
        ) from exc


def backend_name(xp: Any) -> str:
    """Name of the backend behind namespace ``xp`` (one of :data:`BACKENDS`, or its module)."""
    if array_api_compat.is_numpy_namespace(xp):
        return "numpy"
    if array_api_compat.is_cupy_namespace(xp):
        return "cupy"
    if array_api_compat.is_torch_namespace(xp):
        return "torch"
    if array_api_compat.is_array_api_strict_namespace(xp):
        return "array_api_strict"
    if array_api_compat.is_jax_namespace(xp):
        return "jax"
    return getattr(xp, "__name__", repr(xp))


def get_namespace(name: str) -> Any:
    """Array API namespace of backend ``name`` (``"numpy"``, ``"cupy"``, ``"torch"``, ...).

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` (with the reason) for a known
    backend that cannot run here.
    """
    if name not in _MODULES:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    status = _status(name)
    if not status.available:
        raise RuntimeError(f"backend {name!r} is unavailable: {status.reason}")
    if name == "array_api_strict":
        return importlib.import_module("array_api_strict")
    if name == "jax":
        return importlib.import_module("jax.numpy")
    return importlib.import_module(f"array_api_compat.{name}")


@functools.cache
def _status(name: str) -> BackendStatus:
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as exc:
        return BackendStatus(name, False, f"not installed ({exc.msg})")
    top = importlib.import_module(_MODULES[name].split(".")[0])
    version = getattr(top, "__version__", "")
    if name == "cupy":
        reason = _cuda_unavailable_reason(module)
        if reason:
            return BackendStatus(name, False, reason, version)
    return BackendStatus(name, True, "", version)


def _cuda_unavailable_reason(cupy: Any) -> str:
    # cupy imports fine without a GPU; `is_available()` is False and the first allocation raises
    # CUDARuntimeError. Ask both so a broken driver is reported too, not only a missing device.
    try:
        if not cupy.cuda.is_available():
            return "no CUDA device"
        cupy.zeros(1).sum().item()
    except Exception as exc:  # any CUDA failure means "cannot run here"
        return f"no usable CUDA device ({type(exc).__name__}: {exc})"
    return ""


def available_backends() -> dict[str, BackendStatus]:
    """For every name in :data:`BACKENDS`, whether it can run here and, if not, why.

    The answer is computed once per process (importing a library or probing CUDA is slow).
    """
    return {name: _status(name) for name in BACKENDS}


def device(x: Any) -> Any:
    """Device of array ``x`` in its own library's terms."""
    return array_api_compat.device(x)


def devices(name: str) -> list[Any]:
    """Devices of backend ``name`` that arrays can be put on here (default device first)."""
    xp = get_namespace(name)
    if name == "array_api_strict":
        info = xp.__array_namespace_info__()
        return [info.default_device(), xp.Device("device1")]
    if name == "torch":
        import torch

        found: list[Any] = [torch.device("cpu")]
        if torch.cuda.is_available():
            found.append(torch.device("cuda", 0))
        return found
    if name == "cupy":
        import cupy

        return [cupy.cuda.Device(i) for i in range(cupy.cuda.runtime.getDeviceCount())]
    if name == "jax":
        import jax

        return list(jax.devices())
    return ["cpu"]


def to_numpy(x: Any) -> np.ndarray:
    """Copy array ``x`` (any supported namespace, any device) to a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_array_api_strict_namespace(array_api_compat.array_namespace(x)):
        # array-api-strict refuses to export its "other" devices through DLPack.
        import array_api_strict

        x = array_api_strict.asarray(x, device=array_api_strict.Device("CPU_DEVICE"), copy=True)
        return np.from_dlpack(x)
    return np.asarray(x)


def from_host(a: Any, *, xp: Any, device: Any = None, dtype: Any = None) -> Any:
    """Move host data ``a`` (a NumPy array or nested sequence) into namespace ``xp``.

    The result is on ``device`` (``xp``'s default device if ``None``) with ``dtype`` (an ``xp``
    dtype; ``None`` keeps the host dtype). This is the only route by which host data enters a
    backend, so a seeded host draw lands bit-identically on every backend.
    """
    host = np.ascontiguousarray(np.asarray(a))
    arr = xp.asarray(host, device=device) if device is not None else xp.asarray(host)
    if dtype is not None and arr.dtype != dtype:
        arr = xp.astype(arr, dtype)
    return arr


def host_rng(seed: int | None = None) -> np.random.Generator:
    """The host random generator: every random draw in rnnx comes from one of these."""
    return np.random.default_rng(seed)


def synchronize(x: Any) -> None:
    """Wait until the device holding ``x`` has finished queued work (for timing; no-op on CPU)."""
    if array_api_compat.is_cupy_array(x):
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif array_api_compat.is_torch_array(x) and x.device.type == "cuda":
        import torch

        torch.cuda.synchronize(x.device)


def writeable(x: Any) -> bool:
    """Whether ``x`` supports ``x[...] = value`` (False for JAX's immutable arrays), so maths code
    can fill a buffer it allocated in place and fall back to building a list otherwise."""
    return array_api_compat.is_writeable_array(x)


def host_namespace() -> Any:
    """The Array API namespace of host (NumPy) arrays, for host-side draws such as QR."""
    import array_api_compat.numpy as hnp

    return hnp
