"""Array namespaces and devices: the namespace of given arrays (cached per array type for the
libraries rnnx knows), the namespace of a backend by name, the name behind a namespace, the
device of an array and the devices a backend offers here, and whether arrays can be written in
place.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import array_api_compat

from .._typing import Array, Device, Namespace
from ._availability import BACKENDS, is_known, status

__all__ = [
    "backend_name",
    "device",
    "devices",
    "get_namespace",
    "has_one_device",
    "known_namespace",
    "namespace",
    "on_accelerator",
    "settle_torch_cpu_kernels",
    "writeable",
]

# Namespace per array type, for the libraries rnnx knows (their namespace is a function of the
# type alone), filled on first use: array_api_compat.array_namespace inspects every argument on
# every call, a cost the seed-sized case pays twice per forward + backward (measured:
# docs/performance.md, "Per-call overhead"). Any other type always takes the full lookup.
_NAMESPACE_BY_TYPE: dict[type, Any] = {}


@functools.cache
def settle_torch_cpu_kernels() -> bool:
    """Call torch's CPU unary kernels rnnx uses once each, single-threaded, on one element of
    each float dtype, before any real call; returns True (cached: it runs once a process).

    Why: torch's CPU builds resolve each oneMKL VML function lazily on its first call, and
    concurrent first calls from the intra-op worker threads can run a low-accuracy kernel for
    one thread's chunk (pytorch/pytorch#188792, open). Measured here with torch 2.13 on 2
    threads: in about one process in five the first ``tanh`` or ``exp`` of a few thousand
    float32 values returned ~20 % of them with relative errors up to 1.5e-4, ~1000 ulp; after a
    one-element call first, none did. rnnx runs this where it first meets torch (a torch
    namespace by name or from a tensor), so its first forward is as accurate as every later one.
    """
    import torch

    for dtype in (torch.float32, torch.float64):
        one = torch.ones(1, dtype=dtype)
        for op in (torch.exp, torch.expm1, torch.log, torch.log1p, torch.sqrt, torch.tanh,
                   torch.sigmoid):
            op(one)
    return True


def _known_array_type(a: Any) -> bool:
    return (array_api_compat.is_numpy_array(a) or array_api_compat.is_torch_array(a)
            or array_api_compat.is_cupy_array(a) or array_api_compat.is_jax_array(a)
            or type(a).__module__.startswith("array_api_strict"))


def known_namespace(arrays: list[Array]) -> Namespace | None:
    """The namespace of ``arrays`` (a list without ``None``) if they all have one type whose
    namespace is already known, else ``None`` (also for an empty list): one dictionary lookup,
    and a guarantee that every entry is an array of a library rnnx knows."""
    if not arrays:
        return None
    kind = type(arrays[0])
    xp = _NAMESPACE_BY_TYPE.get(kind)
    if xp is not None and all(type(a) is kind for a in arrays):
        return xp
    return None


def namespace(*arrays: Any) -> Namespace:
    """Array API namespace shared by ``arrays`` (``None`` entries are ignored).

    Raises ``TypeError`` naming the namespaces when arrays from different libraries are mixed,
    and when an argument is not an array at all.
    """
    present = [a for a in arrays if a is not None]
    if not present:
        raise TypeError("no arrays given: cannot infer an array namespace")
    xp = known_namespace(present)
    if xp is not None:
        return xp
    kind = type(present[0])
    one_type = all(type(a) is kind for a in present)
    try:
        xp = array_api_compat.array_namespace(*present)
    except TypeError as exc:
        kinds = sorted({f"{type(a).__module__}.{type(a).__qualname__}" for a in present})
        raise TypeError(
            f"arrays must all come from one array library (one namespace); got {', '.join(kinds)}"
        ) from exc
    if one_type and _known_array_type(present[0]):
        if array_api_compat.is_torch_array(present[0]):
            settle_torch_cpu_kernels()  # once, the first time rnnx meets a torch tensor type
        _NAMESPACE_BY_TYPE[kind] = xp
    return xp


def has_one_device(xp: Namespace) -> bool:
    """Whether every array of namespace ``xp`` is on the same device (NumPy: the CPU), so a
    same-device check across arguments can be skipped."""
    return array_api_compat.is_numpy_namespace(xp)


def on_accelerator(x: Array) -> bool:
    """Whether array ``x`` lives on an accelerator (a GPU): CuPy arrays, torch tensors off the
    CPU, JAX arrays on a non-CPU device. NumPy and array-api-strict (whose devices are all the
    host CPU) are not. Maths code asks this to skip what is tuned for CPU caches: on a GPU each
    array call is a kernel launch, and fewer, larger calls win."""
    if array_api_compat.is_numpy_array(x):
        return False
    if array_api_compat.is_cupy_array(x):
        return True
    if array_api_compat.is_torch_array(x):
        return x.device.type != "cpu"
    if array_api_compat.is_jax_array(x):
        return getattr(array_api_compat.device(x), "platform", "cpu") != "cpu"
    return False


def backend_name(xp: Namespace) -> str:
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


def get_namespace(name: str) -> Namespace:
    """Array API namespace of backend ``name`` (``"numpy"``, ``"cupy"``, ``"torch"``, ...).

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` (with the reason) for a known
    backend that cannot run here.
    """
    if not is_known(name):
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    s = status(name)
    if not s.available:
        raise RuntimeError(f"backend {name!r} is unavailable: {s.reason}")
    if name == "array_api_strict":
        return importlib.import_module("array_api_strict")
    if name == "jax":
        return importlib.import_module("jax.numpy")
    xp = importlib.import_module(f"array_api_compat.{name}")
    if name == "torch":
        settle_torch_cpu_kernels()
    return xp


def device(x: Array) -> Device:
    """Device of array ``x`` in its own library's terms."""
    return array_api_compat.device(x)


def devices(name: str) -> list[Device]:
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


def writeable(x: Array) -> bool:
    """Whether ``x`` supports ``x[...] = value`` (False for JAX's immutable arrays), so maths code
    can fill a buffer it allocated in place and fall back to building a list otherwise."""
    return array_api_compat.is_writeable_array(x)


def float64_unavailable(xp: Namespace) -> str:
    """Why namespace ``xp`` cannot compute in float64 here, or ``""`` if it can: JAX keeps
    everything in 32 bits unless ``JAX_ENABLE_X64`` is set (rnnx then refuses float64 rather
    than computing in float32 behind the caller's back)."""
    if array_api_compat.is_jax_namespace(xp):
        import jax

        if not jax.config.jax_enable_x64:
            return "JAX without JAX_ENABLE_X64=1 has no float64"
    return ""


def device_label(d: Device) -> str:
    """A device's short name for tables, messages and the command line, the same on every
    library: ``"cuda:N"`` for GPU ``N`` (torch's ``cuda:0``, JAX's ``cuda:0``, and CuPy's
    ``<CUDA Device 0>`` alike), ``"device1"`` for array-api-strict's ``Device('device1')``, the
    library's own string otherwise (``"cpu"``, ``"cpu:0"``)."""
    if type(d).__module__.startswith("cupy") and isinstance(getattr(d, "id", None), int):
        return f"cuda:{d.id}"  # cupy.cuda.Device prints as <CUDA Device N>
    s = str(d)
    return s.split("'")[1] if s.startswith("array_api_strict.Device(") else s
