"""minGRU, float32, one BLAS thread, on NumPy (or a GPU: ``--backend cupy``/``torch-cuda``,
where cuDNN's GRU is timed too): the parallel form (the linear scan of
:mod:`rnnx.functional.scan`, :func:`rnnx.functional.min_gru.min_gru_forward` and
``min_gru_backward``) against the sequential step form (:func:`min_gru_step` and
:func:`min_gru_step_backward` run by the one time-loop driver, as every cell's step is:
``Cell.run(..., form="step")``), forward + backward with a gradient at every step, both
through the registry record; and the GEMM floor, the input projection and its two gradient
GEMMs alone, which both forms compute.

Each form runs in its own process, in a rotated order over rounds; a worker times every shape:
a warm-up call, then calls until a time budget is spent (at least ``--min-reps``). The table
gives the best wall and CPU (process) time over all rounds, their median, and the ratio
sequential / parallel per round (its spread is the noise: other processes share the cores)::

    python -m benchmarks.min_rnn [--shapes 32x1024x32x128,8x10000x16x64] [--rounds 3]
    python -m benchmarks.min_rnn --backend cupy       # T = 1000, and cuDNN's GRU (GPU check)

Results go to ``benchmarks/results/min-rnn.md`` and ``.json`` (``--out`` to change), written
atomically; the markdown is also printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from ._workers import RESULTS, machine, spawn, write_atomic

SHAPES = ((32, 1024, 32, 128), (8, 10_000, 16, 64))
FORMS = ("parallel", "sequential", "gemm-floor")
GPU_BACKENDS = ("cupy", "torch-cuda")
#: On a GPU (``--backend cupy`` or ``torch-cuda``): T = 1000, against cuDNN's GRU.
GPU_SHAPES = ((64, 1000, 64, 256), (8, 1000, 16, 64))
TARGETS = {(32, 1024, 32, 128): 10.0, (8, 10_000, 16, 64): 30.0}


# ----------------------------------------------------------------------------------------------
# worker side


def _case(shape, backend="numpy"):
    """The float32 case, placed on ``backend`` (``numpy``, ``cupy``, ``torch-cuda``)."""
    import numpy as np

    batch, time_, features, hidden = shape
    rng = np.random.default_rng(0)
    f32 = np.float32
    host = {"x": rng.normal(size=(batch, time_, features)).astype(f32),
            "w_x": (rng.normal(size=(features, 2 * hidden)) / np.sqrt(features)).astype(f32),
            "b": (0.1 * rng.normal(size=(2 * hidden,))).astype(f32),
            "dhs": rng.normal(size=(batch, time_, hidden)).astype(f32)}
    if backend == "numpy":
        return host
    from rnnx._backend import from_host, get_namespace

    name, dev = ("torch", "cuda") if backend == "torch-cuda" else (backend, None)
    xp = get_namespace(name)
    return {k: from_host(v, xp=xp, device=dev, dtype=xp.float32) for k, v in host.items()}


def _parallel(c):
    from rnnx.functional.registry import get_cell

    spec = get_cell("min_gru")

    def run():
        _, cache = spec.run(c, c["x"], form="parallel")
        return spec.run_backward(cache, c["dhs"])

    return run


def _sequential(c):
    from rnnx.functional.registry import get_cell

    spec = get_cell("min_gru")

    def run():
        _, cache = spec.run(c, c["x"], form="step")  # the step through the one driver
        return spec.run_backward(cache, c["dhs"])

    return run


def _gemm_floor(c):
    x, w_x, b = c["x"], c["w_x"], c["b"]
    batch, steps, features = x.shape
    du = c["dhs"]  # the shapes of the gradient GEMMs' operands: (B, T, H) twice is (B*T, 2H)
    from rnnx._backend import namespace

    xp = namespace(x)
    du2 = xp.concat([xp.reshape(du, (batch * steps, du.shape[2]))] * 2, axis=1)  # (B*T, 2H)

    def run():
        x2 = xp.reshape(x, (batch * steps, features))
        return x2 @ w_x + b, x2.T @ du2, du2 @ w_x.T

    return run


def _cudnn_gru(c):
    """torch.nn.GRU on cuDNN, TF32 off (full float32, as rnnx computes), forward and backward
    with a gradient at every step: the peer a minGRU replaces on a GPU."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    x, dhs = c["x"], c["dhs"]
    gru = torch.nn.GRU(x.shape[2], dhs.shape[2], batch_first=True).to(x.device)
    xg = x.detach().clone().requires_grad_(True)

    def run():
        out, _ = gru(xg)
        out.backward(dhs)
        return xg.grad

    return run


def _timed(run, sync):
    w0, c0 = time.perf_counter(), time.process_time()
    sync(run())
    return time.perf_counter() - w0, time.process_time() - c0


def worker(form: str, shapes, budget: float, min_reps: int, backend: str = "numpy") -> dict:
    from threadpoolctl import threadpool_limits

    from rnnx._backend import synchronize

    make = {"parallel": _parallel, "sequential": _sequential, "gemm-floor": _gemm_floor,
            "cudnn-gru": _cudnn_gru}[form]

    def sync(result):  # every timed call ends on finished device work
        leaves = result if isinstance(result, tuple) else (result,)
        while isinstance(leaves[0], (tuple, dict)):
            leaves = tuple(leaves[0].values()) if isinstance(leaves[0], dict) else leaves[0]
        synchronize(leaves[0])

    out = {}
    with threadpool_limits(1):
        for shape in shapes:
            run = make(_case(shape, backend))
            sync(run())  # warm-up (CuPy compiles its kernels here)
            walls, cpus = [], []
            start = time.perf_counter()
            while len(walls) < min_reps or time.perf_counter() - start < budget:
                wall, cpu = _timed(run, sync)
                walls.append(wall)
                cpus.append(cpu)
            out["x".join(map(str, shape))] = {"wall": walls, "cpu": cpus}
    return out


# ----------------------------------------------------------------------------------------------
# orchestrator side


def _spawn(form: str, shapes, budget: float, min_reps: int, backend: str) -> dict:
    spec = json.dumps({"form": form, "shapes": shapes, "budget": budget, "min_reps": min_reps,
                       "backend": backend})
    return spawn("benchmarks.min_rnn", [], stdin=spec, threads=1, what=f"worker {form}")


def forms(backend: str) -> tuple[str, ...]:
    """The sides timed on ``backend``: the two forms and the GEMM floor, and on a GPU the
    cuDNN GRU."""
    return FORMS + (("cudnn-gru",) if backend in GPU_BACKENDS else ())


def collect(shapes, rounds: int, budget: float, min_reps: int, log=print,
            backend: str = "numpy") -> dict:
    per_round = []
    sides = forms(backend)
    for r in range(rounds):
        order = sides[r % len(sides):] + sides[: r % len(sides)]
        got = {}
        for form in order:
            t0 = time.perf_counter()
            got[form] = _spawn(form, shapes, budget, min_reps, backend)
            log(f"  round {r + 1}/{rounds}: {form} ({time.perf_counter() - t0:.1f} s)")
        per_round.append(got)
    return {"rounds": per_round, "load_after": os.getloadavg()}


def summarise(raw: dict, shapes) -> list[dict]:
    rows = []
    sides = tuple(raw["rounds"][0])
    for shape in shapes:
        key = "x".join(map(str, shape))
        row = {"shape": key, "target": TARGETS.get(tuple(shape))}
        for form in sides:
            for clock in ("wall", "cpu"):
                ts = [t for rd in raw["rounds"] for t in rd[form][key][clock]]
                row[f"{form}_{clock}_best_ms"] = 1e3 * min(ts)
                row[f"{form}_{clock}_median_ms"] = 1e3 * statistics.median(ts)
        for clock in ("wall", "cpu"):
            ratios = [min(rd["sequential"][key][clock]) / min(rd["parallel"][key][clock])
                      for rd in raw["rounds"]]
            row[f"ratio_{clock}_rounds"] = ratios
            row[f"ratio_{clock}_best"] = (row[f"sequential_{clock}_best_ms"]
                                          / row[f"parallel_{clock}_best_ms"])
        # Both forms compute the GEMMs: the sequential time over the floor bounds the ratio.
        row["ceiling_cpu"] = row["sequential_cpu_best_ms"] / row["gemm-floor_cpu_best_ms"]
        if "cudnn-gru" in sides:  # the peer: < 1 is faster than cuDNN's GRU
            row["parallel_vs_cudnn"] = (row["parallel_wall_best_ms"]
                                        / row["cudnn-gru_wall_best_ms"])
            row["sequential_vs_cudnn"] = (row["sequential_wall_best_ms"]
                                          / row["cudnn-gru_wall_best_ms"])
        rows.append(row)
    return rows


def to_markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# minGRU: parallel (linear scan) vs sequential (step loop), "
        f"{meta.get('backend', 'numpy')} float32, fwd+bwd, one BLAS thread "
        f"({meta['rounds']} rounds)",
        "",
        "Forward and backward with a gradient at every step (`(batch, time, features, hidden)`). "
        "Each form in its own process, rotated over rounds; best and median over every timed "
        "call. seq ÷ par: the best sequential time over the best parallel time (per-round "
        "range in brackets: the noise). ceiling: sequential ÷ the GEMM floor, the ratio a "
        "parallel form with free elementwise work would reach.",
        "",
        "| shape | parallel best (median) ms | sequential best (median) ms | GEMM floor ms "
        "| seq ÷ par wall | seq ÷ par CPU | ceiling (CPU) | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        target = "—" if r["target"] is None else f"{r['target']:.0f}x"
        rng = r["ratio_wall_rounds"]
        rngc = r["ratio_cpu_rounds"]
        lines.append(
            f"| {r['shape']} | {r['parallel_wall_best_ms']:.1f} ({r['parallel_wall_median_ms']:.1f})"
            f" | {r['sequential_wall_best_ms']:.1f} ({r['sequential_wall_median_ms']:.1f})"
            f" | {r['gemm-floor_wall_best_ms']:.1f}"
            f" | {r['ratio_wall_best']:.2f}x [{min(rng):.2f}-{max(rng):.2f}]"
            f" | {r['ratio_cpu_best']:.2f}x [{min(rngc):.2f}-{max(rngc):.2f}]"
            f" | {r['ceiling_cpu']:.1f}x | {target} |")
    if any("parallel_vs_cudnn" in r for r in rows):
        lines += ["", "Against cuDNN's GRU (torch.nn.GRU, TF32 off), best wall time ÷ its best:",
                  "", "| shape | cuDNN GRU ms | parallel ÷ cuDNN | sequential ÷ cuDNN |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['shape']} | {r['cudnn-gru_wall_best_ms']:.2f} | "
                  f"{r['parallel_vs_cudnn']:.2f} | {r['sequential_vs_cudnn']:.2f} |"
                  for r in rows]
    m = meta["machine"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; load average "
              f"before {meta['load_before'][0]:.1f}, after {meta['load_after'][0]:.1f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shapes", default=None,
                   help="comma-separated BxTxFxH (default: the CPU targets' shapes, or T = 1000 "
                        "shapes on a GPU backend)")
    p.add_argument("--backend", default="numpy", choices=("numpy", *GPU_BACKENDS),
                   help="where both forms run; on a GPU backend cuDNN's GRU is timed too")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--budget", type=float, default=2.0, help="seconds per shape and form")
    p.add_argument("--min-reps", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS / "min-rnn"),
                   help="path without suffix: .md and .json are written")
    args = p.parse_args(argv)
    if args.worker:
        spec = json.loads(sys.stdin.read())
        shapes = [tuple(s) for s in spec["shapes"]]
        print(json.dumps(worker(spec["form"], shapes, spec["budget"], spec["min_reps"],
                                spec.get("backend", "numpy"))))
        return 0
    default = GPU_SHAPES if args.backend in GPU_BACKENDS else SHAPES
    text = args.shapes or ",".join("x".join(map(str, s)) for s in default)
    shapes = [tuple(int(v) for v in s.split("x")) for s in text.split(",")]
    load_before = os.getloadavg()
    raw = collect(shapes, args.rounds, args.budget, args.min_reps, backend=args.backend)
    meta = {"rounds": args.rounds, "machine": machine(), "load_before": load_before,
            "load_after": raw["load_after"], "backend": args.backend}
    rows = summarise(raw, shapes)
    md = to_markdown(rows, meta)
    write_atomic(Path(args.out + ".json"), json.dumps({"meta": meta, "rows": rows, "raw": raw},
                                                       indent=1))
    write_atomic(Path(args.out + ".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
