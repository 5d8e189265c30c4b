"""In-process A/B of two rnnx trees: each tree's package is imported under its own name, then
the gated cells' functional forward and forward + backward (with a Workspace, float32, one
BLAS thread) are called alternately, old / new, call by call, and the best process (CPU) time
of each is kept. Alternating call by call in one process cancels most of a loaded machine's
drift, which separate processes minutes apart do not::

    OPENBLAS_NUM_THREADS=1 python benchmarks/inproc_ab.py <old tree> <new tree> [seconds]

Prints ``key old_ms new_ms new/old`` (best CPU time per call).
"""

from __future__ import annotations

import importlib
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

SHAPES = ((32, 50, 16, 64), (64, 100, 32, 128), (16, 1000, 8, 32))


def _load(tree: str):
    for name in [m for m in sys.modules if m == "rnnx" or m.startswith("rnnx.")]:
        del sys.modules[name]
    sys.path.insert(0, tree)
    try:
        return importlib.import_module("rnnx.functional")
    finally:
        sys.path.remove(tree)


def main(old: str, new: str, budget: float) -> None:
    trees = [_load(old), _load(new)]
    rng = np.random.default_rng(0)
    f32 = np.float32
    with threadpool_limits(1):
        for cell in ("lstm", "gru"):
            g = 4 if cell == "lstm" else 3
            for batch, steps, features, hidden in SHAPES:
                x = rng.normal(size=(batch, steps, features)).astype(f32)
                w_x = rng.uniform(-0.1, 0.1, size=(features, g * hidden)).astype(f32)
                w_h = rng.uniform(-0.1, 0.1, size=(hidden, g * hidden)).astype(f32)
                b = rng.uniform(-0.1, 0.1, size=g * hidden).astype(f32)
                dhs = rng.normal(size=(batch, steps, hidden)).astype(f32)
                bs = (b,) if cell == "lstm" else (b, b)
                for variant in ("fwd", "m2m"):
                    runs = []
                    for F in trees:
                        fw, bw = getattr(F, f"{cell}_forward"), getattr(F, f"{cell}_backward")
                        ws = F.Workspace()

                        def run(fw=fw, bw=bw, ws=ws, variant=variant, args=(x, w_x, w_h, *bs),
                                dhs=dhs):
                            _, cache = fw(*args, workspace=ws)
                            if variant == "m2m":
                                bw(dhs, cache, workspace=ws)

                        run()
                        runs.append(run)
                    best = [float("inf")] * 2
                    start = time.perf_counter()
                    while time.perf_counter() - start < budget:
                        for k, run in enumerate(runs):
                            c0 = time.process_time()
                            run()
                            best[k] = min(best[k], time.process_time() - c0)
                    key = f"{cell}:{batch}x{steps}x{features}x{hidden}/float32/{variant}"
                    print(f"{key} {best[0] * 1e3:.3f} {best[1] * 1e3:.3f} {best[1] / best[0]:.3f}",
                          flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 3.0)
