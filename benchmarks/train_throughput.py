"""User-level training throughput: samples per second of one model trained with rnnx and the same
model, optimizer and batch size written with ``torch.nn`` (CPU), each in its own process.

    python -m benchmarks.train_throughput [--rounds 3] [--epochs 3]

The model (the default of ``rnnx train``): scikit-learn's 8x8 digits read as sequences of
8 rows of 8 pixels (``(batch, time=8, features=8)``, pixels ÷ 16), an Elman RNN (tanh, zero
initial state) of ``hidden`` units, a dense layer on the last state to 10 classes, mean softmax
cross-entropy, Adam, mini-batches of ``batch`` drawn from a seeded shuffle each epoch.

The rnnx side is exactly what ``rnnx train`` runs: ``ScratchSimpleRNNClassifier`` with its
defaults (the same as the command's), one ``partial_fit`` call per epoch (so the estimator's
per-epoch bookkeeping — the loss sync, the divergence check, the history — is counted). The
torch side is the same model, optimizer, learning rate, clipping and batch size with
``torch.nn``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .run import RESULTS, _machine, _thread_info, _write_atomic, thread_env

#: ``rnnx train``'s defaults (see ``rnnx train --help``): hidden 64, batch 32, Adam lr 0.005,
#: global-norm clipping at 5, float32.
CONFIG = {"hidden": 64, "batch": 32, "lr": 0.005, "clip": 5.0, "seed": 0, "dtype": "float32"}


def _digits():
    import numpy as np

    from rnnx.datasets import load_digits_sequences

    x, y = load_digits_sequences()  # (N, 8, 8): rows as time steps, pixels / 16
    return np.ascontiguousarray(x.astype(CONFIG["dtype"])), y.astype(np.int64)


def make_rnnx_trainer(cfg: dict):
    """``epoch(x, y, rng)``: one epoch of ``rnnx train``'s model (the estimator's own
    ``partial_fit``; it shuffles with its own seeded generator, so ``rng`` is unused)."""
    import numpy as np

    from rnnx.models import ScratchSimpleRNNClassifier

    clf = ScratchSimpleRNNClassifier(hidden_size=cfg["hidden"], batch_size=cfg["batch"],
                                     learning_rate=cfg["lr"], clip_norm=cfg["clip"],
                                     dtype=cfg["dtype"], random_state=cfg["seed"])
    classes = np.arange(10)

    def epoch(x, y, shuffle_rng):
        clf.partial_fit(x, y, classes=classes)

    return epoch


def make_torch_trainer(cfg: dict):
    """The same model, loss, optimizer and batch size with ``torch.nn`` (CPU)."""
    import torch

    torch.manual_seed(cfg["seed"])
    dt = getattr(torch, cfg["dtype"])
    rnn = torch.nn.RNN(8, cfg["hidden"], batch_first=True).to(dt)
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

    return epoch


SIDES = {"rnnx train": (make_rnnx_trainer, "numpy"), "torch.nn": (make_torch_trainer, "torch")}


def worker(side: str, epochs: int) -> dict:
    import numpy as np

    x, y = _digits()
    make, library = SIDES[side]
    epoch = make(CONFIG)
    rng = np.random.default_rng(CONFIG["seed"])
    epoch(x, y, rng)  # warm-up epoch
    rates = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        epoch(x, y, rng)
        rates.append(len(x) / (time.perf_counter() - t0))
    return {"rates": rates, "info": _thread_info(library)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per worker")
    p.add_argument("--threads", type=int, default=None,
                   help="limit each worker's BLAS/OpenMP threads (default: the libraries' own)")
    p.add_argument("--out", type=Path, default=RESULTS / "train")
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs)))
        return 0
    rates: dict[str, list[float]] = {s: [] for s in SIDES}
    info = {}
    for r in range(args.rounds):
        for side in (list(SIDES) if r % 2 == 0 else list(SIDES)[::-1]):
            proc = subprocess.run([sys.executable, "-m", "benchmarks.train_throughput", "--worker",
                                   side, "--epochs", str(args.epochs)], capture_output=True,
                                  text=True, cwd=Path(__file__).resolve().parent.parent, check=False,
                                  env=thread_env(args.threads))
            if proc.returncode != 0:
                raise RuntimeError(f"{side} failed:\n{proc.stderr[-4000:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            rates[side].extend(got["rates"])
            info[side] = got["info"]
    best = {s: max(v) for s, v in rates.items()}
    result = {"config": CONFIG, "machine": _machine(), "threads": args.threads or "library default",
              "rates": rates, "info": info,
              "best": best, "median": {s: statistics.median(v) for s, v in rates.items()},
              "ratio_best": best["rnnx train"] / best["torch.nn"]}
    md = (
        f"# Training throughput (digits 8x8, Elman hidden {CONFIG['hidden']}, batch "
        f"{CONFIG['batch']}, Adam lr {CONFIG['lr']}, {CONFIG['dtype']}; threads: "
        f"{result['threads']})\n\n"
        "| side | best samples/s | median samples/s |\n|---|---:|---:|\n"
        + "".join(f"| {s} | {best[s]:.0f} | {result['median'][s]:.0f} |\n" for s in SIDES)
        + f"\nrnnx ÷ torch.nn (best samples/s): {result['ratio_best']:.2f}x.\n"
    )
    _write_atomic(args.out.with_suffix(".json"), json.dumps(result, indent=1))
    _write_atomic(args.out.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
