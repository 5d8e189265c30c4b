"""One-off costs a backend pays on first use, said before they are paid.

CuPy compiles each CUDA kernel the first time a process on a machine needs it (NVRTC; about 20 s
for what ``rnnx train`` uses) and keeps the binaries in its kernel cache, so later runs skip it.
On the first GPU run ``rnnx train --backend cupy`` took 27.6 s against 1.7 s once the cache was
warm, with no word of why: :func:`first_use_note` gives the line to print before such a run.
Standard library only: CuPy's cache is a folder, read without importing CuPy.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cupy_kernel_cache", "first_use_note"]


def cupy_kernel_cache() -> Path | None:
    """CuPy's on-disk kernel cache folder (``CUPY_CACHE_DIR``, default
    ``~/.cupy/kernel_cache``), or ``None`` where CuPy keeps kernels in memory only
    (``CUPY_CACHE_IN_MEMORY=1``: every process compiles again)."""
    if os.environ.get("CUPY_CACHE_IN_MEMORY", "0") not in ("", "0"):
        return None
    raw = os.environ.get("CUPY_CACHE_DIR")
    return Path(raw).expanduser() if raw else Path.home() / ".cupy" / "kernel_cache"


def _holds_kernels(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(e.is_file() and not e.name.startswith(".") for e in entries)
    except OSError:  # absent or unreadable: nothing cached
        return False


def first_use_note(backend: str) -> str:
    """One line saying that running on ``backend`` will first compile kernels, or ``""`` when
    nothing is known to be paid: for ``"cupy"``, when its kernel cache holds no kernel (a fresh
    machine) or is kept in memory only."""
    if backend != "cupy":
        return ""
    folder = cupy_kernel_cache()
    if folder is None:
        return ("note    cupy compiles its CUDA kernels in every process (CUPY_CACHE_IN_MEMORY is "
                "set): the first batches wait for it (about 20 s)")
    if _holds_kernels(folder):
        return ""
    return (f"note    cupy compiles its CUDA kernels on first use (about 20 s, once: they are "
            f"cached in {folder})")
