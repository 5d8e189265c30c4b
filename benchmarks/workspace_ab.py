"""Functional LSTM/GRU with and without a :class:`rnnx.functional.Workspace`: best process time
of the forward and of forward + backward (gradient at every step), and minor page faults a
call, float32, one BLAS thread::

    PYTHONPATH=<tree> OPENBLAS_NUM_THREADS=1 python -m benchmarks.workspace_ab none|ws

Run it alternately on two trees (``none`` on the older one, which has no workspace); see
docs/performance.md, "Buffers reused across calls". Prints ``key best_ms faults_per_call``.
"""

from __future__ import annotations

import resource
import sys
import time
import timeit

import numpy as np
from threadpoolctl import threadpool_limits

from rnnx.functional import gru_backward, gru_forward, lstm_backward, lstm_forward

SHAPES = ((32, 50, 16, 64), (64, 100, 32, 128), (16, 1000, 8, 32))


def main(mode: str) -> None:
    rng = np.random.default_rng(0)
    for cell in ("lstm", "gru"):
        for batch, steps, features, hidden in SHAPES:
            g = 4 if cell == "lstm" else 3
            f32 = np.float32
            x = rng.normal(size=(batch, steps, features)).astype(f32)
            w_x = rng.uniform(-0.1, 0.1, size=(features, g * hidden)).astype(f32)
            w_h = rng.uniform(-0.1, 0.1, size=(hidden, g * hidden)).astype(f32)
            b = rng.uniform(-0.1, 0.1, size=g * hidden).astype(f32)
            dhs = rng.normal(size=(batch, steps, hidden)).astype(f32)
            fw, bw = (lstm_forward, lstm_backward) if cell == "lstm" else (gru_forward, gru_backward)
            bs = (b,) if cell == "lstm" else (b, b)
            if mode == "none":
                kw = {}
            else:
                from rnnx.functional import Workspace

                kw = {"workspace": Workspace()}

            def fwd(fw=fw, bs=bs, kw=kw, x=x, w_x=w_x, w_h=w_h):
                return fw(x, w_x, w_h, *bs, **kw)

            def m2m(fw=fw, bw=bw, bs=bs, kw=kw, x=x, w_x=w_x, w_h=w_h, dhs=dhs):
                _, cache = fw(x, w_x, w_h, *bs, **kw)
                return bw(dhs, cache, **kw)

            with threadpool_limits(1):
                for name, f in (("fwd", fwd), ("m2m", m2m)):
                    f()
                    f()
                    n = max(5, int(0.4 / (timeit.timeit(f, number=1) + 1e-9)))
                    times = []
                    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                    for _ in range(n):
                        t0 = time.process_time()
                        f()
                        times.append(time.process_time() - t0)
                    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / n
                    key = f"{cell}:{batch}x{steps}x{features}x{hidden}/float32/{name}"
                    print(f"{key} {min(times) * 1e3:.3f} {faults:.0f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ws")
