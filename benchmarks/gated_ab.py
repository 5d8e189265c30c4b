"""A/B timing of a cell (LSTM, GRU, or ``rnn``, the Elman cell), float32, one BLAS thread: the
functional forward and forward + backward (gradient at every step) with a
:class:`rnnx.functional.Workspace` where the cell takes one, or torch.nn.RNN/LSTM/GRU
(``torch``), or the GEMM floor (``floor``, ``numpy-gemm-floor``) through
:mod:`benchmarks.impls`; best wall-clock and best process (CPU) time of repeated calls. Run
each tree or implementation in its own process, alternately::

    PYTHONPATH=<tree> OPENBLAS_NUM_THREADS=1 python -m benchmarks.gated_ab rnnx|torch|floor \
        [cells] [--shapes 32x50x16x64,...]

Prints ``key best_wall_ms best_cpu_ms``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

SHAPES = ((32, 50, 16, 64), (64, 100, 32, 128), (16, 1000, 8, 32))


def _rnnx(cell: str, shape: tuple[int, int, int, int], variant: str):
    from rnnx import functional as F
    from rnnx.functional.registry import CELLS

    batch, steps, features, hidden = shape
    rng = np.random.default_rng(0)
    g = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    f32 = np.float32
    x = rng.normal(size=(batch, steps, features)).astype(f32)
    w_x = rng.uniform(-0.1, 0.1, size=(features, g * hidden)).astype(f32)
    w_h = rng.uniform(-0.1, 0.1, size=(hidden, g * hidden)).astype(f32)
    b = rng.uniform(-0.1, 0.1, size=g * hidden).astype(f32)
    dhs = rng.normal(size=(batch, steps, hidden)).astype(f32)
    fw = getattr(F, f"{cell}_forward")
    bw = getattr(F, f"{cell}_backward")
    bs = (b, b) if cell == "gru" else (b,)
    kw = {"workspace": F.Workspace()} if CELLS[cell].workspace else {}
    if variant == "fwd":
        return lambda: fw(x, w_x, w_h, *bs, **kw)

    def m2m():
        _, cache = fw(x, w_x, w_h, *bs, **kw)
        return bw(dhs, cache, **kw)

    return m2m


def _impl(name: str):
    def make(cell: str, shape: tuple[int, int, int, int], variant: str):
        from .cases import Case
        from .impls import IMPLS

        return IMPLS[name].make(Case(*shape, "float32", variant, cell))

    return make


def main(mode: str, cells: list[str], shapes=SHAPES) -> None:
    make = {"rnnx": _rnnx, "torch": _impl("torch.nn.RNN"), "floor": _impl("numpy-gemm-floor")}[mode]
    if mode == "torch":
        import torch

        torch.set_num_threads(1)
    with threadpool_limits(1):
        for cell in cells:
            for shape in shapes:
                for variant in ("fwd", "m2m"):
                    f = make(cell, shape, variant)
                    f()
                    f()
                    t0 = time.perf_counter()
                    f()
                    n = max(5, int(0.5 / (time.perf_counter() - t0 + 1e-9)))
                    wall, cpu = [], []
                    for _ in range(n):
                        w0, c0 = time.perf_counter(), time.process_time()
                        f()
                        cpu.append(time.process_time() - c0)
                        wall.append(time.perf_counter() - w0)
                    key = f"{cell}:{'x'.join(map(str, shape))}/float32/{variant}"
                    print(f"{key} {min(wall) * 1e3:.3f} {min(cpu) * 1e3:.3f}", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen = SHAPES
    if "--shapes" in args:
        k = args.index("--shapes")
        chosen = tuple(tuple(int(v) for v in s.split("x")) for s in args[k + 1].split(","))
        del args[k : k + 2]
    main(args[0] if args else "rnnx", args[1:] or ["lstm", "gru"], chosen)
