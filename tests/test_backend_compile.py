"""A backend's one-off first-use cost is said before it is paid (rnnx._backend._compile): CuPy
compiles its kernels on first use (27.6 s of the first GPU run's ``rnnx train --backend cupy``,
against 1.7 s once cached). The note's decision is checked here on any machine; the command's
line itself, cold and then warm, where CuPy runs."""

from __future__ import annotations

import subprocess
import sys

from rnnx._backend import cupy_kernel_cache, first_use_note
from tests._subprocess import child_env
from tests.conftest import _resolve


def test_an_empty_or_absent_kernel_cache_is_announced_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CUPY_CACHE_IN_MEMORY", raising=False)
    monkeypatch.setenv("CUPY_CACHE_DIR", str(tmp_path / "absent"))
    assert cupy_kernel_cache() == tmp_path / "absent"
    note = first_use_note("cupy")
    assert "compiles its CUDA kernels on first use" in note and str(tmp_path / "absent") in note
    (tmp_path / "absent").mkdir()
    assert str(tmp_path / "absent") in first_use_note("cupy")  # empty: still cold


def test_a_warm_cache_and_other_backends_say_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("CUPY_CACHE_IN_MEMORY", raising=False)
    monkeypatch.setenv("CUPY_CACHE_DIR", str(tmp_path))
    (tmp_path / "8f3a.cubin").write_bytes(b"\0")
    assert first_use_note("cupy") == ""
    for name in ("numpy", "torch", "array_api_strict"):
        assert first_use_note(name) == ""


def test_an_in_memory_cache_is_announced_every_time(monkeypatch, tmp_path):
    monkeypatch.setenv("CUPY_CACHE_DIR", str(tmp_path))
    (tmp_path / "8f3a.cubin").write_bytes(b"\0")
    monkeypatch.setenv("CUPY_CACHE_IN_MEMORY", "1")
    assert cupy_kernel_cache() is None
    assert "in every process" in first_use_note("cupy")


def test_rnnx_train_on_cupy_says_so_once_when_it_compiles(tmp_path):
    """Two runs of the command on a fresh kernel cache: the first says it compiles, and fills
    the cache; the second says nothing."""
    _resolve("cupy", "cuda")
    env = child_env(CUPY_CACHE_DIR=str(tmp_path / "kernels"), CUPY_CACHE_IN_MEMORY=None)
    cmd = [sys.executable, "-m", "rnnx", "train", "--backend", "cupy", "--hidden-size", "8",
           "--epochs", "1", "--no-progress"]
    runs = [subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                           cwd=tmp_path, check=False) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    first, second = (r.stdout for r in runs)
    assert first.count("compiles its CUDA kernels") == 1, first
    assert "compiles" not in second, second
