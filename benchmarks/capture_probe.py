"""How far capture alone takes rnnx on torch CUDA: the unchanged functional forward + backward
of each cell recorded once as a CUDA graph (``torch.cuda.graph``) and replayed, against the same
calls run eagerly and against cuDNN (TF32 off: full float32, what rnnx computes), at the GPU
benchmark's shapes, float32, gradient at every step.

    python -m benchmarks.capture_probe [--cell rnn] [--quick]

A probe for the captured executor: it measures what a CUDA graph removes (Python dispatch and
launch gaps) before any executor is built, and checks that a replay gives the eager call's bits.
Times are medians of CUDA-event timings after warm-up, in one process (all three run torch on
the same device; the ratios are within this process). A cell whose call cannot be captured
(a host synchronisation inside) is reported with the error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from .cases import CELLS, Case, host_data
from .gpu import GPU_SHAPES, QUICK_SHAPES


def _median_ms(fn, reps: int) -> float:
    import torch

    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def probe(case: Case, reps: int) -> dict:
    import torch

    from rnnx import functional as F

    d = {k: torch.from_numpy(v).cuda() for k, v in host_data(case).items()}
    biases = (d["b"], d["b_hh"]) if case.cell == "gru" else (d["b"],)
    forward, backward = getattr(F, f"{case.cell}_forward"), getattr(F, f"{case.cell}_backward")

    def step():
        hs, cache = forward(d["x"], d["w_x"], d["w_h"], *biases)
        return hs, backward(d["dhs"], cache)

    row: dict = {"case": case.key, "cell": case.cell}
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # torch's recipe: warm up on a side stream
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    row["eager_ms"] = _median_ms(step, reps)
    eager_hs, eager_g = step()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            hs, g = step()
    except Exception as exc:  # what in the call cannot be captured
        row["capture_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return row
    row["captured_ms"] = _median_ms(graph.replay, reps)
    graph.replay()
    torch.cuda.synchronize()
    row["bitwise_equal"] = bool(torch.equal(hs, eager_hs) and all(
        torch.equal(a, b) for a, b in zip(g, eager_g) if a is not None))

    torch.backends.cudnn.allow_tf32 = False
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case.cell]
    rnn = module(case.features, case.hidden, batch_first=True).cuda()
    xg = d["x"].clone().requires_grad_(True)

    def cudnn():
        out, _ = rnn(xg)
        out.backward(d["dhs"])

    cudnn()
    row["cudnn_fp32_ms"] = _median_ms(cudnn, reps)
    row["captured_over_cudnn"] = row["captured_ms"] / row["cudnn_fp32_ms"]
    row["eager_over_cudnn"] = row["eager_ms"] / row["cudnn_fp32_ms"]
    del graph
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.capture_probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cell", action="append", choices=CELLS)
    p.add_argument("--quick", action="store_true", help="one tiny shape, 3 repetitions")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("capture_probe: torch sees no CUDA device", file=sys.stderr)
        return 1
    rows = []
    print("| cell | case | eager | captured | cuDNN fp32 | eager ÷ cuDNN | captured ÷ cuDNN "
          "| replay = eager bits |\n|---|---|---:|---:|---:|---:|---:|---|")
    for cell in args.cell or CELLS:
        for shape in QUICK_SHAPES if args.quick else GPU_SHAPES:
            row = probe(Case(*shape, "float32", "m2m", cell), 3 if args.quick else args.reps)
            rows.append(row)
            if "capture_error" in row:
                print(f"| {cell} | {row['case']} | {row['eager_ms']:.2f} ms | "
                      f"{row['capture_error']} | | | | |", flush=True)
                continue
            print(f"| {cell} | {row['case']} | {row['eager_ms']:.2f} ms | "
                  f"{row['captured_ms']:.2f} ms | {row['cudnn_fp32_ms']:.2f} ms | "
                  f"{row['eager_over_cudnn']:.2f} | {row['captured_over_cudnn']:.2f} | "
                  f"{row['bitwise_equal']} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
