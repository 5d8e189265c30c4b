"""Training a minimal RNN on a long sequence task with its parallel form and with its step:
the adding problem (Hochreiter & Schmidhuber 1997; :func:`rnnx.datasets.make_adding_problem`)
at T = 1000, an ``RNNRegressor`` of one minGRU (or minLSTM) layer, float32, one BLAS thread.

The two sides are the same estimator and the same maths: ``cell="min_gru"`` trains with the
cell's parallel form (the linear scan), the sequential side with a copy of the cell's registry
record registered without its parallel form (``dataclasses.replace(CELLS["min_gru"],
parallel=None)``), so its layers run the step through the one time-loop driver. Same seed, same
batches: the held-out MSE of the two agrees to the rounding of their float32 runs, and the
ratio of their fit times is what the parallel form buys a training run. The task needs
``forget_bias`` (a cell initialised to keep its state): with minGRU's update gates at 0.5 a
marked value is forgotten within a few dozen steps and no gradient reaches it.

    python -m benchmarks.min_rnn_train [--cell min_gru] [--time 1000] [--rounds 1]

Each side runs in its own process; results go to ``benchmarks/results/min-rnn-train.md`` and
``.json`` (``--out`` to change), written atomically; the markdown is also printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ._workers import RESULTS, machine, spawn, write_atomic

SIDES = ("parallel", "sequential")


def worker(side: str, cell: str, steps: int, n_train: int, n_test: int, epochs: int,
           hidden: int, forget_bias: float, lr: float) -> dict:
    import dataclasses

    import numpy as np
    from threadpoolctl import threadpool_limits

    from rnnx.datasets import make_adding_problem
    from rnnx.functional.registry import CELLS, register_cell, unregister_cell
    from rnnx.models import RNNRegressor

    name = cell
    if side == "sequential":
        name = f"{cell}_step_form"
        register_cell(dataclasses.replace(CELLS[cell], name=name, parallel=None))
    X, y = make_adding_problem(n_samples=n_train + n_test, time=steps, random_state=0)
    est = RNNRegressor(cell=name, hidden_size=hidden, epochs=epochs, batch_size=50,
                       learning_rate=lr, forget_bias=forget_bias, random_state=0,
                       dtype="float32")
    try:
        with threadpool_limits(1):
            t0, c0 = time.perf_counter(), time.process_time()
            est.fit(X[:n_train], y[:n_train])
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            pred = np.asarray(est.predict(X[n_train:])).ravel()
    finally:
        if name != cell:  # the registry is the process's: leave it as it was
            unregister_cell(name)
    test = y[n_train:]
    return {"fit_wall_s": wall, "fit_cpu_s": cpu, "mse": float(np.mean((pred - test) ** 2)),
            "baseline_mse": float(np.var(test))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cell", default="min_gru", choices=("min_gru", "min_lstm"))
    p.add_argument("--time", type=int, default=1000, help="sequence length T")
    p.add_argument("--train", type=int, default=2000, help="training sequences")
    p.add_argument("--test", type=int, default=500, help="held-out sequences")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--forget-bias", type=float, default=4.0)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "min-rnn-train"),
                   help="path without suffix: .md and .json are written")
    args = p.parse_args(argv)
    if args.worker:
        spec = json.loads(sys.stdin.read())
        print(json.dumps(worker(**spec)))
        return 0
    config = {"cell": args.cell, "steps": args.time, "n_train": args.train, "n_test": args.test,
              "epochs": args.epochs, "hidden": args.hidden, "forget_bias": args.forget_bias,
              "lr": args.lr}
    load_before = os.getloadavg()
    rounds = []
    for r in range(args.rounds):
        got = {}
        for side in SIDES[r % 2:] + SIDES[: r % 2]:
            got[side] = spawn("benchmarks.min_rnn_train", [], stdin=json.dumps(
                {"side": side, **config}), threads=1, what=f"worker {side}")
            print(f"  round {r + 1}/{args.rounds}: {side} {got[side]['fit_wall_s']:.1f} s",
                  file=sys.stderr)
        rounds.append(got)
    meta = {"config": config, "machine": machine(), "load_before": load_before,
            "load_after": os.getloadavg()}
    md = to_markdown(rounds, meta)
    write_atomic(Path(args.out + ".json"), json.dumps({"meta": meta, "rounds": rounds},
                                                       indent=1))
    write_atomic(Path(args.out + ".md"), md)
    print(md)
    return 0


def to_markdown(rounds: list[dict], meta: dict) -> str:
    c = meta["config"]
    lines = [f"# {c['cell']} on the adding problem at T = {c['steps']}: parallel form vs step",
             "",
             f"RNNRegressor(cell={c['cell']!r}, hidden_size={c['hidden']}, "
             f"forget_bias={c['forget_bias']}, learning_rate={c['lr']}, epochs={c['epochs']}, "
             f"batch_size=50, dtype='float32'), {c['n_train']} training and {c['n_test']} "
             "held-out sequences; one BLAS thread, each side in its own process. Baseline MSE "
             "(predicting the mean): the held-out variance.", "",
             "| round | side | fit wall s | fit CPU s | held-out MSE | baseline MSE |",
             "|---:|---|---:|---:|---:|---:|"]
    for r, got in enumerate(rounds, 1):
        for side in SIDES:
            g = got[side]
            lines.append(f"| {r} | {side} | {g['fit_wall_s']:.1f} | {g['fit_cpu_s']:.1f} | "
                         f"{g['mse']:.4f} | {g['baseline_mse']:.4f} |")
    ratios = [got["sequential"]["fit_wall_s"] / got["parallel"]["fit_wall_s"] for got in rounds]
    cpu = [got["sequential"]["fit_cpu_s"] / got["parallel"]["fit_cpu_s"] for got in rounds]
    m = meta["machine"]
    lines += ["", f"sequential ÷ parallel fit time: wall {min(ratios):.2f}-{max(ratios):.2f}x, "
              f"CPU {min(cpu):.2f}-{max(cpu):.2f}x over rounds.", "",
              f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; load average "
              f"before {meta['load_before'][0]:.1f}, after {meta['load_after'][0]:.1f}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
