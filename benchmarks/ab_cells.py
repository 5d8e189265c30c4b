"""A/B timing of the gated cells' functional forward and forward + backward (gradient at every
step), one thread, best of timed calls, for comparing two commits in alternating processes::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=<tree> python -m benchmarks.ab_cells \
        --impl rnnx-numpy --cells lstm gru

``--impl`` names an implementation of :mod:`benchmarks.impls` (``torch.nn.RNN`` runs
torch.nn.LSTM/GRU for the gated cells). Prints one line per case: key, best and median in ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

from .cases import Case
from .impls import IMPLS

SHAPES = ((32, 50, 16, 64), (64, 100, 32, 128), (16, 1000, 8, 32))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", default="rnnx-numpy")
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    ap.add_argument("--variants", nargs="+", default=["fwd", "m2m"])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--budget", type=float, default=0.4, help="seconds timed per case")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        for cell in args.cells:
            for shape in SHAPES:
                for variant in args.variants:
                    case = Case(*shape, args.dtype, variant, cell)
                    run = IMPLS[args.impl].make(case)
                    run()
                    run()
                    times = []
                    start = time.perf_counter()
                    while time.perf_counter() - start < args.budget or len(times) < 5:
                        t0 = time.perf_counter()
                        run()
                        times.append(time.perf_counter() - t0)
                    print(f"{case.key} {min(times) * 1e3:.3f} {statistics.median(times) * 1e3:.3f}",
                          flush=True)


if __name__ == "__main__":
    main()
