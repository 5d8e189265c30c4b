"""What the benchmarks share: a worker run in a fresh process (:func:`spawn`, the one worker
dispatch), its BLAS/OpenMP thread environment, what it reports about its threads, the
machine's description, and result files written atomically under ``benchmarks/results``."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["RESULTS", "machine", "spawn", "thread_env", "thread_info", "write_atomic"]

RESULTS = Path(__file__).resolve().parent / "results"


def spawn(module: str, args: list[str], *, stdin: str | None = None, threads: int | None = None,
          what: str = "worker") -> dict:
    """Run ``python -m module --worker *args`` in a fresh process (this repository as the
    working directory, ``stdin`` on its standard input, BLAS/OpenMP pools limited to
    ``threads``); its answer, the last line of its standard output, as JSON. ``RuntimeError``
    with the end of its standard error if it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", module, "--worker", *args], input=stdin, capture_output=True,
        text=True, cwd=Path(__file__).resolve().parent.parent, check=False,
        env=thread_env(threads))
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def thread_env(threads: int | None) -> dict[str, str]:
    """The environment for a worker: unchanged, or every BLAS/OpenMP pool limited to ``threads``."""
    env = dict(os.environ)
    if threads:
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(threads)
    return env


def thread_info(library: str) -> dict:
    info: dict = {}
    if library in ("numpy", "cupy"):
        import numpy as np

        info["numpy"] = np.__version__
    if library == "torch":
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
        found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        info["torch_blas"] = found.group(1) if found else "unknown"
    if library == "jax":
        import jax

        info["jax"] = jax.__version__
        info["jax_devices"] = [str(d) for d in jax.devices()]
    if library == "cupy":
        import cupy

        info["cupy"] = cupy.__version__
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {k: p.get(k) for k in ("internal_api", "num_threads", "version", "architecture")}
            for p in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for everyone to read
    os.replace(tmp, path)


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "thread_env": env}
