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

import contextlib
import functools
import importlib
import os
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "BACKENDS",
    "BackendStatus",
    "atomic_path",
    "available_backends",
    "backend_name",
    "device",
    "devices",
    "float_errors_checked_by_caller",
    "from_host",
    "get_namespace",
    "has_one_device",
    "host_namespace",
    "host_rng",
    "known_namespace",
    "limit_threads",
    "load_npz",
    "move_to",
    "namespace",
    "prefers_exp_tanh",
    "save_npz_atomic",
    "synchronize",
    "to_device",
    "to_numpy",
    "torch_module",
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


# Namespace per array type, for the libraries rnnx knows (their namespace is a function of the
# type alone), filled on first use: array_api_compat.array_namespace inspects every argument on
# every call (~4.4 µs for four NumPy arrays), a cost the seed-sized case pays twice per
# forward + backward. Any other type always takes the full lookup.
_NAMESPACE_BY_TYPE: dict[type, Any] = {}


def _known_array_type(a: Any) -> bool:
    return (array_api_compat.is_numpy_array(a) or array_api_compat.is_torch_array(a)
            or array_api_compat.is_cupy_array(a) or array_api_compat.is_jax_array(a)
            or type(a).__module__.startswith("array_api_strict"))


def known_namespace(arrays: list[Any]) -> Any:
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


def namespace(*arrays: Any) -> Any:
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
        _NAMESPACE_BY_TYPE[kind] = xp
    return xp


def has_one_device(xp: Any) -> bool:
    """Whether every array of namespace ``xp`` is on the same device (NumPy: the CPU), so a
    same-device check across arguments can be skipped."""
    return array_api_compat.is_numpy_namespace(xp)


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


def to_device(x: Any, dev: Any) -> Any:
    """``x`` moved to device ``dev`` of its own library (``x`` itself if it is already there)."""
    if device(x) == dev:
        return x
    return array_api_compat.to_device(x, dev)


def move_to(a: Any, *, xp: Any, device: Any) -> Any:
    """``a`` — an array of any supported library, or host data — as an array of ``xp`` on
    ``device``: ``a`` itself if it is already there, a device-to-device move within one library,
    and otherwise through the host (the only route between two libraries)."""
    if not (hasattr(a, "shape") and hasattr(a, "dtype")):
        return from_host(a, xp=xp, device=device)
    if backend_name(namespace(a)) != backend_name(xp):
        return from_host(to_numpy(a), xp=xp, device=device)
    return to_device(a, device)


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
    want = dtype if dtype is not None else getattr(xp, host.dtype.name, None)
    if want is not None and arr.dtype != want:
        # JAX without x64 turns float64 into float32 with only a warning: never lose precision
        # silently.
        hint = " (JAX needs JAX_ENABLE_X64=1 for float64)" if backend_name(xp) == "jax" else ""
        got, wanted = (getattr(d, "__name__", str(d)) for d in (arr.dtype, want))
        raise TypeError(f"{backend_name(xp)} made {got} of a requested {wanted}{hint}")
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


@functools.cache
def _numpy_tanh_f64_is_scalar() -> bool:
    """Whether NumPy's float64 ``tanh`` runs as a scalar libm loop here: on x86 CPUs without
    AVX-512 (NumPy vectorises it only for its ``AVX512_SKX`` dispatch target), read from
    NumPy's runtime CPU-feature table. Elsewhere (ARM, unknown) the answer is no, which keeps
    ``xp.tanh``."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return False
    return bool(features.get("AVX2")) and not features.get("AVX512_SKX")


@functools.cache
def prefers_exp_tanh(xp: Any, dtype: Any) -> bool:
    """Whether the cells should evaluate tanh as ``1 - 2/(1 + exp(2a))``
    (:func:`rnnx.functional._activations.exp_tanh`) rather than ``xp.tanh``.

    True only for NumPy (and array-api-strict, which computes with NumPy) in float64 on an x86
    CPU without AVX-512, where NumPy's ``tanh`` is a scalar loop (~14 ns an element) and the
    exp-based form measured ~2x faster at (128, 256); with AVX-512 NumPy's own is ~2x faster
    than the formula. torch, CuPy and JAX have vectorised tanh kernels of their own. Cached per
    (namespace, dtype): the cells ask once per call.
    """
    return (backend_name(xp) in ("numpy", "array_api_strict") and dtype == xp.float64
            and _numpy_tanh_f64_is_scalar())


def writeable(x: Any) -> bool:
    """Whether ``x`` supports ``x[...] = value`` (False for JAX's immutable arrays), so maths code
    can fill a buffer it allocated in place and fall back to building a list otherwise."""
    return array_api_compat.is_writeable_array(x)


def host_namespace() -> Any:
    """The Array API namespace of host (NumPy) arrays, for host-side draws such as QR."""
    import array_api_compat.numpy as hnp

    return hnp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it is flushed to disk, given the
    permissions a new file would get (``0o666`` less the umask; ``mkstemp`` makes ``0o600``) and
    renamed over ``path`` with ``os.replace``, so readers see the old file or the new one, never
    a partial write. On error the temporary file is removed and ``path`` is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_npz_atomic(path: str | os.PathLike, arrays: dict[str, Any]) -> None:
    """Write host ``arrays`` to ``path`` as an uncompressed ``.npz``, atomically
    (:func:`atomic_path`). ``path`` is used exactly as given (no ``.npz`` is appended). Object
    arrays are refused, so the file always loads with ``allow_pickle=False``.
    """
    host = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in host.items():
        if v.dtype.hasobject:
            raise TypeError(f"array {k!r} has dtype object; rnnx files never hold pickled objects")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **host)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, read with ``allow_pickle=False``.

    Raises ``ValueError`` naming the path for anything but a sound ``.npz``: a file that is not
    one, a truncated or corrupted archive (zip CRC or structure errors), and an archive holding
    an object array (which only pickle could read; nothing is ever unpickled).
    """
    path = os.fspath(path)
    # The file is opened here, not by np.load: np.load leaks its handle when the zip directory
    # is damaged (it hands the handle to NpzFile, whose constructor then raises).
    with open(path, "rb") as fh:
        try:
            data = np.load(fh, allow_pickle=False)
        except zipfile.BadZipFile as exc:  # starts like a zip, but its directory is missing
            raise ValueError(f"{path!r} is a truncated or corrupted .npz archive ({exc})") from None
        except (ValueError, EOFError) as exc:  # not a NumPy file, or one that needs pickle
            raise ValueError(f"{path!r} is not an .npz archive readable without pickle ({exc})") \
                from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path!r} is a single .npy array, not an .npz archive")
        out = {}
        with data:
            for k in data.files:
                try:
                    out[k] = data[k]
                except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
                    raise ValueError(f"{path!r} is a truncated or corrupted .npz archive: entry "
                                     f"{k!r} cannot be read ({exc})") from None
                except ValueError as exc:
                    if "allow_pickle" in str(exc):
                        raise ValueError(f"{path!r} holds an object array {k!r} that only pickle "
                                         "could read; rnnx never unpickles files") from None
                    raise ValueError(f"{path!r}: entry {k!r} cannot be read ({exc})") from None
    return out


@contextlib.contextmanager
def float_errors_checked_by_caller() -> Iterator[None]:
    """Silence NumPy's overflow/invalid/divide warnings (and ``np.seterr(all="raise")``) in the
    block, for NumPy and array-api-strict (which computes with NumPy). Only for code that checks
    its results itself: training looks at every epoch's loss and weights and raises
    ``TrainingDivergedError``, which a warning raised mid-batch (``-W error``) would pre-empt
    before the model is restored. Other backends do not warn; nothing to do there."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        yield


@contextlib.contextmanager
def limit_threads(n: int | None) -> Iterator[bool]:
    """Run the block with at most ``n`` CPU threads in BLAS/OpenMP (through ``threadpoolctl``,
    when it is installed) and in torch (if already imported); ``None`` changes nothing.

    Recurrent training multiplies small matrices step by step; extra BLAS threads do not speed
    those up, and on a busy machine their spin-waiting slows them down several times. Yields
    whether the BLAS limit could be applied. Previous settings are restored on exit.
    """
    if n is None:
        yield True
        return
    with contextlib.ExitStack() as stack:
        applied = False
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=n))
            applied = True
        except ImportError:
            pass
        torch = sys.modules.get("torch")
        if torch is not None:
            before = torch.get_num_threads()
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, before)
        yield applied


def torch_module() -> Any:
    """The ``torch`` module, imported on first use (for :mod:`rnnx.interop`, which builds
    ``torch.nn`` modules); ``RuntimeError`` with the reason if torch cannot run here."""
    status = _status("torch")
    if not status.available:
        raise RuntimeError(f"torch is needed here but unavailable: {status.reason}")
    return importlib.import_module("torch")
