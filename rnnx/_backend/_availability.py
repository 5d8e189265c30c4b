"""Which backends rnnx knows and whether each can run on this machine: every name in
:data:`BACKENDS` is probed once per process (import, version and, for CuPy, a usable CUDA
device), and a backend that cannot run carries the reason in its :class:`BackendStatus`.
``RNNX_REQUIRE_BACKENDS`` names backends (and ``torch-cuda``) that must run: where one cannot,
the tests, the nox sessions and ``rnnx check`` fail instead of skipping it
(:func:`required_backends`, :func:`requirement_status`). :func:`cuda_driver_unavailable_reason`
asks the CUDA driver itself, with no CUDA library installed.

This module imports nothing outside the standard library at load time: the noxfile loads it by
path to decide, before installing anything, whether a GPU session can run at all.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["BACKENDS", "REQUIREMENTS", "REQUIRE_ENV", "BackendStatus", "available_backends",
           "cuda_driver_unavailable_reason", "required_backends", "requirement_status", "status",
           "torch_module"]

#: Backend names rnnx knows, in the order tables list them.
BACKENDS: tuple[str, ...] = ("numpy", "array_api_strict", "torch", "cupy", "jax")

#: Names ``RNNX_REQUIRE_BACKENDS`` takes: every backend, and ``torch-cuda`` (torch with a usable
#: CUDA device; ``torch`` alone is satisfied by the CPU).
REQUIREMENTS: tuple[str, ...] = (*BACKENDS, "torch-cuda")
REQUIRE_ENV = "RNNX_REQUIRE_BACKENDS"

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


def is_known(name: object) -> bool:
    """Whether ``name`` is one of :data:`BACKENDS` (the names :func:`status` can probe)."""
    return name in _MODULES


@functools.cache
def status(name: str) -> BackendStatus:
    """Whether backend ``name`` (one of :data:`BACKENDS`) can run here; computed once."""
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
    return {name: status(name) for name in BACKENDS}


def torch_module() -> Any:
    """The ``torch`` module, imported on first use (for :mod:`rnnx.interop`, which builds
    ``torch.nn`` modules); ``RuntimeError`` with the reason if torch cannot run here."""
    s = status("torch")
    if not s.available:
        raise RuntimeError(f"torch is needed here but unavailable: {s.reason}")
    return importlib.import_module("torch")


def required_backends(value: str | None = None) -> tuple[str, ...]:
    """The names in ``value`` (default: ``$RNNX_REQUIRE_BACKENDS``), comma-separated, in order,
    each once; empty if unset. ``ValueError`` naming the known names for an unknown one."""
    raw = os.environ.get(REQUIRE_ENV, "") if value is None else value
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in REQUIREMENTS]
    if unknown:
        raise ValueError(f"{REQUIRE_ENV} names unknown backend(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(REQUIREMENTS)}")
    return names


def requirement_status(name: str) -> BackendStatus:
    """Whether requirement ``name`` (one of :data:`REQUIREMENTS`) is met here, and why not."""
    if name == "torch-cuda":
        s = status("torch")
        if not s.available:
            return BackendStatus(name, False, s.reason)
        return _torch_cuda_status()
    if name not in _MODULES:
        raise ValueError(f"requirement must be one of {', '.join(REQUIREMENTS)}; got {name!r}")
    return status(name)


@functools.cache
def _torch_cuda_status() -> BackendStatus:
    torch = importlib.import_module("torch")
    version = torch.__version__
    if torch.version.cuda is None:
        return BackendStatus("torch-cuda", False, f"torch {version} is a CPU-only build (a CUDA "
                             "build is needed; see RNNX_TORCH_CUDA_INDEX in the README)", version)
    if not torch.cuda.is_available():
        why = cuda_driver_unavailable_reason() or "CUDA driver present"
        return BackendStatus("torch-cuda", False, f"no CUDA device visible to torch ({why})",
                             version)
    try:  # a device can be listed yet unusable (driver too old for the build, device busy)
        torch.zeros(1, device="cuda").sum().item()
    except Exception as exc:
        return BackendStatus("torch-cuda", False,
                             f"no usable CUDA device ({type(exc).__name__}: {exc})", version)
    return BackendStatus("torch-cuda", True, "", version)


def cuda_driver_unavailable_reason() -> str:
    """Why no CUDA device can be used here, asked of the driver itself (``libcuda`` through
    ``ctypes``: ``cuInit`` and ``cuDeviceGetCount``), or ``""`` if at least one device answers.
    Needs no CUDA library but the driver, so it can run before CuPy or torch is installed."""
    lib_name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        lib = ctypes.CDLL(lib_name)
    except OSError as exc:
        hints = []
        if sys.platform.startswith("linux") and not glob.glob("/dev/nvidia[0-9]*"):
            hints.append("no NVIDIA device files")
        if shutil.which("nvidia-smi") is None:
            hints.append("no nvidia-smi")
        extra = f"; {', '.join(hints)}" if hints else ""
        return f"no CUDA driver ({lib_name} cannot be loaded: {exc}{extra})"
    rc = lib.cuInit(0)
    if rc != 0:
        return f"the CUDA driver does not initialise (cuInit: {_cuda_error(lib, rc)})"
    count = ctypes.c_int(0)
    rc = lib.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0:
        return f"the CUDA driver cannot count devices (cuDeviceGetCount: {_cuda_error(lib, rc)})"
    if count.value == 0:
        return "no CUDA device (the driver sees none)"
    return ""


def _cuda_error(lib: Any, rc: int) -> str:
    name = ctypes.c_char_p()
    if lib.cuGetErrorName(rc, ctypes.byref(name)) == 0 and name.value:
        return f"{name.value.decode()} ({rc})"
    return f"error {rc}"
