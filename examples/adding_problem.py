"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4) with T = 100: Elman vs LSTM
vs GRU, same budget, plus the ||dL/dh_t|| picture.

A stand-in until the estimators support ``cell=``: it uses only rnnx layers and diagnostics,
with a hand-written linear head, MSE and Adam (global-norm clipping) in NumPy. Predicting the
mean (1.0) scores Var(U1 + U2) = 1/6 ~ 0.167.

    python examples/adding_problem.py --steps 4000 --seeds 0 1 2 --plot docs/adding_grad_norms.png
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from rnnx.diagnostics import plot_grad_norms, state_grad_norms
from rnnx.layers import GRU, LSTM, SimpleRNN


def adding(rng, n, time_steps):
    """``x (n, T, 2)``: values U(0, 1) and a marker channel with one 1 in each half; ``y (n,
    1)``: the sum of the two marked values."""
    v = rng.uniform(0.0, 1.0, size=(n, time_steps))
    m = np.zeros((n, time_steps))
    m[np.arange(n), rng.integers(0, time_steps // 2, size=n)] = 1.0
    m[np.arange(n), rng.integers(time_steps // 2, time_steps, size=n)] = 1.0
    return np.stack([v, m], axis=2), (v * m).sum(axis=1, keepdims=True)


def make_layer(cell, hidden, seed, dtype):
    if cell == "rnn":
        return SimpleRNN(2, hidden, seed=seed, dtype=dtype)
    if cell == "lstm":
        return LSTM(2, hidden, seed=seed, dtype=dtype, forget_bias=1.0)
    return GRU(2, hidden, seed=seed, dtype=dtype)


def run(cell, *, steps, time_steps, hidden, batch, lr, clip, seed, dtype, test):
    rng = np.random.default_rng(seed)
    x_te, y_te = (a.astype(dtype) for a in test)
    layer = make_layer(cell, hidden, seed, dtype)
    k = 1.0 / np.sqrt(hidden)
    head = {"w": rng.uniform(-k, k, size=(hidden, 1)).astype(dtype), "c": np.zeros(1, dtype)}
    params = {**{f"r.{n}": v for n, v in layer.params.items()}, **{f"h.{n}": v for n, v in head.items()}}
    m1 = {n: np.zeros_like(v) for n, v in params.items()}
    m2 = {n: np.zeros_like(v) for n, v in params.items()}

    def grad_norms(tag):
        # dL/dh_T of the test MSE through the head: the many-to-one picture.
        h = layer.forward(x_te)
        d = 2.0 * (h @ head["w"] + head["c"] - y_te) / len(y_te) @ head["w"].T  # (N, H)
        return {f"{cell} ({tag})": state_grad_norms(layer, x_te, d)["l0"]}

    norms = grad_norms("init")
    curve, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        x, y = (a.astype(dtype) for a in adding(rng, batch, time_steps))
        h = layer.forward(x)  # (B, H)
        d = 2.0 * (h @ head["w"] + head["c"] - y) / batch  # (B, 1)
        grads = {"h.w": h.T @ d, "h.c": d.sum(axis=0)}
        layer.backward(d @ head["w"].T)  # (B, H)
        grads.update({f"r.{n}": g for n, g in layer.grads.items()})
        total = np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))
        scale = min(1.0, clip / (total + 1e-12))
        for n, p in params.items():
            g = grads[n] * scale
            m1[n] = 0.9 * m1[n] + 0.1 * g
            m2[n] = 0.999 * m2[n] + 0.001 * g * g
            update = lr * (m1[n] / (1 - 0.9**step)) / (np.sqrt(m2[n] / (1 - 0.999**step)) + 1e-8)
            p -= update.astype(dtype)  # the layer's own parameter arrays, allocated by it
        if step % 250 == 0 or step == steps:
            mse = float(np.mean((layer.forward(x_te) @ head["w"] + head["c"] - y_te) ** 2))
            curve.append((step, mse))
            print(f"{cell} seed {seed} step {step}: test MSE {mse:.4f} "
                  f"({time.perf_counter() - start:.0f}s)", flush=True)
    norms.update(grad_norms("trained"))
    return curve, norms


def _atomic_write(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--time", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--plot", default=None, help="write the ||dL/dh_t|| plot here (seed = first)")
    ap.add_argument("--json", default=None, help="write the learning curves here")
    a = ap.parse_args()
    test = adding(np.random.default_rng(12345), 1000, a.time)
    results, plot_norms = {}, {}
    for seed in a.seeds:
        for cell in a.cells:
            curve, norms = run(cell, steps=a.steps, time_steps=a.time, hidden=a.hidden,
                               batch=a.batch, lr=a.lr, clip=a.clip, seed=seed, dtype=a.dtype,
                               test=test)
            results[f"{cell}/{seed}"] = curve
            if seed == a.seeds[0]:
                plot_norms.update(norms)
    print("\n| cell | " + " | ".join(f"seed {s}" for s in a.seeds) + " |")
    print("|------|" + "|".join("-------" for _ in a.seeds) + "|")
    for cell in a.cells:
        print(f"| {cell} | " + " | ".join(f"{results[f'{cell}/{s}'][-1][1]:.4f}" for s in a.seeds)
              + " |")
    if a.json:
        _atomic_write(a.json, json.dumps(results, indent=1))
    if a.plot:
        styles = {f"{c} ({tag})": {"color": f"C{i}", "ls": "--" if tag == "init" else "-"}
                  for i, c in enumerate(a.cells) for tag in ("init", "trained")}
        plot_grad_norms(plot_norms, a.plot, styles=styles,
                        title=f"Adding problem, T={a.time}, seed {a.seeds[0]}: loss on $h_T$")


if __name__ == "__main__":
    main()
