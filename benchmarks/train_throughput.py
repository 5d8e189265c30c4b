"""User-level training throughput: samples per second of one model trained with rnnx and the same
model, optimizer and batch size written with ``torch.nn`` (CPU), for the Elman, LSTM and GRU
cells, every (side, cell) in its own process, alternating the sides' order each round.

    python -m benchmarks.train_throughput [--rounds 3] [--epochs 3] [--cell rnn] [--threads 1]

The model (the default of ``rnnx train``, with ``--cell``): scikit-learn's 8x8 digits read as
sequences of 8 rows of 8 pixels (``(batch, time=8, features=8)``, pixels ÷ 16), one recurrent
layer (Elman tanh, LSTM or GRU; zero initial state) of ``hidden`` units, a dense layer on the
last state to 10 classes, mean softmax cross-entropy, Adam, mini-batches of ``batch`` drawn from
a seeded shuffle each epoch.

The rnnx side is exactly what ``rnnx train --cell C`` runs: ``ScratchSimpleRNNClassifier`` for
``rnn``, ``RNNClassifier(cell=C)`` otherwise, with the command's defaults, one ``partial_fit``
call per epoch (so the estimator's per-epoch bookkeeping — the loss sync, the divergence check,
the history — is counted). The torch side is the same model (``torch.nn.RNN``/``LSTM``/``GRU``,
which keep two bias vectors where rnnx's Elman and LSTM keep one), optimizer, learning rate,
clipping and batch size. ``--threads N`` caps both workers' BLAS/OpenMP pools (environment
variables, read at start-up) at ``N``; ``rnnx train`` itself caps at 1 by default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from ._workers import RESULTS, machine, spawn, thread_info, write_atomic

#: ``rnnx train``'s defaults (see ``rnnx train --help``): hidden 64, batch 32, Adam lr 0.005,
#: global-norm clipping at 5, float32.
CONFIG = {"hidden": 64, "batch": 32, "lr": 0.005, "clip": 5.0, "seed": 0, "dtype": "float32"}


def _digits():
    import numpy as np

    from rnnx.datasets import load_digits_sequences

    x, y = load_digits_sequences()  # (N, 8, 8): rows as time steps, pixels / 16
    return np.ascontiguousarray(x.astype(CONFIG["dtype"])), y.astype(np.int64)


CELLS = ("rnn", "lstm", "gru")


def make_rnnx_trainer(cfg: dict, cell: str = "rnn"):
    """``epoch(x, y, rng)``: one epoch of ``rnnx train --cell cell``'s model (the estimator's
    own ``partial_fit``; it shuffles with its own seeded generator, so ``rng`` is unused)."""
    import numpy as np

    from rnnx.models import RNNClassifier, ScratchSimpleRNNClassifier

    kw = dict(hidden_size=cfg["hidden"], batch_size=cfg["batch"], learning_rate=cfg["lr"],
              clip_norm=cfg["clip"], dtype=cfg["dtype"], random_state=cfg["seed"])
    # as `rnnx train` chooses: the seed's classifier for Elman, the general one otherwise
    clf = ScratchSimpleRNNClassifier(**kw) if cell == "rnn" else RNNClassifier(cell=cell, **kw)
    classes = np.arange(10)

    def epoch(x, y, shuffle_rng):
        clf.partial_fit(x, y, classes=classes)

    epoch.model = clf  # what is trained (the tests look)
    return epoch


def make_torch_trainer(cfg: dict, cell: str = "rnn"):
    """The same model, loss, optimizer and batch size with ``torch.nn`` (CPU)."""
    import torch

    torch.manual_seed(cfg["seed"])
    dt = getattr(torch, cfg["dtype"])
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = module(8, cfg["hidden"], batch_first=True).to(dt)
    head = torch.nn.Linear(cfg["hidden"], 10).to(dt)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(x, y, shuffle_rng):
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        order = torch.from_numpy(shuffle_rng.permutation(len(x)))
        for s in range(0, len(x), cfg["batch"]):
            idx = order[s: s + cfg["batch"]]
            opt.zero_grad(set_to_none=True)
            out, _ = rnn(xt[idx])
            loss = loss_fn(head(out[:, -1, :]), yt[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg["clip"])
            opt.step()

    epoch.model = rnn  # the recurrent module (the tests look)
    return epoch


SIDES = {"rnnx train": (make_rnnx_trainer, "numpy"), "torch.nn": (make_torch_trainer, "torch")}


def worker(side: str, epochs: int, cell: str = "rnn") -> dict:
    import numpy as np

    x, y = _digits()
    make, library = SIDES[side]
    epoch = make(CONFIG, cell)
    rng = np.random.default_rng(CONFIG["seed"])
    epoch(x, y, rng)  # warm-up epoch
    rates = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        epoch(x, y, rng)
        rates.append(len(x) / (time.perf_counter() - t0))
    return {"rates": rates, "info": thread_info(library)}


def to_markdown(result: dict) -> str:
    cfg = result["config"]
    lines = [
        f"# Training throughput (digits 8x8, one layer of hidden {cfg['hidden']}, batch "
        f"{cfg['batch']}, Adam lr {cfg['lr']}, clip {cfg['clip']}, {cfg['dtype']}; threads: "
        f"{result['threads']}; {result['rounds']} rounds x {result['epochs']} timed epochs)",
        "",
        "samples/s of one training epoch (1797 sequences) after a warm-up epoch; every (side, "
        "cell) in its own process, the sides alternating first each round. rnnx ÷ torch.nn = "
        "the best samples/s of rnnx ÷ torch.nn's (> 1: rnnx trains faster).",
        "",
        "| cell | rnnx train best | rnnx median | torch.nn best | torch.nn median "
        "| rnnx ÷ torch.nn |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for cell, r in result["cells"].items():
        lines.append(f"| {cell} | {r['best']['rnnx train']:.0f} | {r['median']['rnnx train']:.0f} "
                     f"| {r['best']['torch.nn']:.0f} | {r['median']['torch.nn']:.0f} "
                     f"| {r['ratio_best']:.2f}x |")
    lines += ["", f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per worker")
    p.add_argument("--cell", action="append", choices=CELLS,
                   help="cells (repeatable; default all three)")
    p.add_argument("--threads", type=int, default=None,
                   help="limit each worker's BLAS/OpenMP threads (default: the libraries' own)")
    p.add_argument("--out", type=Path, default=RESULTS / "train")
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs, (args.cell or ["rnn"])[0])))
        return 0
    cells = tuple(args.cell or CELLS)
    rates = {c: {s: [] for s in SIDES} for c in cells}
    info = {}
    for r in range(args.rounds):
        for cell in cells:
            for side in (list(SIDES) if r % 2 == 0 else list(SIDES)[::-1]):
                got = spawn("benchmarks.train_throughput",
                            [side, "--cell", cell, "--epochs", str(args.epochs)],
                            threads=args.threads, what=f"{side} ({cell})")
                rates[cell][side].extend(got["rates"])
                info[side] = got["info"]
                print(f"  round {r + 1}/{args.rounds}: {side} ({cell}) best "
                      f"{max(got['rates']):.0f} samples/s")
    per_cell = {}
    for cell, rs in rates.items():
        best = {s: max(v) for s, v in rs.items()}
        per_cell[cell] = {"rates": rs, "best": best,
                          "median": {s: statistics.median(v) for s, v in rs.items()},
                          "ratio_best": best["rnnx train"] / best["torch.nn"]}
    result = {"config": CONFIG, "machine": machine(), "threads": args.threads or "library default",
              "rounds": args.rounds, "epochs": args.epochs, "info": info, "cells": per_cell}
    md = to_markdown(result)
    write_atomic(args.out.with_suffix(".json"), json.dumps(result, indent=1))
    write_atomic(args.out.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
