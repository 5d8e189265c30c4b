"""Run the benchmark: every implementation in its own process, alternating over rounds.

    python -m benchmarks.run            # the full suite (several minutes on 2 cores)
    python -m benchmarks.run --quick    # float32, fwd and m2m, one round: a smoke check

Each round starts one worker process per implementation, in a rotated order, and the worker
times every case: a warm-up (two calls, which also compiles jax), then repeated calls until a
time budget is spent and at least ``--min-reps`` calls (default 5) are timed. All per-call times
of all rounds are pooled; the table reports the best and the median, the ratio of the best to
``torch.nn.RNN``'s best on the same device, GFLOP/s of the GEMM work (see
:attr:`benchmarks.cases.Case.flops`) and its fraction of the GEMM peak of that dtype, measured
here by a large matmul in both NumPy and torch (the higher counts), and for rnnx's CPU rows the
ratio of the best to ``numpy-gemm-floor``'s best (``÷ floor``: the GEMMs the cell cannot avoid,
alone; see :func:`benchmarks.impls._numpy_gemm_floor`).

Results go to ``benchmarks/results/latest.md`` and ``latest.json`` (``--out`` to change), written
atomically; the markdown is also printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from ._workers import RESULTS, machine, spawn, thread_info, write_atomic
from .cases import CELLS, DTYPES, SHAPES, VARIANTS, Case, all_cases
from .impls import FLOOR, IMPLS, REFERENCE

GEMM_N = 2048  # (N, N) @ (N, N): large enough to reach the BLAS peak, ~0.1 s in float32 here
# benchmarks/gpu.py reads these under their former names.
_machine, _write_atomic = machine, write_atomic


# ----------------------------------------------------------------------------------------------
# worker side


def _time_calls(run, budget: float, min_reps: int, max_reps: int,
                first: list[float] | None = None) -> list[float]:
    """Per-call times of ``run`` after its warm-up; the first call's time (JAX's compilation
    and its run) is appended to ``first`` if given."""
    t0 = time.perf_counter()
    run()  # warm-up: allocator, BLAS thread start, jax compilation
    if first is not None:
        first.append(time.perf_counter() - t0)
    if time.perf_counter() - t0 < 0.05:
        run()  # cheap calls get a second warm-up; slow ones are warm after one
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return times


def _gemm(library: str, dtype: str, budget: float) -> list[float]:
    if library == "numpy":
        import numpy as np

        rng = np.random.default_rng(0)
        a = rng.normal(size=(GEMM_N, GEMM_N)).astype(dtype)
        b = rng.normal(size=(GEMM_N, GEMM_N)).astype(dtype)

        def run():
            return a @ b
    else:
        import torch

        g = torch.Generator().manual_seed(0)
        dt = getattr(torch, dtype)
        a = torch.randn(GEMM_N, GEMM_N, generator=g, dtype=dt)
        b = torch.randn(GEMM_N, GEMM_N, generator=g, dtype=dt)

        def run():
            return a @ b
    return _time_calls(run, budget, 3, 50)


def worker(name: str, cases: list[Case], budget: float, min_reps: int) -> dict:
    if name.startswith("gemm-"):
        library = name.split("-", 1)[1]
        samples = {dt: _gemm(library, dt, budget) for dt in DTYPES}
        return {"samples": samples, "info": thread_info(library)}
    impl = IMPLS[name]
    samples, first = {}, {}
    for case in cases:
        if case.cell in impl.cells:
            once: list[float] = []
            samples[case.key] = _time_calls(impl.make(case), budget, min_reps, 10_000, once)
            first[case.key] = once[0]
    return {"samples": samples, "first": first, "info": thread_info(impl.library)}


# ----------------------------------------------------------------------------------------------
# orchestrator side


def _spawn(name: str, cases: list[Case], budget: float, min_reps: int,
           threads: int | None = None, module: str = "benchmarks.run") -> dict:
    """Run worker ``name`` of ``module`` (``python -m module --worker name``) in a fresh process
    on ``cases``; its JSON answer."""
    spec = json.dumps({"cases": [c.to_dict() for c in cases], "budget": budget,
                       "min_reps": min_reps})
    return spawn(module, [name], stdin=spec, threads=threads, what=f"worker {name}")


def collect(names: list[str], cases: list[Case], rounds: int, budget: float, min_reps: int,
            threads: int | None = None, log=print) -> dict:
    samples: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    first: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    gemm: dict[str, dict[str, list[float]]] = {"gemm-numpy": {}, "gemm-torch": {}}
    info: dict[str, dict] = {}
    order = [*names, *gemm]
    for r in range(rounds):
        rotated = order[r % len(order):] + order[: r % len(order)]
        for name in rotated:
            t0 = time.perf_counter()
            got = _spawn(name, cases, budget, min_reps, threads)
            target = gemm if name in gemm else samples
            for key, ts in got["samples"].items():
                target[name].setdefault(key, []).extend(ts)
            for key, t in got.get("first", {}).items():
                first[name].setdefault(key, []).append(t)
            info[name] = got["info"]
            log(f"  round {r + 1}/{rounds}: {name} ({time.perf_counter() - t0:.1f} s)")
    return {"samples": samples, "gemm": gemm, "info": info, "first": first}


def summarise(raw: dict, cases: list[Case], names: list[str]) -> dict:
    peak = {}
    for dt in DTYPES:
        per_lib = {lib: 2.0 * GEMM_N**3 / min(v[dt]) / 1e9 for lib, v in raw["gemm"].items() if v}
        peak[dt] = {"gflops": max(per_lib.values()), "by_library": per_lib}
    rows = []
    for case in cases:
        for name in names:
            ts = raw["samples"].get(name, {}).get(case.key)
            if not ts:
                continue
            ref = raw["samples"].get(REFERENCE[IMPLS[name].device], {}).get(case.key)
            floor = raw["samples"].get(FLOOR, {}).get(case.key)
            best = min(ts)
            firsts = raw.get("first", {}).get(name, {}).get(case.key)
            gflops = case.flops / best / 1e9
            rows.append({
                **case.to_dict(), "case": case.key, "impl": name, "n": len(ts),
                "best_s": best, "median_s": statistics.median(ts),
                "ratio_to_torch_nn": best / min(ref) if ref else None,
                "ratio_to_floor": best / min(floor) if floor and _divides_by_floor(name) else None,
                "gflops": gflops, "gemm_fraction": gflops / peak[case.dtype]["gflops"],
                # the first call of a fresh process (JAX: compilation + one run), median of rounds
                "first_s": statistics.median(firsts) if firsts else None,
            })
    return {"gemm_peak": peak, "rows": rows}


def _divides_by_floor(name: str) -> bool:
    """rnnx's CPU rows are divided by the GEMM floor of the same case (the floor is NumPy on the
    CPU: a GPU row against it would compare devices)."""
    return name.startswith("rnnx-") and IMPLS[name].device == "cpu"


def calls_per_step_table(cases: list[Case], *, scanned: bool = False
                         ) -> dict[str, dict[str, dict[str, list]]]:
    """Array-API calls per time step of rnnx's forward and backward for each (cell, variant) of
    ``cases`` and each executor, ``{executor: {cell: {variant: [forward, backward or None]}}}``:
    ``"tuned"`` (NumPy's path) and ``"eager"`` (the readable step: torch, CuPy) counted on
    array-api-strict (:func:`rnnx.testing.calls_per_step`), and with ``scanned`` the operations
    in the compiled JAX loop's body (:func:`rnnx.testing.scanned_ops_per_step`: one compiled
    call a pass, no per-step dispatch). In this process, outside every timed region. On a GPU
    each eager call is a kernel launch or a view; the count does not depend on the shape, except
    that on the CPU a tuned backward at large shapes adds its factors' calls once per block."""
    from rnnx.testing import calls_per_step, scanned_ops_per_step

    out: dict[str, dict[str, dict[str, list]]] = {}
    for cell, variant in sorted({(c.cell, c.variant) for c in cases}):
        grad = variant == "m2m"
        for ex in ("tuned", "eager"):
            got = calls_per_step(cell, per_step_grad=grad, executor=ex)
            out.setdefault(ex, {}).setdefault(cell, {})[variant] = [
                got["forward"].per_step, None if variant == "fwd" else got["backward"].per_step]
        if scanned:
            ops = scanned_ops_per_step(cell, per_step_grad=grad)
            out.setdefault("scanned", {}).setdefault(cell, {})[variant] = [
                ops["forward"], None if variant == "fwd" else ops["backward"]]
    return out


#: The executor each rnnx row runs on (rnnx._backend.executor).
_EXECUTOR = {"rnnx-numpy": "tuned", "rnnx-jax": "scanned"}


def _fmt_calls(row: dict, calls: dict) -> str:
    if not row["impl"].startswith("rnnx-"):
        return ""
    ex = _EXECUTOR.get(row["impl"], "eager")
    got = calls.get(ex, {}).get(row.get("cell", "rnn"), {}).get(row["variant"])
    if got is None:
        return ""
    text = f"{got[0]}" if got[1] is None else f"{got[0]}, {got[1]}"
    return f"jit: {text} ops" if ex == "scanned" else text


def _fmt_first(row: dict) -> str:
    """The first call's time for the compiled rows (JAX: compile + run), where it was timed."""
    first = row.get("first_s")
    if first is None or "jax" not in row["impl"]:
        return ""
    return _fmt_time(first)


def _fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# rnnx benchmark ({result['when']})",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['platform']}. "
        f"Thread env: {m['thread_env'] or 'defaults'}; worker threads: {result['threads']}. "
        f"Rounds: {result['rounds']}, "
        f"budget {result['budget_s']} s per case per round (at least "
        f"{result.get('min_reps', 2)} calls), quick={result['quick']}.",
        "",
        "GEMM peak (best (2048,2048)@(2048,2048)): "
        + "; ".join(
            f"{dt} {p['gflops']:.0f} GFLOP/s ("
            + ", ".join(f"{k.removeprefix('gemm-')} {v:.0f}" for k, v in p["by_library"].items())
            + ")"
            for dt, p in result["gemm_peak"].items()
        ),
        "",
        "Ratio = best time ÷ torch.nn.RNN's best time on the same device (< 1: faster than torch). "
        "GFLOP/s counts the GEMM work only; % peak is of the GEMM peak of the same dtype. "
        "fwd = forward alone (torch under no_grad); m2m = forward + backward, gradient at every "
        "step; m2o = forward + backward, gradient on the last state only. calls/step = "
        "array-API calls per time step of rnnx's forward, backward on the row's executor "
        "(counted on array-api-strict: NumPy runs the tuned forms, torch and CuPy the readable "
        "step; each a kernel launch or a view on a GPU); for rnnx-jax the operations in the "
        "body of its compiled lax.scan (one call a pass, before XLA fuses them). "
        "÷ floor = rnnx's best time ÷ "
        f"the best time of {FLOOR} on the same case: only the GEMMs that cell's forward (fwd) or "
        "forward + BPTT cannot avoid, in NumPy with rnnx's dtype and operand layouts, buffers "
        "allocated outside the clock (benchmarks/impls.py, _numpy_gemm_floor); 1.00 would be "
        "the BLAS work alone. 1st call = the first call in a fresh worker process, for the JAX rows "
        "(compilation + one run; median over rounds).",
        "",
    ]
    skipped = result.get("skipped", {})
    if skipped:
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()), ""]
    by_case: dict[str, list[dict]] = {}
    for row in result["rows"]:
        by_case.setdefault(row["case"], []).append(row)
    calls = result.get("calls_per_step", {})
    lines += ["| case (BxTxFxH/dtype/variant) | implementation | best | median | ratio | GFLOP/s "
              "| % peak | ÷ floor | calls/step (fwd, bwd) | 1st call |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, rows in by_case.items():
        for row in rows:
            ratio = "" if row["ratio_to_torch_nn"] is None else f"{row['ratio_to_torch_nn']:.2f}"
            floor = row.get("ratio_to_floor")
            floor = "" if floor is None else f"{floor:.2f}"
            lines.append(
                f"| {key} | {_display(row)} | {_fmt_time(row['best_s'])} | "
                f"{_fmt_time(row['median_s'])} | {ratio} | {row['gflops']:.1f} | "
                f"{100 * row['gemm_fraction']:.0f} % | {floor} | {_fmt_calls(row, calls)} | "
                f"{_fmt_first(row)} |"
            )
    lines += ["", "## Ratio to torch.nn.RNN/LSTM/GRU (best-of), per cell and shape", ""]
    lines += _ratio_summary(result["rows"])
    lines += ["", "## Threads and BLAS per worker", ""]
    for name, info in result["info"].items():
        lines.append(f"- {name}: {json.dumps(info)}")
    return "\n".join(lines) + "\n"


def _display(row: dict) -> str:
    """The reference's name says which torch module ran: torch.nn.LSTM for an LSTM case."""
    cell = row.get("cell", "rnn")
    if cell != "rnn" and row["impl"].startswith("torch.nn.RNN"):
        return row["impl"].replace("RNN", cell.upper(), 1)
    return row["impl"]


def _ratio_summary(rows: list[dict]) -> list[str]:
    cols = [(dt, v) for dt in DTYPES for v in VARIANTS]
    out = ["| implementation (cell) | shape | " + " | ".join(f"{dt} {v}" for dt, v in cols) + " |",
           "|---|---|" + "---:|" * len(cols)]
    impls = [n for n in ("rnnx-numpy", "rnnx-torch", "rnnx-jax", "torch-hoisted", "jax-scan",
                         "numpy-textbook", FLOOR)
             if any(r["impl"] == n for r in rows)]
    for cell in CELLS:
        for impl in impls:
            for shape in SHAPES:
                cells = []
                for dt, v in cols:
                    r = next((r for r in rows if r["impl"] == impl and r["dtype"] == dt
                              and r["variant"] == v and r.get("cell", "rnn") == cell
                              and (r["batch"], r["time"], r["features"], r["hidden"]) == shape),
                             None)
                    cells.append("" if r is None or r["ratio_to_torch_nn"] is None
                                 else f"{r['ratio_to_torch_nn']:.2f}")
                if any(cells):
                    name = impl if cell == "rnn" else f"{impl} ({cell})"
                    out.append(f"| {name} | {shape} | " + " | ".join(cells) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="one round, short budgets (~1 minute)")
    p.add_argument("--rounds", type=int, default=None, help="worker rounds (default 3; quick 1)")
    p.add_argument("--min-reps", type=int, default=None,
                   help="timed calls per case per round at least, whatever the budget (default 5; "
                        "quick 1): with fewer, a 100 ms case is timed twice a round, and NumPy's "
                        "first calls after a case switch pay for fresh pages")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timed calls per case per round (default 0.2; quick 0.02)")
    p.add_argument("--impl", action="append", help="only these implementations (repeatable)")
    p.add_argument("--shape", action="append", help="only these shapes, e.g. 64x100x32x128")
    p.add_argument("--dtype", action="append", choices=DTYPES)
    p.add_argument("--variant", action="append", choices=VARIANTS)
    p.add_argument("--cell", action="append", choices=CELLS,
                   help="cell kinds (repeatable; default all three, quick: rnn). Gated cells are "
                        "timed for rnnx, torch.nn.LSTM/GRU and the GEMM floor only")
    p.add_argument("--keep-samples", action="store_true",
                   help="also write every timed call to the JSON (large)")
    p.add_argument("--threads", type=int, default=None,
                   help="limit every worker's BLAS/OpenMP threads (default: the libraries' own)")
    p.add_argument("--out", type=Path, default=None,
                   help="results path without suffix (.md and .json are written); default "
                        "benchmarks/results/latest, or .../quick with --quick")
    args = p.parse_args(argv)

    if args.worker:
        spec = json.loads(sys.stdin.read())
        cases = [Case.from_dict(c) for c in spec["cases"]]
        print(json.dumps(worker(args.worker, cases, spec["budget"], spec["min_reps"])))
        return 0

    out = args.out or RESULTS / ("quick" if args.quick else "latest")
    rounds = args.rounds or (1 if args.quick else 3)
    budget = args.budget if args.budget is not None else (0.02 if args.quick else 0.2)
    min_reps = args.min_reps or (1 if args.quick else 5)
    shapes = SHAPES
    if args.shape:
        shapes = tuple(tuple(int(n) for n in s.split("x")) for s in args.shape)
    variants = tuple(args.variant or (("fwd", "m2m") if args.quick else VARIANTS))
    dtypes = tuple(args.dtype or (("float32",) if args.quick else DTYPES))
    cells = tuple(args.cell or (("rnn",) if args.quick else CELLS))
    cases = all_cases(shapes, dtypes, variants, cells)

    wanted = args.impl or list(IMPLS)
    unknown = sorted(set(wanted) - set(IMPLS))
    if unknown:
        p.error(f"unknown --impl {unknown}; choose from {sorted(IMPLS)}")
    names, skipped = [], {}
    for name in wanted:
        reason = IMPLS[name].unavailable()
        if reason:
            skipped[name] = reason
            print(f"skip {name}: {reason}")
        else:
            names.append(name)
    print(f"{len(cases)} cases, {len(names)} implementations, {rounds} round(s)")
    raw = collect(names, cases, rounds, budget, min_reps, args.threads)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(), "threads": args.threads or "library default", "rounds": rounds,
        "budget_s": budget, "min_reps": min_reps, "quick": args.quick,
        "skipped": skipped, "info": raw["info"], **summarise(raw, cases, names),
        "calls_per_step": calls_per_step_table(cases, scanned="rnnx-jax" in names),
    }
    if args.keep_samples:  # every timed call: megabytes at the full suite
        result.update(samples=raw["samples"], gemm_samples=raw["gemm"])
    md = to_markdown(result)
    write_atomic(out.with_suffix(".json"), json.dumps(result, indent=1))
    write_atomic(out.with_suffix(".md"), md)
    print(md)
    print(f"written: {out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
