"""Which backends rnnx knows and whether each can run on this machine: every name in
:data:`BACKENDS` is probed once per process (import, version and, for CuPy, a usable CUDA
device), and a backend that cannot run carries the reason in its :class:`BackendStatus`.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["BACKENDS", "BackendStatus", "available_backends", "status", "torch_module"]

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


def is_known(name: Any) -> bool:
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
