"""A first look at the fused executor on a GPU: rnnx on CuPy, eager loop against fused kernels,
forward + backward with a gradient at every step, float32, at the GPU benchmark's shapes.

    python -m benchmarks.fused_probe            # needs CuPy and a CUDA device
    python -m benchmarks.fused_probe --quick    # one small shape

A probe, not the benchmark: both executors run in one process, alternating call by call after
a warm-up (which compiles the kernels), each call ending in a device synchronisation; it prints
per (cell, shape) the median and the spread (min-max) of each executor's times, their ratio,
and the kernels launched per step. ``benchmarks.gpu`` is where the executors get their rows.
"""

from __future__ import annotations

import argparse
import statistics
import time

from .gpu import GPU_SHAPES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one small shape, two rounds")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cells", default="rnn,lstm,gru,gru_reset_before")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="NumPy with the kernels evaluated on the CPU: checks this script, "
                         "measures nothing of the GPU")
    args = ap.parse_args(argv)

    import numpy as np

    from rnnx._backend import _executors, forced_executor, from_host, get_namespace
    from rnnx._backend._fuse_kernels import CupyKernels, ReferenceKernels
    from rnnx._backend._fused import Fused
    from rnnx.functional.registry import CELLS
    from rnnx.testing.agreement import make_case

    shapes = ((8, 10, 4, 16),) if args.quick or args.cpu_smoke else GPU_SHAPES
    rounds = 2 if args.quick or args.cpu_smoke else args.rounds
    if args.cpu_smoke:
        xp = get_namespace("numpy")
        fused = Fused(ReferenceKernels())

        def sync():
            pass
    else:
        import cupy

        xp = get_namespace("cupy")
        fused = Fused(CupyKernels())
        sync = cupy.cuda.Device().synchronize
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        print(f"cupy {cupy.__version__}, {name}")
    print("| cell | shape (B,T,F,H) | eager ms (min-max) | fused ms (min-max) | eager / fused "
          "| fused kernels/step |")
    print("|---|---|---|---|---|---|")
    for name in args.cells.split(","):
        spec = CELLS[name]
        for shape in shapes:
            steps = shape[1]
            host = make_case(spec, np.random.default_rng(0), *shape, with_state=False)
            a = {k: None if v is None else from_host(v, xp=xp, dtype=xp.float32)
                 for k, v in host.items()}

            def call(a=a, spec=spec):
                _, cache = spec.run(a, a["x"], {s + "0": None for s in spec.states})
                spec.run_backward(cache, a["dhs"])
                sync()

            def eager(call=call):
                with forced_executor("eager"):
                    call()

            def with_fused(call=call):
                _executors._FORCED.append(fused)
                try:
                    call()
                finally:
                    _executors._FORCED.pop()

            times: dict[str, list[float]] = {"eager": [], "fused": []}
            eager()
            before = fused.kernels.launches
            with_fused()  # warm-up: traces and compiles
            per_step = (fused.kernels.launches - before) / (2 * steps)
            for _ in range(rounds):
                for label, fn in (("eager", eager), ("fused", with_fused)):
                    t0 = time.perf_counter()
                    fn()
                    times[label].append(time.perf_counter() - t0)
            e, f = (statistics.median(times[k]) * 1e3 for k in ("eager", "fused"))
            spread = {k: f"{min(v) * 1e3:.2f}-{max(v) * 1e3:.2f}" for k, v in times.items()}
            print(f"| {name} | {shape} | {e:.2f} ({spread['eager']}) | {f:.2f} ({spread['fused']}) "
                  f"| {e / f:.2f} | {per_step:g} |", flush=True)
    if fused.fallbacks:
        print("eager fallbacks:", fused.fallbacks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
