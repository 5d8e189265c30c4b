"""Peak memory of BPTT, full cache against checkpointed, measured with tracemalloc (NumPy reports
its array buffers to it), and the time the checkpointing costs.

    python -m benchmarks.memory                 # T = 100 .. 100 000 (a few minutes)
    python -m benchmarks.memory --quick         # T up to 10 000

For each sequence length the inputs are allocated first; the peak counted is what forward +
backward allocate on top of them (``dL/dh_t`` at every step, allocated with the inputs). ``dx`` is
a result the size of ``x`` and is O(T) for both methods, so the working memory (peak − dx) is shown too: that
is what falls from O(T) to O(sqrt T). Results go to ``benchmarks/results/memory.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import tracemalloc
from pathlib import Path

import numpy as np

from rnnx.functional import (
    rnn_backward,
    rnn_backward_checkpointed,
    rnn_forward,
    rnn_forward_checkpointed,
)

from ._workers import RESULTS, write_atomic

BATCH, FEATURES, HIDDEN = 4, 8, 32


def _data(time_: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    k = 1.0 / math.sqrt(HIDDEN)
    return {
        "x": rng.normal(size=(BATCH, time_, FEATURES)),
        "w_x": rng.uniform(-k, k, size=(FEATURES, HIDDEN)),
        "w_h": rng.uniform(-k, k, size=(HIDDEN, HIDDEN)),
        "b": rng.uniform(-k, k, size=(HIDDEN,)),
        # dL/dh_t at every step (many-to-many), held by the caller like x. With the gradient on
        # h_T alone, 10^4+ steps of tanh' < 1 shrink it into float64's subnormal range, where
        # the weight-gradient GEMMs run ~50x slower: that would time the CPU's subnormal
        # arithmetic, not the method.
        "dh": rng.normal(size=(BATCH, time_, HIDDEN)),
    }


def _full(d):
    _, cache = rnn_forward(d["x"], d["w_x"], d["w_h"], d["b"])
    return rnn_backward(d["dh"], cache)


def _ckpt(d):
    _, cache = rnn_forward_checkpointed(d["x"], d["w_x"], d["w_h"], d["b"])
    return rnn_backward_checkpointed(d["dh"], cache)


def _peak(fn, d) -> int:
    fn(d)  # first-call allocations (module caches, BLAS buffers) are not the method's
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    grads = fn(d)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del grads
    return peak


def _best_times(fns, d, reps: int) -> list[float]:
    """Best-of-``reps`` time of each function, the functions interleaved so that a busy spell
    of the machine hits both alike."""
    for fn in fns:
        fn(d)
    best = [math.inf] * len(fns)
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn(d)
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def measure(times: list[int], reps: int) -> list[dict]:
    rows = []
    for t in times:
        d = _data(t)
        dx_bytes = d["x"].nbytes
        state_bytes = BATCH * HIDDEN * 8
        row = {"time": t, "every": math.isqrt(t - 1) + 1, "dx_bytes": dx_bytes,
               "cache_hs_bytes": t * state_bytes}
        for name, fn in (("full", _full), ("checkpoint", _ckpt)):
            peak = _peak(fn, d)
            row[f"{name}_peak_bytes"] = peak
            row[f"{name}_work_bytes"] = peak - dx_bytes
            row[f"{name}_work_states"] = (peak - dx_bytes) / state_bytes
        row["full_s"], row["checkpoint_s"] = _best_times(
            (_full, _ckpt), d, reps if t <= 10_000 else max(2, reps // 3))
        row["time_ratio"] = row["checkpoint_s"] / row["full_s"]
        row["checkpoint_work_per_sqrt_t"] = row["checkpoint_work_states"] / math.sqrt(t)
        rows.append(row)
        print(f"T={t}: full peak {row['full_peak_bytes'] / 2**20:.2f} MiB, checkpoint "
              f"{row['checkpoint_peak_bytes'] / 2**20:.2f} MiB; time x{row['time_ratio']:.2f}")
    return rows


def to_markdown(rows: list[dict]) -> str:
    mib = 2**20
    lines = [
        f"# BPTT peak memory (tracemalloc, NumPy float64, batch {BATCH}, features {FEATURES}, "
        f"hidden {HIDDEN}, gradient at every step)",
        "",
        "work = peak - dx (dx is the x-sized result, O(T) either way); states = work ÷ one "
        f"(batch, hidden) state ({BATCH * HIDDEN * 8} B). every = ceil(sqrt(T)).",
        "",
        "| T | every | full peak | full work (states) | checkpoint peak | checkpoint work "
        "(states) | ckpt states ÷ √T | full time | ckpt time | time ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['time']} | {r['every']} | {r['full_peak_bytes'] / mib:.2f} MiB | "
            f"{r['full_work_states']:.0f} | {r['checkpoint_peak_bytes'] / mib:.2f} MiB | "
            f"{r['checkpoint_work_states']:.0f} | {r['checkpoint_work_per_sqrt_t']:.1f} | "
            f"{r['full_s'] * 1e3:.1f} ms | {r['checkpoint_s'] * 1e3:.1f} ms | {r['time_ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="T up to 10 000")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions (T <= 10 000)")
    p.add_argument("--threads", type=int, default=None,
                   help="limit BLAS threads (threadpoolctl) for the timings; default: library's")
    p.add_argument("--out", type=Path, default=None,
                   help="default benchmarks/results/memory (quick-memory with --quick)")
    args = p.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    out = args.out or RESULTS / ("quick-memory" if args.quick else "memory")
    times = [100, 1_000, 10_000] if args.quick else [100, 1_000, 10_000, 100_000]
    rows = measure(times, args.reps)
    md = to_markdown(rows) + f"\nBLAS threads: {args.threads or 'library default'}.\n"
    write_atomic(out.with_suffix(".json"), json.dumps(rows, indent=1))
    write_atomic(out.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
