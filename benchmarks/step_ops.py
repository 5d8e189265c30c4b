"""What one time step's operations cost, NumPy against torch, one thread, float32: the
recurrent GEMM of each cell (and the backward's), ``tanh`` over the gates, an in-place add of
two ``(batch, hidden)`` arrays, the same on a column block of ``(batch, 4*hidden)`` (the
LSTM's strided gate views), and a row copy into a time-major buffer. Best CPU time of
interleaved repeats, microseconds a call. It shows where a NumPy step loop sits against
torch's C++ loop: the GEMMs (OpenBLAS against MKL) and the per-call cost of small arrays::

    python -m benchmarks.step_ops

Run it alone (it starts torch and NumPy in one process, each capped at one thread).
"""

from __future__ import annotations

import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

SHAPES = ((32, 64), (64, 128), (128, 256), (16, 32))


def _best(f, n: int, rounds: int = 7) -> float:
    best = float("inf")
    for _ in range(rounds):
        c0 = time.process_time()
        for _ in range(n):
            f()
        best = min(best, (time.process_time() - c0) / n)
    return best * 1e6


def _cases(batch: int, hidden: int, rng, torch) -> tuple:
    """``(name, numpy call, torch call)`` for one state size."""
    h = rng.normal(size=(batch, hidden)).astype(np.float32)
    w1 = rng.normal(size=(hidden, hidden)).astype(np.float32)
    w4 = rng.normal(size=(hidden, 4 * hidden)).astype(np.float32)
    w4t = np.ascontiguousarray(w4.T)
    a4 = rng.uniform(-1, 1, size=(batch, 4 * hidden)).astype(np.float32)
    buf = rng.normal(size=(10, batch, hidden)).astype(np.float32) * 1e-3
    t = {k: torch.from_numpy(v.copy()) for k, v in
         (("h", h), ("w1", w1), ("w4", w4), ("w4t", w4t), ("a4", a4), ("buf", buf))}
    blk, tblk = a4[:, hidden : 2 * hidden], t["a4"][:, hidden : 2 * hidden]  # (B, H) views
    return (
        ("h @ w_h (H, H)", lambda: h @ w1, lambda: t["h"] @ t["w1"]),
        ("h @ w_h (H, 4H)", lambda: h @ w4, lambda: t["h"] @ t["w4"]),
        ("da @ w_h^T (4H, H)", lambda: a4 @ w4t, lambda: t["a4"] @ t["w4t"]),
        ("tanh (B, 4H)", lambda: np.tanh(a4), lambda: torch.tanh(t["a4"])),
        ("a += b (B, H)", lambda: h.__iadd__(buf[0]), lambda: t["h"].add_(t["buf"][0])),
        ("gate block * (B, H)", lambda: blk * h, lambda: tblk * t["h"]),
        ("buf[t] = h (B, H)", lambda: buf.__setitem__(3, h),
         lambda: t["buf"].__setitem__(3, t["h"])),
    )


def main() -> None:
    import torch

    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()}")
    print("| (batch, hidden) | op | NumPy µs | torch µs | NumPy ÷ torch |")
    print("|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for batch, hidden in SHAPES:
            for name, f_np, f_torch in _cases(batch, hidden, rng, torch):
                n = max(200, int(2e6 / (batch * hidden * 4)))
                a, b = _best(f_np, n), _best(f_torch, n)
                print(f"| ({batch}, {hidden}) | {name} | {a:.2f} | {b:.2f} | {a / b:.2f} |",
                      flush=True)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
