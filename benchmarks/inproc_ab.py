"""In-process A/B of two rnnx trees: each tree's package is imported under its own name, then
each cell's functional forward and forward + backward (gradient at every step, float32 or
``--dtype float64``, one BLAS thread, with a Workspace where the function takes one) are
called alternately, old / new, call by call, and the best and median process (CPU) time of
each are kept, with the minor page faults per call. Alternating call by call in one process
cancels most of a loaded machine's drift, which separate processes minutes apart do not::

    OPENBLAS_NUM_THREADS=1 python benchmarks/inproc_ab.py <old tree> <new tree> [seconds]
        [--cells rnn,lstm,gru] [--shapes 32x50x16x64,...] [--variants fwd,m2m] [--dtype float64]

Prints ``key old_best new_best new/old(best) old_median new_median new/old(median)
old_faults new_faults`` (ms; faults per call), then the load average.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import resource
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

SHAPES = ((32, 50, 16, 64), (64, 100, 32, 128), (16, 1000, 8, 32))
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _load(tree: str):
    for name in [m for m in sys.modules if m == "rnnx" or m.startswith("rnnx.")]:
        del sys.modules[name]
    sys.path.insert(0, tree)
    try:
        return importlib.import_module("rnnx.functional")
    finally:
        sys.path.remove(tree)


def _runner(F, cell, variant, x, w_x, w_h, bs, dhs):
    fw, bw = getattr(F, f"{cell}_forward"), getattr(F, f"{cell}_backward")
    kf = {"workspace": F.Workspace()} if "workspace" in inspect.signature(fw).parameters else {}
    kb = kf if "workspace" in inspect.signature(bw).parameters else {}

    def run():
        _, cache = fw(x, w_x, w_h, *bs, **kf)
        if variant == "m2m":
            bw(dhs, cache, **kb)

    return run


def main(old: str, new: str, budget: float, cells, shapes, variants, dtype="float32") -> None:
    trees = [_load(old), _load(new)]
    rng = np.random.default_rng(0)
    f32 = getattr(np, dtype)
    print(f"load average before: {os.getloadavg()}", flush=True)
    with threadpool_limits(1):
        for cell in cells:
            g = GATES[cell]
            for batch, steps, features, hidden in shapes:
                x = rng.normal(size=(batch, steps, features)).astype(f32)
                w_x = rng.uniform(-0.1, 0.1, size=(features, g * hidden)).astype(f32)
                w_h = rng.uniform(-0.1, 0.1, size=(hidden, g * hidden)).astype(f32)
                b = rng.uniform(-0.1, 0.1, size=g * hidden).astype(f32)
                dhs = rng.normal(size=(batch, steps, hidden)).astype(f32)
                bs = (b, b) if cell == "gru" else (b,)
                for variant in variants:
                    runs = [_runner(F, cell, variant, x, w_x, w_h, bs, dhs) for F in trees]
                    for run in runs:
                        run()
                    times: list[list[float]] = [[], []]
                    faults = [0, 0]
                    start = time.perf_counter()
                    while time.perf_counter() - start < budget or len(times[0]) < 5:
                        for k, run in enumerate(runs):
                            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                            c0 = time.process_time()
                            run()
                            times[k].append(time.process_time() - c0)
                            faults[k] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
                    best = [min(t) * 1e3 for t in times]
                    med = [statistics.median(t) * 1e3 for t in times]
                    n = len(times[0])
                    key = f"{cell}:{batch}x{steps}x{features}x{hidden}/{dtype}/{variant}"
                    print(f"{key} {best[0]:.3f} {best[1]:.3f} {best[1] / best[0]:.3f} "
                          f"{med[0]:.3f} {med[1]:.3f} {med[1] / med[0]:.3f} "
                          f"{faults[0] / n:.0f} {faults[1] / n:.0f}", flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("seconds", nargs="?", type=float, default=3.0)
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in SHAPES))
    p.add_argument("--variants", default="fwd,m2m")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    a = p.parse_args()
    main(a.old, a.new, a.seconds, a.cells.split(","),
         [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")], a.variants.split(","), a.dtype)
