"""User-level training throughput: samples per second of one model trained with rnnx and the same
model, optimizer and batch size written with ``torch.nn``, for the Elman, LSTM and GRU cells,
every (side, cell) in its own process, alternating the sides' order each round.

    python -m benchmarks.train_throughput [--rounds 3] [--epochs 3] [--cell rnn] [--threads 1]
    python -m benchmarks.train_throughput --device cuda     # a GPU-sized model on a GPU

On the CPU (the default):

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
import sys
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

#: The GPU case: a model sized for a GPU (batch 256, time 50, features 64, hidden 512, 10
#: classes) on seeded synthetic data of ``samples`` sequences (8 batches an epoch), the rest as
#: ``CONFIG``. Labels are random: throughput, not accuracy, is measured.
GPU_CONFIG = {**CONFIG, "hidden": 512, "batch": 256, "time": 50, "features": 64, "classes": 10,
              "samples": 2048}


def _synthetic(cfg: dict):
    import numpy as np

    rng = np.random.default_rng(cfg["seed"])
    x = rng.normal(size=(cfg["samples"], cfg["time"], cfg["features"])).astype(cfg["dtype"])
    return x, rng.integers(0, cfg["classes"], size=cfg["samples"]).astype(np.int64)


def make_rnnx_trainer(cfg: dict, cell: str = "rnn", backend: str = "numpy"):
    """``epoch(x, y, rng)``: one epoch of ``rnnx train --cell cell``'s model (the estimator's
    own ``partial_fit``; it shuffles with its own seeded generator, so ``rng`` is unused), on
    ``backend`` (``"cupy"``, or ``"torch-cuda"``: torch on its CUDA device); on a GPU the data
    are put there once, before the first epoch, as a user training on the GPU would."""
    import numpy as np

    from rnnx.models import RNNClassifier, ScratchSimpleRNNClassifier

    name, _, on = backend.partition("-")
    kw = dict(hidden_size=cfg["hidden"], batch_size=cfg["batch"], learning_rate=cfg["lr"],
              clip_norm=cfg["clip"], dtype=cfg["dtype"], random_state=cfg["seed"], backend=name)
    # as `rnnx train` chooses: the seed's classifier for Elman, the general one otherwise
    clf = ScratchSimpleRNNClassifier(**kw) if cell == "rnn" else RNNClassifier(cell=cell, **kw)
    classes = np.arange(cfg.get("classes", 10))
    placed: dict = {}

    def epoch(x, y, shuffle_rng):
        if name == "numpy":
            clf.partial_fit(x, y, classes=classes)
            return
        from rnnx._backend import device_label, devices, from_host, get_namespace, synchronize

        if not placed:  # the estimator runs where its data are
            xp = get_namespace(name)
            where = next(d for d in devices(name) if device_label(d).startswith(on or "cuda"))
            placed.update(x=from_host(x, xp=xp, device=where), y=from_host(y, xp=xp, device=where))
        clf.partial_fit(placed["x"], placed["y"], classes=classes)
        synchronize(next(iter(clf.network_.parameters().values())))

    epoch.model = clf  # what is trained (the tests look)
    return epoch


def make_torch_trainer(cfg: dict, cell: str = "rnn", device: str = "cpu"):
    """The same model, loss, optimizer and batch size with ``torch.nn``: on the CPU, or on CUDA
    (``"cuda"``: cuDNN with TF32 off, full float32 as rnnx computes; ``"cuda-tf32"``: cuDNN at
    its library default, TF32)."""
    import torch

    where, _, precision = device.partition("-")
    if where == "cuda":
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
    torch.manual_seed(cfg["seed"])
    dt = getattr(torch, cfg["dtype"])
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = module(cfg.get("features", 8), cfg["hidden"], batch_first=True).to(where, dt)
    head = torch.nn.Linear(cfg["hidden"], cfg.get("classes", 10)).to(where, dt)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()
    placed: dict = {}

    def epoch(x, y, shuffle_rng):
        if not placed:  # the data on the device once, as a user training there would
            placed.update(x=torch.from_numpy(x).to(where), y=torch.from_numpy(y).to(where))
        xt, yt = placed["x"], placed["y"]
        order = torch.from_numpy(shuffle_rng.permutation(len(x))).to(where)
        for s in range(0, len(x), cfg["batch"]):
            idx = order[s: s + cfg["batch"]]
            opt.zero_grad(set_to_none=True)
            out, _ = rnn(xt[idx])
            loss = loss_fn(head(out[:, -1, :]), yt[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg["clip"])
            opt.step()
        if where == "cuda":
            torch.cuda.synchronize()

    epoch.model = rnn  # the recurrent module (the tests look)
    return epoch


def _side(make, *args):
    return lambda cfg, cell: make(cfg, cell, *args)


#: The sides timed per device: (trainer factory, library reported). The first CPU side is
#: `rnnx train` itself; on CUDA the torch.nn reference is cuDNN with TF32 off (full float32, as
#: rnnx computes), and cuDNN at its default precision (TF32) is a side of its own.
DEVICE_SIDES = {
    "cpu": {"rnnx train": (make_rnnx_trainer, "numpy"), "torch.nn": (make_torch_trainer, "torch")},
    "cuda": {"rnnx cupy": (_side(make_rnnx_trainer, "cupy"), "cupy"),
             "rnnx torch-cuda": (_side(make_rnnx_trainer, "torch-cuda"), "torch"),
             "torch.nn cuDNN fp32": (_side(make_torch_trainer, "cuda"), "torch"),
             "torch.nn cuDNN tf32": (_side(make_torch_trainer, "cuda-tf32"), "torch")},
}
SIDES = DEVICE_SIDES["cpu"]
#: The side each ratio divides by, per device.
REFERENCE_SIDE = {"cpu": "torch.nn", "cuda": "torch.nn cuDNN fp32"}


def worker(side: str, epochs: int, cells: tuple[str, ...] = ("rnn",), device: str = "cpu") -> dict:
    """One side's samples/s per cell, the cells one after another in this process."""
    import numpy as np

    cfg = GPU_CONFIG if device == "cuda" else CONFIG
    x, y = _synthetic(cfg) if device == "cuda" else _digits()
    make, library = DEVICE_SIDES[device][side]
    rates: dict[str, list[float]] = {}
    for cell in cells:
        epoch = make(cfg, cell)
        rng = np.random.default_rng(cfg["seed"])
        epoch(x, y, rng)  # warm-up epoch
        rates[cell] = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            epoch(x, y, rng)
            rates[cell].append(len(x) / (time.perf_counter() - t0))
    return {"rates": rates, "info": thread_info(library)}


def side_unavailable(side: str, device: str) -> str:
    """Why ``side`` cannot run here (``""`` if it can): its backend's GPU is missing."""
    if device != "cuda":
        return ""
    from .impls import IMPLS

    return IMPLS["rnnx-cupy" if DEVICE_SIDES[device][side][1] == "cupy"
                 else "torch.nn.RNN-cuda"].unavailable()


def to_markdown(result: dict) -> str:
    cfg, dev = result["config"], result.get("device", "cpu")
    ref = REFERENCE_SIDE[dev]
    sides = [s for s in DEVICE_SIDES[dev] if s in next(iter(result["cells"].values()))["best"]]
    if dev == "cuda":
        data = (f"synthetic: {cfg['samples']} sequences of {cfg['time']} steps x "
                f"{cfg['features']} features, {cfg['classes']} classes")
    else:
        data = "digits 8x8: 1797 sequences of 8 steps x 8 features, 10 classes"
    lines = [
        f"# Training throughput on {dev} ({data}; one layer of hidden {cfg['hidden']}, batch "
        f"{cfg['batch']}, Adam lr {cfg['lr']}, clip {cfg['clip']}, {cfg['dtype']}; threads: "
        f"{result['threads']}; {result['rounds']} rounds x {result['epochs']} timed epochs)",
        "",
        "samples/s of one training epoch after a warm-up epoch; every side in its own process "
        "(its cells one after another), the sides' order reversed every other round. Each "
        f"ratio = that side's best samples/s ÷ {ref}'s (> 1: faster)."
        + (" On CUDA the reference is cuDNN with TF32 off (full float32, as rnnx computes); "
           "`torch.nn cuDNN tf32` is cuDNN at its library default." if dev == "cuda" else ""),
        "",
        "| cell | " + " | ".join(f"{s} best (median)" for s in sides)
        + " | " + " | ".join(f"{s} ÷ {ref}" for s in sides if s != ref) + " |",
        "|---|" + "---:|" * (2 * len(sides) - 1),
    ]
    for cell, r in result["cells"].items():
        got = [f"{r['best'][s]:.0f} ({r['median'][s]:.0f})" for s in sides]
        ratios = [f"{r['best'][s] / r['best'][ref]:.2f}x" for s in sides if s != ref]
        lines.append(f"| {cell} | " + " | ".join(got + ratios) + " |")
    lines += ["", f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores"
              + (f"; GPU {result['gpu']}" if result.get("gpu") else "") + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--device", choices=sorted(DEVICE_SIDES), default="cpu",
                   help="cpu: rnnx train's own model against torch.nn (the default); cuda: a "
                        "GPU-sized model (hidden 512, batch 256, time 50, features 64) on rnnx's "
                        "CuPy and torch-CUDA backends against torch.nn on cuDNN")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per worker")
    p.add_argument("--cell", action="append", choices=CELLS,
                   help="cells (repeatable; default all three)")
    p.add_argument("--threads", type=int, default=None,
                   help="limit each worker's BLAS/OpenMP threads (default: the libraries' own)")
    p.add_argument("--out", type=Path, default=None,
                   help="results path without suffix (default benchmarks/results/train, "
                        "train-cuda with --device cuda)")
    args = p.parse_args(argv)
    dev = args.device
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs, tuple(args.cell or ["rnn"]), dev)))
        return 0
    ref = REFERENCE_SIDE[dev]
    skipped = {s: why for s in DEVICE_SIDES[dev] if (why := side_unavailable(s, dev))}
    for s, why in skipped.items():
        print(f"skip {s}: {why}")
    if ref in skipped:
        print(f"the reference {ref} cannot run here: {skipped[ref]}", file=sys.stderr)
        return 1
    sides = [s for s in DEVICE_SIDES[dev] if s not in skipped]
    cells = tuple(args.cell or CELLS)
    rates = {c: {s: [] for s in sides} for c in cells}
    info = {}
    for r in range(args.rounds):
        for side in (sides if r % 2 == 0 else sides[::-1]):  # one process a side: its cells
            got = spawn("benchmarks.train_throughput",
                        [side, *(a for c in cells for a in ("--cell", c)), "--epochs",
                         str(args.epochs), "--device", dev],
                        threads=args.threads, what=f"{side} ({', '.join(cells)})")
            for cell in cells:
                rates[cell][side].extend(got["rates"][cell])
            info[side] = got["info"]
            print(f"  round {r + 1}/{args.rounds}: {side}: " + ", ".join(
                f"{c} {max(got['rates'][c]):.0f}" for c in cells) + " samples/s", flush=True)
    per_cell = {}
    for cell, rs in rates.items():
        best = {s: max(v) for s, v in rs.items()}
        per_cell[cell] = {"rates": rs, "best": best,
                          "median": {s: statistics.median(v) for s, v in rs.items()},
                          "ratio_best": {s: best[s] / best[ref] for s in sides}}
    gpu = next((i.get("device") for i in info.values() if i.get("device")), None)
    result = {"device": dev, "config": GPU_CONFIG if dev == "cuda" else CONFIG, "skipped": skipped,
              "machine": machine(), "gpu": gpu, "threads": args.threads or "library default",
              "rounds": args.rounds, "epochs": args.epochs, "info": info, "cells": per_cell}
    md = to_markdown(result)
    out = args.out or RESULTS / ("train-cuda" if dev == "cuda" else "train")
    write_atomic(out.with_suffix(".json"), json.dumps(result, indent=1))
    write_atomic(out.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
