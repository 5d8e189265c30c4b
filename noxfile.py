"""The test matrix: one session per backend, an agreement table across backends, lint.

``nox`` runs the default sessions; ``nox -s torch`` one of them. The torch oracle is installed as
``$RNNX_TORCH_SPEC`` (default ``torch==2.13.0``, the CPU wheel CI has locally); the package's own
``torch`` extra is unpinned.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "numpy", "array_api_strict", "torch", "cupy", "agreement"]
nox.options.error_on_missing_interpreters = False

TORCH = os.environ.get("RNNX_TORCH_SPEC", "torch==2.13.0")
PYTEST = ("pytest", "-q", "-p", "no:cacheprovider")

_PROBE = (
    "from rnnx._backend import available_backends as a; s = a()[{name!r}]; "
    "print('' if s.available else s.reason)"
)


def _install(session: nox.Session, *extra: str) -> None:
    session.install("-e", ".[test]", TORCH, *extra)


def _unavailable_reason(session: nox.Session, name: str) -> str:
    out = session.run("python", "-c", _PROBE.format(name=name), silent=True)
    return (out or "").strip().splitlines()[-1] if (out or "").strip() else ""


def _backend_tests(session: nox.Session, name: str, *extra: str) -> None:
    _install(session, *extra)
    reason = _unavailable_reason(session, name)
    if reason:
        session.skip(f"{name}: {reason}; its tests need it and would all skip")
    session.run(*PYTEST, *session.posargs, env={"RNNX_BACKENDS": name, **session.env})


@nox.session
def numpy(session: nox.Session) -> None:
    """Every test on NumPy (torch installed as the autograd oracle)."""
    _backend_tests(session, "numpy")


@nox.session
def array_api_strict(session: nox.Session) -> None:
    """Every test on array-api-strict, default device and ``device1`` (the GPU stand-in)."""
    _backend_tests(session, "array_api_strict")


@nox.session
def torch(session: nox.Session) -> None:
    """Every test on torch tensors through the Array API (CPU; CUDA too where visible)."""
    _backend_tests(session, "torch")


@nox.session
def cupy(session: nox.Session) -> None:
    """Every test on CuPy; skipped with the reason on a machine without a CUDA device."""
    _backend_tests(session, "cupy", "cupy-cuda12x")


@nox.session
def jax(session: nox.Session) -> None:
    """Every test on JAX (CPU). Not in the default run: jax is a large install."""
    session.env["JAX_ENABLE_X64"] = "1"  # float64 cases need it; rnnx refuses silent float32
    _backend_tests(session, "jax", "jax")


@nox.session
def agreement(session: nox.Session) -> None:
    """The same seeded cases on every backend available here; prints deviation from NumPy
    float64 per backend, device and dtype, and fails if any is outside its tolerance."""
    extra = ["cupy-cuda12x"] if os.environ.get("RNNX_WITH_CUPY") else []
    _install(session, *extra)
    session.run("rnnx", "check")


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
