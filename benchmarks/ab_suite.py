"""One side of an A/B of rnnx-numpy over the whole suite (every shape, dtype, variant and cell
of :mod:`benchmarks.cases`), one BLAS thread, for comparing two trees in alternating processes::

    for r in 1 2 3; do for tree in A B; do
        (cd $tree && PYTHONPATH=$tree python -m benchmarks.ab_suite > $tree-$r.json); done; done

Prints one JSON object: case key -> every timed call (seconds); each case is warmed up by two
calls, then timed for ``--budget`` seconds and at least three calls. Compare the best of each
process across processes: the spread of one tree's own bests is the noise.
"""

from __future__ import annotations

import argparse
import json
import time

from .cases import CELLS, DTYPES, SHAPES, VARIANTS, Case
from .impls import IMPLS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", default="rnnx-numpy")
    ap.add_argument("--budget", type=float, default=0.15, help="seconds timed per case")
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    out = {}
    with threadpool_limits(limits=1):
        for cell in CELLS:
            for shape in SHAPES:
                for dtype in DTYPES:
                    for variant in VARIANTS:
                        case = Case(*shape, dtype, variant, cell)
                        run = IMPLS[args.impl].make(case)
                        run()
                        run()
                        times = []
                        start = time.perf_counter()
                        while time.perf_counter() - start < args.budget or len(times) < 3:
                            t0 = time.perf_counter()
                            run()
                            times.append(time.perf_counter() - t0)
                        out[case.key] = times
    print(json.dumps(out))


if __name__ == "__main__":
    main()
