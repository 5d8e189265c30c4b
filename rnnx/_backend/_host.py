"""Data between the host and the backends: a copy of any array as NumPy (:func:`to_numpy`), the
single route by which host data enters a backend (:func:`from_host`), moves between devices and
libraries, the host random generator that makes a seed mean the same weights on every backend,
the host namespace, and a device synchronisation for timers.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from .._typing import Array, Device, DType, Namespace
from ._namespaces import backend_name, device, float64_unavailable, namespace

__all__ = [
    "HostArray",
    "HostGenerator",
    "from_host",
    "host_namespace",
    "host_rng",
    "move_to",
    "synchronize",
    "to_device",
    "to_numpy",
]

#: Types for annotations outside this package, which imports no backend library: a NumPy array
#: on the host, and the NumPy random ``Generator`` that draws every seeded thing on the host.
HostArray = np.ndarray
HostGenerator = np.random.Generator


def to_numpy(x: Array) -> np.ndarray:
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


def to_device(x: Array, dev: Device) -> Array:
    """``x`` moved to device ``dev`` of its own library (``x`` itself if it is already there)."""
    if device(x) == dev:
        return x
    return array_api_compat.to_device(x, dev)


def move_to(a: Array, *, xp: Namespace, device: Device) -> Array:
    """``a`` — an array of any supported library, or host data — as an array of ``xp`` on
    ``device``: ``a`` itself if it is already there, a device-to-device move within one library,
    and otherwise through the host (the only route between two libraries)."""
    if not (hasattr(a, "shape") and hasattr(a, "dtype")):
        return from_host(a, xp=xp, device=device)
    if backend_name(namespace(a)) != backend_name(xp):
        return from_host(to_numpy(a), xp=xp, device=device)
    return to_device(a, device)


def from_host(a: Array, *, xp: Namespace, device: Device = None, dtype: DType = None) -> Array:
    """Move host data ``a`` (a NumPy array or nested sequence) into namespace ``xp``.

    The result is on ``device`` (``xp``'s default device if ``None``) with ``dtype`` (an ``xp``
    dtype; ``None`` keeps the host dtype). This is the only route by which host data enters a
    backend, so a seeded host draw lands bit-identically on every backend.
    """
    host = np.ascontiguousarray(np.asarray(a))
    if (dtype is not None and dtype == getattr(xp, "float64", None)) or (
            dtype is None and host.dtype == np.float64):
        why = float64_unavailable(xp)
        if why:  # refused before JAX narrows it with only a warning
            raise TypeError(f"{backend_name(xp)} cannot hold float64 here: {why}")
    arr = xp.asarray(host, device=device) if device is not None else xp.asarray(host)
    if dtype is not None and arr.dtype != dtype:
        arr = xp.astype(arr, dtype)
    want = dtype if dtype is not None else getattr(xp, host.dtype.name, None)
    if want is not None and arr.dtype != want:
        if dtype is None and host.dtype.kind in "iu" and _holds(xp, arr.dtype, host):
            # JAX without x64 keeps integers (indices, lengths, labels) in 32 bits: exact for
            # these values, so nothing is lost.
            return arr
        # JAX without x64 turns float64 into float32 with only a warning: never lose precision
        # silently.
        hint = (" (JAX needs JAX_ENABLE_X64=1 for 64-bit dtypes)" if backend_name(xp) == "jax"
                else "")
        got, wanted = (getattr(d, "__name__", str(d)) for d in (arr.dtype, want))
        raise TypeError(f"{backend_name(xp)} made {got} of a requested {wanted}{hint}")
    return arr


def _holds(xp: Any, dtype: Any, host: np.ndarray) -> bool:
    """Whether integer ``dtype`` of ``xp`` represents every value of the host array."""
    try:
        info = xp.iinfo(dtype)
    except (TypeError, ValueError):
        return False
    return host.size == 0 or (info.min <= int(host.min()) and int(host.max()) <= info.max)


def host_rng(seed: int | None = None) -> np.random.Generator:
    """The host random generator: every random draw in rnnx comes from one of these."""
    return np.random.default_rng(seed)


def host_namespace() -> Namespace:
    """The Array API namespace of host (NumPy) arrays, for host-side draws such as QR."""
    import array_api_compat.numpy as hnp

    return hnp


def synchronize(x: Array) -> None:
    """Wait until the device holding ``x`` has finished queued work (for timing; no-op on CPU)."""
    if array_api_compat.is_cupy_array(x):
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif array_api_compat.is_torch_array(x) and x.device.type == "cuda":
        import torch

        torch.cuda.synchronize(x.device)
