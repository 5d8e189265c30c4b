"""The test matrix: one session per backend, an agreement table across backends, lint; and
``nox -s gpu``, the one command for a GPU machine.

``nox`` runs the default sessions; ``nox -s torch`` one of them. The torch oracle is installed as
``$RNNX_TORCH_SPEC`` (default ``torch==2.13.0``, the CPU wheel CI has locally); the package's own
``torch`` extra is unpinned. ``RNNX_REQUIRE_BACKENDS`` (comma-separated backend names, and
``torch-cuda``) turns a session's "skipped: unavailable" into a failure for those names.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "numpy", "array_api_strict", "torch", "cupy", "agreement",
                        "jax-compiled"]
nox.options.error_on_missing_interpreters = False

TORCH = os.environ.get("RNNX_TORCH_SPEC", "torch==2.13.0")
# A CUDA build of torch for `nox -s gpu`: the spec, and the wheel index to take it from (none:
# pip's configured index; the Linux x86-64 `torch` wheels of the main index are CUDA builds).
TORCH_CUDA = os.environ.get("RNNX_TORCH_CUDA_SPEC", "torch")
TORCH_CUDA_INDEX = os.environ.get("RNNX_TORCH_CUDA_INDEX", "")
CUPY = os.environ.get("RNNX_CUPY_SPEC", "cupy-cuda12x")
# JAX for the default run's compiled-path session, pinned: its tests count compilations and read
# traced programs, which a new JAX may change. `nox -s jax` (the whole suite) takes any JAX.
JAX = os.environ.get("RNNX_JAX_SPEC", "jax==0.10.2")
# The compiled JAX path's main tests (about a minute on two cores after the install): the
# executors (HIGHEST precision, programs independent of time, no recompilation in a fit), every
# cell against torch autograd in float64 and central differences, float32 agreement, masks
# against torch's packed sequences and central differences, a network with lengths.
JAX_SLIM = ("tests/test_backend_executors.py", "tests/test_functional_cells.py",
            "tests/test_functional_mask.py", "tests/test_models_cells.py",
            "tests/test_backend_jax_precision.py", "-k",
            "jax_precision or executors or (matches_torch_autograd and long) "
            "or (finite_differences and general) or float32_agrees "
            "or (pack_padded and one-block and lengths) or holes "
            "or network_with_lengths")
PYTEST = ("pytest", "-q", "-p", "no:cacheprovider")


def _availability():
    """rnnx/_backend/_availability.py, loaded by path: it needs only the standard library, so
    this noxfile can read RNNX_REQUIRE_BACKENDS and probe the CUDA driver before anything is
    installed (importing rnnx would need numpy here)."""
    path = Path(__file__).resolve().parent / "rnnx" / "_backend" / "_availability.py"
    spec = importlib.util.spec_from_file_location("_rnnx_availability", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


_AVAIL = _availability()
REQUIRE_ENV = _AVAIL.REQUIRE_ENV
try:
    REQUIRED = _AVAIL.required_backends()
except ValueError as exc:  # an unknown name: stop here, in one line naming the known ones
    sys.exit(f"noxfile: {exc}")

_PROBE = (
    "from rnnx._backend import requirement_status as r; s = r({name!r}); "
    "print('' if s.available else s.reason)"
)


def _install(session: nox.Session, *extra: str) -> None:
    session.install("-e", ".[test]", TORCH, *extra)


# The CPU sessions (numpy, array_api_strict, torch, agreement) need the same packages, so they
# share one environment, built once per nox run: installing torch and the test extra took ~2 min
# a session, more than most sessions' tests. jax, cupy and gpu keep their own environments
# (what is installed decides which backends `rnnx check` and the fixtures see).
_CPU_ENV = Path(".nox") / "cpu-backends"
_CPU_PYTHON: list[str] = []


def _cpu_python(session: nox.Session) -> str:
    """The shared environment's python, created and installed on first use in this nox run;
    with ``nox -r`` / ``-R`` an existing one is kept (and, with ``-R``, not installed into)."""
    if not _CPU_PYTHON:
        python = str(_CPU_ENV / ("Scripts" if os.name == "nt" else "bin") / "python")
        # nox's own reuse flags, read where nox keeps them (a venv_backend="none" session
        # has no environment for nox to reuse itself).
        config = getattr(getattr(session, "_runner", None), "global_config", None)
        reuse = getattr(config, "reuse_venv", "no") in ("yes", "always") and Path(python).exists()
        if not reuse:
            session.run(sys.executable, "-m", "venv", "--clear", str(_CPU_ENV), external=True)
        if not (reuse and getattr(config, "no_install", False)):
            session.run(python, "-m", "pip", "install", "-q", "-e", ".[test]", TORCH,
                        external=True)
        _CPU_PYTHON.append(python)
    return _CPU_PYTHON[0]


def _unavailable_reason(session: nox.Session, name: str, python: str = "python") -> str:
    """Why ``name`` (a backend or ``torch-cuda``) cannot run in the session's environment."""
    out = session.run(python, "-c", _PROBE.format(name=name), silent=True,
                      external=python != "python")
    return (out or "").strip().splitlines()[-1] if (out or "").strip() else ""


def _unavailable(session: nox.Session, name: str, reason: str, why_skip: str) -> None:
    """Fail the session for a required ``name``; skip it otherwise."""
    if name in REQUIRED:
        session.error(f"{name} is required ({REQUIRE_ENV}) but unavailable: {reason}")
    session.skip(f"{name}: {reason}; {why_skip}")


def _backend_tests(session: nox.Session, name: str, *extra: str, shared: bool = False,
                   tests: tuple[str, ...] = ()) -> None:
    """pytest with RNNX_BACKENDS=name (on ``tests``, default all): in the shared CPU environment
    (``shared``), or in the session's own with ``extra`` installed."""
    if shared:
        python = _cpu_python(session)
    else:
        _install(session, *extra)
        python = "python"
    reason = _unavailable_reason(session, name, python)
    if reason:
        _unavailable(session, name, reason, "its tests need it and would all skip")
    if name == "torch" and "torch-cuda" in REQUIRED:
        reason = _unavailable_reason(session, "torch-cuda", python)
        if reason:
            _unavailable(session, "torch-cuda", reason, "")
    session.run(python, "-m", *PYTEST, *tests, *session.posargs, external=shared,
                env={"RNNX_BACKENDS": name, **session.env})


@nox.session(venv_backend="none")
def numpy(session: nox.Session) -> None:
    """Every test on NumPy (torch installed as the autograd oracle)."""
    _backend_tests(session, "numpy", shared=True)


@nox.session(venv_backend="none")
def array_api_strict(session: nox.Session) -> None:
    """Every test on array-api-strict, default device and ``device1`` (the GPU stand-in)."""
    _backend_tests(session, "array_api_strict", shared=True)


@nox.session(venv_backend="none")
def torch(session: nox.Session) -> None:
    """Every test on torch tensors through the Array API (CPU; CUDA too where visible)."""
    _backend_tests(session, "torch", shared=True)


@nox.session
def cupy(session: nox.Session) -> None:
    """Every test on CuPy; skipped with the reason on a machine without a CUDA device (a failure
    instead where RNNX_REQUIRE_BACKENDS names cupy). The CUDA driver is asked first, so a
    machine without one skips in a second instead of after installing everything."""
    reason = _AVAIL.cuda_driver_unavailable_reason()
    if reason:
        _unavailable(session, "cupy", reason, "its tests need it and would all skip")
    _backend_tests(session, "cupy", CUPY)


@nox.session
def jax(session: nox.Session) -> None:
    """Every test on JAX (CPU). Not in the default run: jax is a large install."""
    session.env["JAX_ENABLE_X64"] = "1"  # float64 cases need it; rnnx refuses silent float32
    _backend_tests(session, "jax", "jax")


@nox.session(name="jax-compiled")
def jax_compiled(session: nox.Session) -> None:
    """The compiled JAX path (``jax.lax.scan`` under ``jax.jit``), in the default run: its main
    tests (``JAX_SLIM``) with JAX pinned (``$RNNX_JAX_SPEC``). ``nox -s jax`` runs them all."""
    session.env["JAX_ENABLE_X64"] = "1"  # the float64 oracles need it
    _backend_tests(session, "jax", JAX, tests=JAX_SLIM)


@nox.session
def distributed(session: nox.Session) -> None:
    """The dask.distributed tests alone (not in the default run: the numpy session already runs
    them): data-parallel fit on a local cluster of worker processes, a killed worker, a lost
    client, lazy inference, bad inputs, and ``rnnx train --workers/--scheduler``."""
    session.install("-e", ".[dask]", "pytest>=8")  # no torch, onnx or sklearn: a small install
    session.run(*PYTEST, "tests/test_models_dask.py", "tests/test_cli_dask.py", *session.posargs,
                env={"RNNX_BACKENDS": "numpy", **session.env})


@nox.session(venv_backend="none")
def agreement(session: nox.Session) -> None:
    """The same seeded cases on every backend available here; prints deviation from NumPy
    float64 per backend, device and dtype, and fails if any is outside its tolerance."""
    python = _cpu_python(session)  # the CPU backends' shared environment, CuPy added on request
    if os.environ.get("RNNX_WITH_CUPY") or "cupy" in REQUIRED:
        session.run(python, "-m", "pip", "install", "-q", CUPY, external=True)
    # fails, with the reason, for a required backend it cannot run
    session.run(python, "-m", "rnnx", "check", external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree (package, tests, benchmarks, noxfile)."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark suite (not in the default run): rnnx against torch.nn.RNN, the same algorithm
    in torch ops, jax.lax.scan and a textbook NumPy loop, each in its own process; then BPTT
    peak memory and training throughput. Writes benchmarks/results/*.md and *.json.
    ``nox -s bench -- --quick`` is a ~1-minute smoke run; other arguments go to benchmarks.run.
    Set RNNX_BENCH_NO_JAX=1 to leave jax out (its install is large)."""
    extra = [] if os.environ.get("RNNX_BENCH_NO_JAX") else ["jax"]
    session.install("-e", ".", TORCH, "threadpoolctl", "scikit-learn", *extra)
    session.run("python", "-m", "benchmarks.run", *session.posargs)
    quick = "--quick" in session.posargs
    session.run("python", "-m", "benchmarks.memory", *(["--quick"] if quick else []))
    session.run("python", "-m", "benchmarks.train_throughput",
                *(["--rounds", "1", "--epochs", "1", "--out", "benchmarks/results/quick-train"]
                  if quick else []))


@nox.session
def gpu(session: nox.Session) -> None:
    """The one command for a GPU machine (not in the default run). Fails in seconds, naming the
    reason, where the CUDA driver sees no device — before installing anything. Then installs
    CuPy and a CUDA build of torch ($RNNX_TORCH_CUDA_SPEC, default ``torch``, from
    $RNNX_TORCH_CUDA_INDEX if set), and with RNNX_REQUIRE_BACKENDS=cupy,torch-cuda runs the
    suite on cupy and torch's CUDA device, the agreement table (``rnnx check``, both included)
    and the GPU benchmark (``benchmarks/gpu.py``: benchmarks/results/gpu-<date>.md/.json).
    Arguments go to pytest."""
    reason = _AVAIL.cuda_driver_unavailable_reason()
    if reason:
        session.error(f"no usable CUDA device here: {reason}")
    if shutil.which("nvidia-smi"):
        session.run("nvidia-smi", "-L", external=True)
    index = ["--index-url", TORCH_CUDA_INDEX] if TORCH_CUDA_INDEX else []
    session.install(TORCH_CUDA, *index)  # first, so that nothing later pulls another torch
    session.install("-e", ".[test]", CUPY, "threadpoolctl")
    required = "cupy,torch-cuda"
    for name in required.split(","):
        why = _unavailable_reason(session, name)
        if why:
            hint = (" (set RNNX_TORCH_CUDA_INDEX to the CUDA wheel index PyTorch's install page "
                    "gives for this machine's CUDA)" if name == "torch-cuda" else "")
            session.error(f"{name} cannot run here: {why}{hint}")
    env = {REQUIRE_ENV: required}
    session.run(*PYTEST, *session.posargs, env={**env, "RNNX_BACKENDS": required})
    session.run("rnnx", "check", env=env)
    session.run("python", "-m", "benchmarks.gpu", env=env)
