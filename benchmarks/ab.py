"""A/B timing of the cells' functional forward (``fwd``) and forward + backward (``m2m``:
gradient at every step; ``m2o``: on the last state only), one BLAS thread: the *arms* named on
the command line are called alternately, call by call, in this one process (alternating call by
call cancels most of a loaded machine's drift, which separate processes minutes apart do not),
and each arm's best and median wall-clock and process (CPU) time and its minor page faults per
call are kept::

    OPENBLAS_NUM_THREADS=1 python -m benchmarks.ab ARM [ARM ...] [--seconds 1]
        [--cells rnn,lstm,gru] [--shapes 32x50x16x64,...] [--variants fwd,m2m] [--dtype float64]

An arm is

- ``rnnx``: the functional API of the rnnx on ``sys.path``, with a
  :class:`rnnx.functional.Workspace` where the function takes one; ``rnnx:no-workspace``
  without one (what a workspace saves: docs/performance.md, "Buffers reused across calls");
- ``tree:PATH`` (``tree:PATH:no-workspace``): the same of the rnnx tree at ``PATH`` (a
  worktree of another commit), imported in this process under its own module objects, so two
  commits compare call by call (``tree:OLD tree:NEW``; ``tree:OLD tree:OLD`` is the noise);
- ``impl:NAME``: an implementation of :mod:`benchmarks.impls` (``impl:torch.nn.RNN``, which
  runs torch.nn.LSTM/GRU for the gated cells; ``impl:numpy-gemm-floor``, the GEMMs alone).

To time each tree in its own process instead, run this once per tree with ``PYTHONPATH=<tree>``
and the arm ``rnnx``. Every arm gets the same seeded host data (:func:`benchmarks.cases.host_data`).
Prints a line per case and arm: ``key arm best_wall median_wall best_cpu median_cpu`` (ms),
``faults/call`` and ``best_cpu / first arm's best_cpu``; then the load average.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from .cases import Case, host_data

SHAPES = ((32, 50, 16, 64), (64, 100, 32, 128), (16, 1000, 8, 32))
Run = Callable[[], Any]


#: The folder holding the rnnx on ``sys.path`` (found without importing it).
_HERE = os.path.dirname(os.path.dirname(importlib.util.find_spec("rnnx").origin))


def _load_tree(path: str) -> Any:
    """``rnnx.functional`` of the tree at ``path``, as module objects of its own: the ``rnnx``
    names in ``sys.modules`` are dropped first, so the import reads that tree (the maths
    imports nothing lazily, so the modules of an earlier tree keep their own)."""
    for name in [m for m in sys.modules if m == "rnnx" or m.startswith("rnnx.")]:
        del sys.modules[name]
    sys.path.insert(0, os.path.abspath(path))
    try:
        return importlib.import_module("rnnx.functional")
    finally:
        sys.path.pop(0)


def _functional(F: Any, workspace: bool) -> Callable[[Case], Run]:
    """``make(case) -> run`` of the functional API ``F`` (``<cell>_forward``/``_backward``), with
    a workspace where the function takes one (read off its signature: older trees have none)."""
    def make(case: Case) -> Run:
        d = host_data(case)
        biases = (d["b"], d["b_hh"]) if case.cell == "gru" else (d["b"],)
        fw, bw = getattr(F, f"{case.cell}_forward"), getattr(F, f"{case.cell}_backward")
        kf = ({"workspace": F.Workspace()} if workspace and "workspace" in
              inspect.signature(fw).parameters else {})
        kb = kf if "workspace" in inspect.signature(bw).parameters else {}

        def run() -> Any:
            hs, cache = fw(d["x"], d["w_x"], d["w_h"], *biases, **kf)
            return hs if case.variant == "fwd" else bw(d["dhs"], cache, **kb)

        return run

    return make


def arm(spec: str) -> Callable[[Case], Run]:
    """The ``make(case) -> run`` of an arm named on the command line (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    if kind == "impl":
        from .impls import IMPLS

        if rest not in IMPLS:
            raise SystemExit(f"unknown implementation {rest!r}; choose from {sorted(IMPLS)}")
        reason = IMPLS[rest].unavailable()
        if reason:
            raise SystemExit(f"{spec} cannot run here: {reason}")
        if IMPLS[rest].library == "torch":
            import torch

            torch.set_num_threads(1)  # threadpoolctl caps BLAS and OpenMP, not torch's pool
        return IMPLS[rest].make
    path = rest.removesuffix("no-workspace").removesuffix(":")
    if kind in ("rnnx", "tree") and bool(path) == (kind == "tree"):
        return _functional(_load_tree(path or _HERE), workspace=not rest.endswith("no-workspace"))
    raise SystemExit(f"an arm is rnnx, rnnx:no-workspace, tree:PATH[:no-workspace] or "
                     f"impl:NAME; got {spec!r}")


def measure(runs: list[Run], seconds: float, min_reps: int = 5) -> list[dict[str, float]]:
    """Call ``runs`` alternately, one call each per round, after two warm-up calls each, until
    ``seconds`` have passed and every one has ``min_reps`` calls; per run the best and median
    wall and process time (ms) and the minor page faults per call."""
    for run in runs:
        run()
        run()
    wall: list[list[float]] = [[] for _ in runs]
    cpu: list[list[float]] = [[] for _ in runs]
    faults = [0] * len(runs)
    start = time.perf_counter()
    rnd = 0
    while time.perf_counter() - start < seconds or len(wall[0]) < min_reps:
        # each round in a rotated order, so that no arm always follows the same one (a call
        # leaves caches and allocator state behind that the next call pays for)
        for k in [(rnd + i) % len(runs) for i in range(len(runs))]:
            run = runs[k]
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
            faults[k] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        rnd += 1
    return [{"best_wall": min(w) * 1e3, "median_wall": statistics.median(w) * 1e3,
             "best_cpu": min(c) * 1e3, "median_cpu": statistics.median(c) * 1e3,
             "faults": f / len(w)} for w, c, f in zip(wall, cpu, faults)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arms", nargs="+", metavar="ARM")
    p.add_argument("--seconds", type=float, default=1.0, help="timed seconds per case")
    p.add_argument("--cells", default="lstm,gru", help="comma-separated: rnn, lstm, gru")
    p.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in SHAPES),
                   help="comma-separated BxTxFxH")
    p.add_argument("--variants", default="fwd,m2m", help="comma-separated: fwd, m2m, m2o")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    a = p.parse_args(argv)
    makers = [arm(s) for s in a.arms]
    shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")]
    from threadpoolctl import threadpool_limits

    print(f"load average before: {os.getloadavg()}", flush=True)
    with threadpool_limits(1):
        for cell in a.cells.split(","):
            for shape in shapes:
                for variant in a.variants.split(","):
                    case = Case(*shape, a.dtype, variant, cell)
                    got = measure([make(case) for make in makers], a.seconds)
                    for name, r in zip(a.arms, got):
                        print(f"{case.key} {name} {r['best_wall']:.3f} {r['median_wall']:.3f} "
                              f"{r['best_cpu']:.3f} {r['median_cpu']:.3f} {r['faults']:.0f} "
                              f"{r['best_cpu'] / got[0]['best_cpu']:.3f}", flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
