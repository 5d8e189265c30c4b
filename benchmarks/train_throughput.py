"""User-level training throughput: samples per second of one model trained with rnnx and the same
model, optimizer and batch size written with ``torch.nn`` (CPU), each in its own process.

    python -m benchmarks.train_throughput [--rounds 3] [--epochs 3]

The model (the default of ``rnnx train``): scikit-learn's 8x8 digits read as sequences of
8 rows of 8 pixels (``(batch, time=8, features=8)``, pixels ÷ 16), an Elman RNN (tanh, zero
initial state) of ``hidden`` units, a dense layer on the last state to 10 classes, mean softmax
cross-entropy, Adam, mini-batches of ``batch`` drawn from a seeded shuffle each epoch.

Hook for the lead: :data:`CONFIG` holds the hyper-parameters and must be set to ``rnnx train``'s
defaults, and :func:`make_rnnx_trainer` must return ``rnnx train``'s own epoch function (the
``rnnx`` side measured now, ``rnnx-functional``, is a stand-in written in this file from
``rnnx.functional`` with the dense head, loss and Adam inlined; it is what ``rnnx train`` will
do at best, so it bounds the real number from above).
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

#: ``rnnx train``'s defaults (placeholders until the training command exists: set them from it).
CONFIG = {"hidden": 64, "batch": 32, "lr": 1e-3, "seed": 0, "dtype": "float32"}


def _digits():
    import numpy as np
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(CONFIG["dtype"])  # (N, 8, 8): rows as time steps
    return np.ascontiguousarray(x), data.target.astype(np.int64)


def make_rnnx_trainer(cfg: dict):
    """Return ``epoch(x, y, rng) -> None`` that trains one epoch with rnnx.

    TODO(lead): return ``rnnx train``'s own epoch here once it exists. Until then this is a
    stand-in from :mod:`rnnx.functional` on NumPy, with the dense head, softmax cross-entropy
    and Adam written out.
    """
    import numpy as np

    from rnnx.functional import rnn_backward, rnn_forward

    rng = np.random.default_rng(cfg["seed"])
    h, f, c = cfg["hidden"], 8, 10
    k = 1.0 / np.sqrt(h)
    dt = cfg["dtype"]
    params = {
        "w_x": rng.uniform(-k, k, (f, h)).astype(dt), "w_h": rng.uniform(-k, k, (h, h)).astype(dt),
        "b": rng.uniform(-k, k, (h,)).astype(dt), "w_o": rng.uniform(-k, k, (h, c)).astype(dt),
        "b_o": rng.uniform(-k, k, (c,)).astype(dt),
    }
    m = {n: np.zeros_like(p) for n, p in params.items()}
    v = {n: np.zeros_like(p) for n, p in params.items()}
    step = [0]
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, cfg["lr"]

    def train_step(xb, yb):
        hs, cache = rnn_forward(xb, params["w_x"], params["w_h"], params["b"])
        h_t = hs[:, -1, :]  # (B, H)
        logits = h_t @ params["w_o"] + params["b_o"]  # (B, C)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(yb)), yb] -= 1.0
        dlogits = p / len(yb)  # (B, C): d(mean CE)/dlogits
        grads = {"w_o": h_t.T @ dlogits, "b_o": dlogits.sum(axis=0)}  # (H, C), (C,)
        g = rnn_backward(dlogits @ params["w_o"].T, cache)  # dh_T: (B, H)
        grads.update(w_x=g.dw_x, w_h=g.dw_h, b=g.db)
        step[0] += 1
        c1, c2 = 1 - b1 ** step[0], 1 - b2 ** step[0]
        for n, gr in grads.items():
            m[n] = b1 * m[n] + (1 - b1) * gr
            v[n] = b2 * v[n] + (1 - b2) * gr * gr
            params[n] -= (lr * (m[n] / c1) / (np.sqrt(v[n] / c2) + eps)).astype(dt)

    def epoch(x, y, shuffle_rng):
        order = shuffle_rng.permutation(len(x))
        for s in range(0, len(x), cfg["batch"]):
            idx = order[s: s + cfg["batch"]]
            train_step(x[idx], y[idx])

    return epoch


def make_torch_trainer(cfg: dict):
    """The same model, loss, optimizer and batch size with ``torch.nn`` (CPU)."""
    import torch

    torch.manual_seed(cfg["seed"])
    dt = getattr(torch, cfg["dtype"])
    rnn = torch.nn.RNN(8, cfg["hidden"], batch_first=True).to(dt)
    head = torch.nn.Linear(cfg["hidden"], 10).to(dt)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=cfg["lr"])
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
            opt.step()

    return epoch


SIDES = {"rnnx-functional": (make_rnnx_trainer, "numpy"), "torch.nn": (make_torch_trainer, "torch")}


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
              "ratio_best": best["rnnx-functional"] / best["torch.nn"]}
    md = (
        f"# Training throughput (digits 8x8, Elman hidden {CONFIG['hidden']}, batch "
        f"{CONFIG['batch']}, Adam lr {CONFIG['lr']}, {CONFIG['dtype']}; threads: "
        f"{result['threads']})\n\n"
        "| side | best samples/s | median samples/s |\n|---|---:|---:|\n"
        + "".join(f"| {s} | {best[s]:.0f} | {result['median'][s]:.0f} |\n" for s in SIDES)
        + f"\nrnnx ÷ torch.nn (best): {result['ratio_best']:.2f}x; the rnnx side is the stand-in "
        "until `rnnx train` is connected (see make_rnnx_trainer).\n"
    )
    _write_atomic(args.out.with_suffix(".json"), json.dumps(result, indent=1))
    _write_atomic(args.out.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
