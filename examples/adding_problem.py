"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4) with T = 100: Elman vs LSTM
vs GRU through ``RNNRegressor(cell=...)``, same budget, plus the ||dL/dh_t|| picture.

Each cell trains on ``n_train`` fixed sequences for ``epochs`` passes in mini-batches of 64, so
``steps = epochs * n_train / batch`` Adam updates (lr 3e-3, global-norm clipping at 1.0),
float32, NumPy; the LSTM gets ``forget_bias=1.0``. Test MSE is measured on 1000 fixed
sequences; predicting the mean (1.0) scores Var(U1 + U2) = 1/6 ~ 0.167.

    OPENBLAS_NUM_THREADS=1 python examples/adding_problem.py --seeds 0 \\
        --plot docs/adding_grad_norms.png
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from rnnx.diagnostics import estimator_grad_norms, network_grad_norms, plot_grad_norms
from rnnx.models import RNNRegressor, SequenceNetwork


def adding(rng, n, time_steps):
    """``x (n, T, 2)``: values U(0, 1) and a marker channel with one 1 in each half; ``y (n,)``:
    the sum of the two marked values."""
    v = rng.uniform(0.0, 1.0, size=(n, time_steps))
    m = np.zeros((n, time_steps))
    m[np.arange(n), rng.integers(0, time_steps // 2, size=n)] = 1.0
    m[np.arange(n), rng.integers(time_steps // 2, time_steps, size=n)] = 1.0
    return np.stack([v, m], axis=2).astype(np.float32), (v * m).sum(axis=1).astype(np.float32)


def run(cell, *, epochs, n_train, time_steps, hidden, batch, lr, clip, seed, test):
    x_te, y_te = test
    x_tr, y_tr = adding(np.random.default_rng(seed), n_train, time_steps)
    opts = {"forget_bias": 1.0} if cell == "lstm" else {}
    model = RNNRegressor(cell=cell, hidden_size=hidden, epochs=epochs, batch_size=batch,
                         learning_rate=lr, clip_norm=clip, random_state=seed, dtype="float32",
                         **opts)
    # The untrained picture: a network drawn like the estimator's (same initialisers), with the
    # loss on standardised targets as the estimator trains it.
    init = SequenceNetwork(2, hidden, 1, cell=cell, loss="mse", seed=seed, dtype="float32",
                           init=model.init, recurrent_init=model.recurrent_init, **opts)
    z_te = ((y_te - y_tr.mean()) / y_tr.std()).astype(np.float32)[:, None]  # (N, 1)
    norms = {f"{cell} (init)": network_grad_norms(init, x_te, z_te)["l0"]}
    curve, start = [], time.perf_counter()

    def on_epoch(epoch, history):
        mse = float(np.mean((model.predict(x_te) - y_te) ** 2))
        curve.append((epoch * (n_train // batch), mse))
        print(f"{cell} seed {seed} epoch {epoch} (step {curve[-1][0]}): train loss "
              f"{history['loss'][-1]:.4f}, test MSE {mse:.4f} ({time.perf_counter() - start:.0f}s)",
              flush=True)

    model.fit(x_tr, y_tr, callback=on_epoch)
    norms[f"{cell} (trained)"] = estimator_grad_norms(model, x_te, y_te)["l0"]
    return curve, norms, time.perf_counter() - start


def _atomic_write(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--n-train", type=int, default=6400)
    ap.add_argument("--time", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--plot", default=None, help="write the ||dL/dh_t|| plot here (seed = first)")
    ap.add_argument("--json", default=None, help="write the learning curves here")
    a = ap.parse_args()
    test = adding(np.random.default_rng(12345), 1000, a.time)
    results, plot_norms = {}, {}
    for seed in a.seeds:
        for cell in a.cells:
            curve, norms, seconds = run(cell, epochs=a.epochs, n_train=a.n_train,
                                        time_steps=a.time, hidden=a.hidden, batch=a.batch,
                                        lr=a.lr, clip=a.clip, seed=seed, test=test)
            results[f"{cell}/{seed}"] = {"curve": curve, "seconds": seconds}
            print(f"{cell} seed {seed}: test MSE {curve[-1][1]:.4f} after {curve[-1][0]} steps, "
                  f"{seconds:.0f}s", flush=True)
            if seed == a.seeds[0]:
                plot_norms.update(norms)
            if a.json:
                _atomic_write(a.json, json.dumps(results, indent=1))
    print("\n| cell | " + " | ".join(f"seed {s}" for s in a.seeds) + " |")
    print("|------|" + "|".join("-------" for _ in a.seeds) + "|")
    for cell in a.cells:
        print(f"| {cell} | " + " | ".join(f"{results[f'{cell}/{s}']['curve'][-1][1]:.5f}"
                                          for s in a.seeds) + " |")
    if a.plot:
        styles = {f"{c} ({tag})": {"color": f"C{i}", "ls": "--" if tag == "init" else "-"}
                  for i, c in enumerate(a.cells) for tag in ("init", "trained")}
        plot_grad_norms(plot_norms, a.plot, styles=styles,
                        title=f"Adding problem, T={a.time}, seed {a.seeds[0]}: loss on $h_T$")


if __name__ == "__main__":
    main()
