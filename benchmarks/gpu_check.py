"""The GPU check: everything rnnx needs a GPU to show, in the Python environment it is started in,
in about five minutes, into one dated results folder.

    python -m benchmarks.gpu_check                 # on a machine with a CUDA GPU
    python -m benchmarks.gpu_check --out DIR       # the folder to write (default below)

It installs nothing (for machines without internet access that have torch, CuPy and JAX already;
``nox -s gpu`` is the command for machines that can install). Without a usable CUDA device it
stops in seconds, naming the reason. Otherwise, one phase after another:

1. the environment: ``nvidia-smi -L``, Python, the libraries' versions, ``rnnx info``;
2. the test suite on each GPU backend it finds (CuPy, torch's CUDA device, JAX on a GPU: a slim
   set, :data:`JAX_SUITE`), the suites in parallel (pytest-xdist where installed), each with
   ``RNNX_REQUIRE_BACKENDS`` naming its backend so that nothing meant for the GPU can skip;
   beside them ``rnnx check`` with every GPU backend required;
3. the main job (``rnnx train``) on each GPU backend, alone: CuPy twice, on an empty kernel
   cache (the first-run cost a new user pays) and then warm; JAX its first 5 epochs;
4. the GPU benchmark (``benchmarks.gpu``, one round, short budgets), the training throughput
   at a GPU-sized model (``benchmarks.train_throughput --device cuda``) and minGRU's parallel and
   sequential forms against cuDNN's GRU at T = 1000 (``benchmarks.min_rnn --backend``), alone on
   the GPU.

The folder (``benchmarks/results/gpu-check-<date>-<time>/``) holds six files, small enough to copy
back from a remote machine: ``env.txt``, ``suites.txt``, ``check.txt``, ``main-job.txt``,
``report.md`` (each step's outcome and time, then the benchmark tables) and ``results.json``. The
last lines printed are the report's summary. The exit status is 1 if any step failed or timed out.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: Seconds each phase may take at most (the whole check is meant to fit in about five minutes).
LIMITS = {"suite": 150, "check": 150, "train": 45, "train_cold": 60, "bench": 120,
          "throughput": 60, "min_rnn": 60}

#: JAX runs a slim set of the suite (eager JAX dispatches op by op: the whole suite takes
#: minutes): the matmul-precision checks and the Elman maths against its references.
JAX_SUITE = ("tests/test_backend_jax_precision.py", "tests/test_functional_rnn.py")

#: The distributions whose versions the environment lists.
PACKAGES = ("numpy", "array-api-compat", "array-api-strict", "cupy-cuda13x", "cupy-cuda12x",
            "torch", "jax", "jaxlib", "pytest", "pytest-xdist", "pytest-benchmark", "hypothesis",
            "scikit-learn", "onnxruntime")


@dataclass
class Step:
    """One command the check ran: what, how it ended, and how long it took."""

    name: str
    command: list[str]
    returncode: int | None = None  # None: killed at its time limit
    seconds: float = 0.0
    summary: str = ""
    output: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def outcome(self) -> str:
        if self.returncode is None:
            return "TIMED OUT"
        return "ok" if self.ok else f"FAILED (exit {self.returncode})"


def _env(**extra: str | None) -> dict[str, str]:
    """The children's environment: this checkout importable, JAX not preallocating the GPU (the
    suites run side by side), float64 on JAX, no inherited pytest state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RNNX_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("JAX_ENABLE_X64", "1")
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _start(name: str, command: list[str], env: dict[str, str], log: Path) -> tuple:
    handle = log.open("w")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    return Step(name, command), proc, handle, time.perf_counter(), log


def _finish(started: tuple, limit: float) -> Step:
    step, proc, handle, t0, log = started
    try:
        proc.wait(timeout=max(1.0, limit - (time.perf_counter() - t0)))
        step.returncode = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the command and its children (xdist workers, benchmark workers)
        proc.wait()
        step.returncode = None
    step.seconds = time.perf_counter() - t0
    handle.close()
    step.output = log.read_text(errors="replace")
    step.summary = _summary_line(step.output)
    return step


def _run(name: str, command: list[str], env: dict[str, str], limit: float, log: Path) -> Step:
    step = _finish(_start(name, command, env, log), limit)
    print(f"  {name}: {step.outcome} in {step.seconds:.1f} s  {step.summary}", flush=True)
    return step


def _summary_line(output: str) -> str:
    """pytest's final counts, ``rnnx train``'s accuracy line, or the last non-empty line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for pattern in (r"\d+ (passed|failed).* in [\d.]+s", r"held-out (accuracy|MSE)",
                    r"all checks within tolerance|outside tolerance|FAIL"):
        hits = [ln for ln in lines if re.search(pattern, ln)]
        if hits:
            return hits[-1].strip("= ")
    return lines[-1][:200] if lines else ""


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _nvidia_smi() -> str:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi: not found"
    parts = []
    for args in (["-L"], ["--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,"
                          "temperature.gpu,utilization.gpu", "--format=csv"]):
        try:
            res = subprocess.run([exe, *args], capture_output=True, text=True, timeout=20)
            parts.append(res.stdout.strip() or res.stderr.strip())
        except (OSError, subprocess.TimeoutExpired) as exc:
            parts.append(f"nvidia-smi {' '.join(args)}: {exc}")
    return "\n".join(parts)


def gpu_backends() -> tuple[list[str], dict[str, str]]:
    """The GPU backends this environment can run (names for ``RNNX_BACKENDS``) and why the
    others cannot: ``cupy``, ``torch-cuda``, and ``jax`` where JAX sees a GPU."""
    from rnnx._backend import requirement_status

    found, why = [], {}
    for name in ("cupy", "torch-cuda"):
        s = requirement_status(name)
        (found.append(name) if s.available else why.__setitem__(name, s.reason))
    s = requirement_status("jax")
    if not s.available:
        why["jax"] = s.reason
    else:
        import jax

        try:
            jax.devices("gpu")
            found.append("jax")
        except RuntimeError as exc:
            why["jax"] = f"JAX sees no GPU ({str(exc).splitlines()[0]})"
    return found, why


def _xdist_workers(backend: str, backends: list[str]) -> list[str]:
    """pytest-xdist's ``-n`` for one suite: JAX's slim set 2 workers, the others an equal share
    of the remaining cores (one is kept for ``rnnx check``)."""
    try:
        importlib.metadata.version("pytest-xdist")
    except importlib.metadata.PackageNotFoundError:
        return []
    if backend == "jax":
        return ["-n", "2"]
    full = [b for b in backends if b != "jax"]
    spare = (os.cpu_count() or 2) - 1 - (2 if "jax" in backends else 0)
    return ["-n", str(max(1, spare // max(1, len(full))))]


#: Machine paths left out of what is written (results are copied off the machine and shared):
#: the scratch folder and the interpreter's location.
_SCRUB: dict[str, str] = {}


def _write(path: Path, text: str) -> None:
    for where, name in _SCRUB.items():
        text = text.replace(where, name)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="the results folder (default benchmarks/results/gpu-check-<date>-<time>)")
    p.add_argument("--no-suite", action="store_true", help="leave the test suites out")
    p.add_argument("--no-bench", action="store_true", help="leave the benchmarks out")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    py = sys.executable

    # -- can it run at all? (seconds) -----------------------------------------------------
    try:
        from rnnx._backend import cuda_driver_unavailable_reason
    except ImportError as exc:
        print(f"gpu_check: rnnx cannot be imported here: {exc}", file=sys.stderr)
        return 1
    reason = cuda_driver_unavailable_reason()
    if reason:
        print(f"gpu_check: no usable CUDA device here: {reason}", file=sys.stderr)
        return 1
    backends, why_not = gpu_backends()
    if not backends:
        print("gpu_check: a CUDA device is there but no backend can use it: "
              + "; ".join(f"{k}: {v}" for k, v in why_not.items()), file=sys.stderr)
        return 1

    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    out = args.out or RESULTS / f"gpu-check-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="rnnx-gpu-check-"))
    _SCRUB.update({str(scratch): "<scratch>", py: "python"})
    steps: list[Step] = []
    print(f"gpu_check: GPU backends {', '.join(backends)}"
          + (f"; not: {'; '.join(f'{k} ({v})' for k, v in why_not.items())}" if why_not else "")
          + f"; results in {out}", flush=True)

    # -- 1. the environment ------------------------------------------------------------------
    info = _run("rnnx info", [py, "-m", "rnnx", "info"], _env(), 60, scratch / "info.txt")
    versions = _versions()
    env_text = "\n".join([
        f"when: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"python: {platform.python_version()}; {platform.platform()}; "
        f"{os.cpu_count()} CPUs",
        _nvidia_smi(), "",
        "packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
        "GPU backends: " + ", ".join(backends),
        *(f"not run: {k}: {v}" for k, v in why_not.items()), "",
        info.output.rstrip(), "",
    ])
    _write(out / "env.txt", env_text)
    print(env_text, flush=True)

    # -- 2. the suites, side by side, and rnnx check -------------------------------------------
    if not args.no_suite:
        running = [_start(f"suite {b}", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                         *_xdist_workers(b, backends), "-rfE",
                                         *(JAX_SUITE if b == "jax" else ())],
                          _env(RNNX_BACKENDS=b, RNNX_REQUIRE_BACKENDS=b), scratch / f"{b}.txt")
                   for b in backends]
        required = ",".join("torch-cuda" if b == "torch-cuda" else b for b in backends)
        running.append(_start("rnnx check", [py, "-m", "rnnx", "check"],
                              _env(RNNX_REQUIRE_BACKENDS=required), scratch / "check.txt"))
        suite_steps = [_finish(r, LIMITS["suite"] if r[0].name.startswith("suite")
                               else LIMITS["check"]) for r in running]
        for s in suite_steps:
            print(f"  {s.name}: {s.outcome} in {s.seconds:.1f} s  {s.summary}", flush=True)
        steps += suite_steps
        _write(out / "suites.txt", "\n".join(
            f"===== {s.name}: {s.outcome} in {s.seconds:.1f} s: {' '.join(s.command)}\n"
            f"{s.output}" for s in suite_steps if s.name.startswith("suite")))
        _write(out / "check.txt", suite_steps[-1].output)

    # -- 3. the main job on each GPU backend, alone --------------------------------------------
    cold = scratch / "cupy-kernels"
    trains = []
    for b in backends:
        cmd = [py, "-m", "rnnx", "train", "--no-progress"]
        if b == "cupy":
            trains.append(("rnnx train --backend cupy (empty kernel cache)",
                           [*cmd, "--backend", "cupy"], _env(CUPY_CACHE_DIR=str(cold)),
                           LIMITS["train_cold"]))
            trains.append(("rnnx train --backend cupy (warm kernel cache)",
                           [*cmd, "--backend", "cupy"], _env(CUPY_CACHE_DIR=str(cold)),
                           LIMITS["train"]))
        elif b == "torch-cuda":
            trains.append(("rnnx train --backend torch --device cuda",
                           [*cmd, "--backend", "torch", "--device", "cuda"], _env(),
                           LIMITS["train"]))
        else:  # eager JAX takes over a minute for the whole job: its first 5 epochs
            trains.append(("rnnx train --backend jax --epochs 5", [*cmd, "--backend", b,
                                                                    "--epochs", "5"],
                           _env(JAX_ENABLE_X64=None), LIMITS["train"]))
    train_steps = [_run(name, cmd, env, limit, scratch / f"train{i}.txt")
                   for i, (name, cmd, env, limit) in enumerate(trains)]
    steps += train_steps
    _write(out / "main-job.txt", "\n".join(
        f"===== {s.name}: {s.outcome}, {s.seconds:.1f} s wall (process start included)\n"
        f"$ {' '.join(s.command[1:])}\n{s.output}" for s in train_steps))

    # -- 4. the benchmarks, alone ------------------------------------------------------------
    bench = throughput = min_rnn = None
    if not args.no_bench:
        b_step = _run("GPU benchmark", [py, "-m", "benchmarks.gpu", "--rounds", "1", "--budget",
                                        "0.1", "--min-reps", "2", "--out",
                                        str(scratch / "bench")],
                      _env(), LIMITS["bench"], scratch / "bench.txt")
        t_step = _run("training throughput", [py, "-m", "benchmarks.train_throughput",
                                              "--device", "cuda", "--rounds", "1", "--epochs",
                                              "2", "--out", str(scratch / "train")],
                      _env(), LIMITS["throughput"], scratch / "throughput.txt")
        m_step = _run("minGRU parallel vs sequential vs cuDNN GRU",
                      [py, "-m", "benchmarks.min_rnn", "--backend", backends[0], "--rounds", "1",
                       "--budget", "0.3", "--min-reps", "2", "--out", str(scratch / "min-rnn")],
                      _env(), LIMITS["min_rnn"], scratch / "min-rnn.txt")
        steps += [b_step, t_step, m_step]
        bench = _read_json(scratch / "bench.json")
        throughput = _read_json(scratch / "train.json")
        min_rnn = _read_json(scratch / "min-rnn.json")

    # -- the report ------------------------------------------------------------------------------
    total = time.perf_counter() - t_start
    failed = [s for s in steps if not s.ok]
    summary = [f"# rnnx GPU check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
               f"GPU backends: {', '.join(backends)}; {len(steps)} steps in {total:.0f} s; "
               + ("all ok." if not failed else f"{len(failed)} not ok: "
                  + ", ".join(s.name for s in failed) + "."), "",
               "| step | outcome | seconds | summary |", "|---|---|---:|---|"]
    summary += [f"| {s.name} | {s.outcome} | {s.seconds:.1f} | {s.summary} |" for s in steps]
    report = "\n".join(summary) + "\n"
    for name, path in (("benchmark", scratch / "bench.md"),
                       ("training throughput", scratch / "train.md"),
                       ("minGRU", scratch / "min-rnn.md")):
        if path.exists():
            report += "\n" + path.read_text()
        elif not args.no_bench:
            report += f"\n(no {name} results: see the step's outcome above)\n"
    _write(out / "report.md", report)
    _write(out / "results.json", json.dumps({
        "versions": versions, "backends": backends, "not_run": why_not, "seconds": total,
        "steps": [{k: v for k, v in asdict(s).items() if k != "output"} for s in steps],
        "benchmark": bench, "training_throughput": throughput, "min_rnn": min_rnn}, indent=1))
    shutil.rmtree(scratch, ignore_errors=True)
    print("\n" + "\n".join(summary))
    print(f"\nwritten: {out} ({len(list(out.iterdir()))} files)")
    return 1 if failed else 0


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
