"""The GPU benchmark: rnnx on CuPy and on torch CUDA tensors against torch.nn.RNN/LSTM/GRU on
cuDNN, forward alone and forward + backward, at GPU-sized shapes.

Like with like: rnnx computes full float32, while cuDNN's float32 RNNs run on TF32 tensor cores
by default (``torch.backends.cudnn.allow_tf32``), and JAX's float32 products on GPUs are TF32 by
default. The reference is cuDNN with TF32 off (``torch.nn.RNN-cuda``); cuDNN with the library
default (``torch.nn.RNN-cuda-tf32``) is a row of its own, labelled, and every ratio is given to
both. Each worker records the precision settings its library ran under (a table of the report).

    python -m benchmarks.gpu                        # on a GPU machine (part of `nox -s gpu`)
    python -m benchmarks.gpu --device cpu --quick   # the same machinery on the CPU: a smoke run

Each implementation runs in its own process (``benchmarks.run``'s worker machinery: warm-up,
then timed calls until a budget is spent), rounds alternate the order. Every timed call ends in a
device synchronisation (``rnnx._backend.synchronize`` / ``torch.cuda.synchronize``), so the
clock reads finished work; the warm-up call ends in one too, so no earlier work is queued when a
clock starts. The ratio is best time ÷ the cuDNN module's best on the same case (< 1: faster).
GFLOP/s counts the GEMM work (:attr:`benchmarks.cases.Case.flops`), and % peak is of a large
matmul of the same dtype timed in the same run by torch on the same device.

Results go to ``benchmarks/results/gpu-<date>.md`` and ``.json`` (``--out`` to change), written
atomically; the markdown is also printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from .cases import CELLS, Case, all_cases
from .impls import IMPLS, REFERENCE
from .run import RESULTS, _fmt_time, _machine, _spawn, _time_calls, _write_atomic, worker

# (batch, time, features, hidden): GPU-sized — wide enough that a step's GEMMs fill the device,
# one long sequence where the per-step launch cost shows.
GPU_SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (64, 100, 128, 256),
    (256, 100, 256, 512),
    (512, 50, 512, 1024),
    (64, 1000, 64, 256),
)
QUICK_SHAPES = ((8, 10, 4, 16),)
VARIANTS = ("fwd", "m2m")
GEMM_N = {"cuda": 8192, "cpu": 1024}  # large enough to reach each device's matmul peak

#: The implementations timed per device; the first is the reference (torch.nn on cuDNN).
#: (``--impl`` takes any implementation of the device: ``jax-scan-cuda``, JAX's own compiled
#: lax.scan, is left out of the default list because it compiles for 10-30 s per case.)
GPU_IMPLS = {
    "cuda": ("torch.nn.RNN-cuda", "torch.nn.RNN-cuda-tf32", "rnnx-cupy", "rnnx-torch-cuda"),
    "cpu": ("torch.nn.RNN", "rnnx-torch", "rnnx-numpy"),
}

#: The second reference, per device: the peer at its library's default precision (TF32 on
#: CUDA); none on the CPU, where every library computes full float32.
DEFAULT_PRECISION_REFERENCE = {"cuda": "torch.nn.RNN-cuda-tf32", "cpu": None}

#: What each implementation is, for the report.
LABELS = {
    "torch.nn.RNN-cuda": "cuDNN, TF32 off (full float32): the reference",
    "torch.nn.RNN-cuda-tf32": "cuDNN, library default (TF32 tensor cores)",
    "rnnx-cupy": "rnnx on CuPy arrays",
    "rnnx-torch-cuda": "rnnx on torch CUDA tensors",
    "jax-scan-cuda": "JAX's own lax.scan + autodiff (Elman), jitted, precision highest",
    "torch.nn.RNN": "torch.nn on the CPU: the reference",
    "rnnx-torch": "rnnx on torch CPU tensors",
    "rnnx-numpy": "rnnx on NumPy",
}


# ----------------------------------------------------------------------------------------------
# worker side


def _gemm(dev: str, dtype: str, budget: float) -> list[float]:
    import torch

    n = GEMM_N[dev]
    g = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, generator=g, dtype=getattr(torch, dtype), device=dev)
    b = torch.randn(n, n, generator=g, dtype=getattr(torch, dtype), device=dev)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def run():
        out = a @ b
        sync()
        return out

    return _time_calls(run, budget, 3, 50)


def precision_settings() -> dict[str, str]:
    """The float32 matrix-product precision settings of the libraries this process imported, as
    each library reports them: what the implementation computed with."""
    out: dict[str, str] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = (f"cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}, "
                        f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
                        f"float32_matmul_precision={torch.get_float32_matmul_precision()}")
    if sys.modules.get("cupy") is not None:
        import os

        # CuPy uses TF32 for float32 cuBLAS/cuTENSOR only where CUPY_TF32=1 (read at import).
        out["cupy"] = f"CUPY_TF32={os.environ.get('CUPY_TF32', 'unset')} (TF32 only if 1)"
    jax = sys.modules.get("jax")
    if jax is not None:
        from rnnx._backend import JAX_MATMUL_PRECISION

        out["jax"] = (f"jax_default_matmul_precision={jax.config.jax_default_matmul_precision} "
                      f"(None: TF32 on GPUs); rnnx's calls run under "
                      f"{JAX_MATMUL_PRECISION!r}")
    if sys.modules.get("numpy") is not None and not out:
        out["numpy"] = "CPU BLAS: full float32"
    return out


def _gpu_info() -> dict:
    """What ran where: the device, CUDA and cuDNN versions (torch), CuPy's CUDA runtime — for
    the libraries this worker imported (importing one only to describe it would cost seconds)."""
    info: dict = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["device"] = torch.cuda.get_device_name(0)
            info["cudnn"] = torch.backends.cudnn.version()
            info["cudnn_enabled"] = torch.backends.cudnn.enabled
            info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    info["precision"] = precision_settings()
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        info["cupy"] = cupy.__version__
        if cupy.cuda.is_available():
            info["device"] = info.get("device") or cupy.cuda.runtime.getDeviceProperties(0)[
                "name"].decode()
            info["cupy_cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    return info


def gpu_worker(name: str, cases: list[Case], budget: float, min_reps: int) -> dict:
    if name.startswith("gemm-"):
        dev = name.split("-", 1)[1]
        dtypes = sorted({c.dtype for c in cases})
        return {"samples": {dt: _gemm(dev, dt, budget) for dt in dtypes}, "info": _gpu_info()}
    out = worker(name, cases, budget, min_reps)
    out["info"] = {**out["info"], **_gpu_info()}
    return out


# ----------------------------------------------------------------------------------------------
# orchestrator side


def summarise(raw: dict, cases: list[Case], names: list[str], dev: str) -> dict:
    """Rows of best/median time, ratio to the reference, GFLOP/s and % of the GEMM peak."""
    n = GEMM_N[dev]
    peak = {dt: 2.0 * n**3 / min(ts) / 1e9 for dt, ts in raw["gemm"].items() if ts}
    ref_name, ref2_name = REFERENCE[dev], DEFAULT_PRECISION_REFERENCE[dev]
    rows = []
    for case in cases:
        ref = raw["samples"].get(ref_name, {}).get(case.key)
        ref2 = raw["samples"].get(ref2_name, {}).get(case.key) if ref2_name else None
        for name in names:
            ts = raw["samples"].get(name, {}).get(case.key)
            if not ts:
                continue
            best = min(ts)
            gflops = case.flops / best / 1e9
            rows.append({**case.to_dict(), "case": case.key, "impl": name, "n": len(ts),
                         "best_s": best, "median_s": statistics.median(ts),
                         "ratio": best / min(ref) if ref else None,
                         "ratio_default_precision": best / min(ref2) if ref2 else None,
                         "gflops": gflops,
                         "peak_fraction": gflops / peak[case.dtype] if case.dtype in peak
                         else None})
    return {"gemm_peak_gflops": peak, "rows": rows}


def _display(name: str, cell: str) -> str:
    """torch.nn.RNN runs torch.nn.LSTM/GRU for the gated cells' cases: say which."""
    if cell != "rnn" and name.startswith("torch.nn.RNN"):
        return name.replace("RNN", cell.upper(), 1)
    return name


def to_markdown(result: dict) -> str:
    """The results as markdown: setup, every row, and a ratio summary per cell and shape."""
    m, info = result["machine"], result["gpu"]
    lines = [
        f"# rnnx GPU benchmark ({result['when']}, device {result['device']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}. "
        f"GPU: {info.get('device', 'none')}; torch {info.get('torch', '-')} (CUDA "
        f"{info.get('torch_cuda') or '-'}, cuDNN {info.get('cudnn', '-')}), CuPy "
        f"{info.get('cupy', '-')}. Rounds: {result['rounds']}, budget {result['budget_s']} s per "
        f"case per round (at least {result['min_reps']} calls), quick={result['quick']}.",
        "",
        "GEMM peak (torch, (N,N)@(N,N), N = " + str(GEMM_N[result["device"]]) + "): "
        + ("; ".join(f"{dt} {g:.0f} GFLOP/s" for dt, g in result["gemm_peak_gflops"].items())
           or "not measured"),
        "",
        f"Ratio = best time ÷ {REFERENCE[result['device']]}'s best on the same case (cuDNN "
        "with TF32 off on CUDA: full float32, what rnnx computes); < 1 is faster. "
        + (f"÷ default = the same against {DEFAULT_PRECISION_REFERENCE[result['device']]} "
           "(cuDNN at its library default, TF32). " if DEFAULT_PRECISION_REFERENCE[result[
               "device"]] else "")
        + "fwd = forward alone (torch under no_grad); m2m = forward + backward, gradient at "
        "every step. Every timed call ends in a device synchronisation.",
        "",
        "## What each implementation is, and the precision it computed with",
        "",
        "As each worker process's libraries reported their float32 matrix-product settings.",
        "",
        "| implementation | what | precision settings |",
        "|---|---|---|",
    ]
    for name, inf in result["info"].items():
        if name.startswith("gemm-"):
            continue
        prec = "; ".join(f"{lib}: {v}" for lib, v in inf.get("precision", {}).items()) or "-"
        lines.append(f"| {name} | {LABELS.get(name, '')} | {prec} |")
    lines.append("")
    if result["skipped"]:
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in result["skipped"].items()), ""]
    lines += ["| case (cell:BxTxFxH/dtype/variant) | implementation | best | median | ratio "
              "| ÷ default | GFLOP/s | % peak |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        ratio2 = r.get("ratio_default_precision")
        ratio2 = "" if ratio2 is None else f"{ratio2:.2f}"
        frac = "" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.1f} %"
        lines.append(f"| {r['case']} | {_display(r['impl'], r['cell'])} | "
                     f"{_fmt_time(r['best_s'])} | {_fmt_time(r['median_s'])} | {ratio} | "
                     f"{ratio2} | {r['gflops']:.1f} | {frac} |")
    lines += ["", "## Ratio to the reference (full float32), per cell and shape", ""]
    cols = sorted({(r["dtype"], r["variant"]) for r in result["rows"]},
                  key=lambda c: (c[0], VARIANTS.index(c[1]) if c[1] in VARIANTS else 9))
    lines += ["| implementation (cell) | shape | " + " | ".join(f"{d} {v}" for d, v in cols)
              + " |", "|---|---|" + "---:|" * len(cols)]
    ref = REFERENCE[result["device"]]
    impls = [n for n in dict.fromkeys(r["impl"] for r in result["rows"]) if n != ref]
    shapes = list(dict.fromkeys((r["batch"], r["time"], r["features"], r["hidden"])
                                for r in result["rows"]))
    for cell in CELLS:
        for impl in impls:
            for shape in shapes:
                got = {(r["dtype"], r["variant"]): r["ratio"] for r in result["rows"]
                       if r["impl"] == impl and r["cell"] == cell
                       and (r["batch"], r["time"], r["features"], r["hidden"]) == shape}
                if any(v is not None for v in got.values()):
                    cells = ["" if got.get(c) is None else f"{got[c]:.2f}" for c in cols]
                    lines.append(f"| {impl} ({cell}) | {shape} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(result: dict, out: Path) -> str:
    """Write ``out``.json and ``out``.md atomically; returns the markdown."""
    md = to_markdown(result)
    _write_atomic(out.with_suffix(".json"), json.dumps(result, indent=1))
    _write_atomic(out.with_suffix(".md"), md)
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--device", choices=sorted(GPU_IMPLS), default="cuda",
                   help="cuda (the benchmark) or cpu (the same machinery on torch CPU: a smoke "
                        "run for machines without a GPU)")
    p.add_argument("--quick", action="store_true",
                   help="one tiny shape, float32, Elman only, one round, short budgets")
    p.add_argument("--rounds", type=int, default=None, help="worker rounds (default 2; quick 1)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timed calls per case per round (default 0.5; quick 0.01)")
    p.add_argument("--min-reps", type=int, default=None,
                   help="timed calls per case per round at least (default 3; quick 1)")
    p.add_argument("--dtype", action="append", choices=("float32", "float64"))
    p.add_argument("--cell", action="append", choices=CELLS)
    p.add_argument("--impl", action="append", help="only these implementations (repeatable)")
    p.add_argument("--out", type=Path, default=None,
                   help="results path without suffix; default benchmarks/results/gpu-<date> "
                        "(gpu-quick-<device> with --quick)")
    args = p.parse_args(argv)

    if args.worker:
        spec = json.loads(sys.stdin.read())
        cases = [Case.from_dict(c) for c in spec["cases"]]
        print(json.dumps(gpu_worker(args.worker, cases, spec["budget"], spec["min_reps"])))
        return 0

    dev = args.device
    rounds = args.rounds or (1 if args.quick else 2)
    budget = args.budget if args.budget is not None else (0.01 if args.quick else 0.5)
    min_reps = args.min_reps or (1 if args.quick else 3)
    shapes = QUICK_SHAPES if args.quick else GPU_SHAPES
    dtypes = tuple(args.dtype or ("float32",))
    cells = tuple(args.cell or (("rnn",) if args.quick else CELLS))
    cases = all_cases(shapes, dtypes, VARIANTS, cells)
    wanted = args.impl or list(GPU_IMPLS[dev])
    known = [n for n, i in IMPLS.items() if i.device == dev]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        p.error(f"unknown --impl {unknown} for --device {dev}; choose from {known}")
    names, skipped = [], {}
    for name in wanted:
        reason = IMPLS[name].unavailable()
        if reason:
            skipped[name] = reason
            print(f"skip {name}: {reason}")
        else:
            names.append(name)
    if dev == "cuda" and not names:
        print("no GPU implementation can run here: " + "; ".join(skipped.values()),
              file=sys.stderr)
        return 1
    print(f"{len(cases)} cases, {len(names)} implementations, {rounds} round(s), device {dev}")
    samples: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    gemm: dict[str, list[float]] = {}
    info: dict[str, dict] = {}
    order = [*names, f"gemm-{dev}"]
    for r in range(rounds):
        for name in order[r % len(order):] + order[: r % len(order)]:
            t0 = time.perf_counter()
            got = _spawn(name, cases, budget, min_reps, module="benchmarks.gpu")
            target = gemm if name.startswith("gemm-") else samples[name]
            for key, ts in got["samples"].items():
                target.setdefault(key, []).extend(ts)
            info[name] = got["info"]
            print(f"  round {r + 1}/{rounds}: {name} ({time.perf_counter() - t0:.1f} s)")
    gpu = next((i for i in info.values() if i.get("device")), next(iter(info.values()), {}))
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": dev,
        "machine": _machine(), "gpu": gpu, "rounds": rounds, "budget_s": budget,
        "min_reps": min_reps, "quick": args.quick, "skipped": skipped, "info": info,
        **summarise({"samples": samples, "gemm": gemm}, cases, names, dev),
    }
    out = args.out or RESULTS / (f"gpu-quick-{dev}" if args.quick
                                 else f"gpu-{time.strftime('%Y-%m-%d', time.gmtime())}")
    print(write_results(result, out))
    print(f"written: {out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
