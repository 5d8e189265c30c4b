"""Data-parallel training on dask (docs/dask.md), measured: samples per second of one process
(the in-memory fit) against a ``LocalCluster`` of 1 and 2 worker processes, at a batch large
enough to pay (batch 1024, hidden 256, time 50, float32), and the latency of one data-parallel
step with a tiny model (where the step is nothing but the round trip).

    python -m benchmarks.dask_scale [--rounds 3] [--quick]

Every (configuration, round) runs in its own process, the configurations' order alternating
each round; every BLAS pool is capped at one thread (the driver, each worker), so "2 workers"
means two cores. A run times the epochs after the first (which includes persisting the
shards), from the fit's own per-epoch callback. The one-minute load average is read before and
after every run: the figures mean something only on a quiet machine, and the spread between
rounds says how quiet it was. ``--quick``: a smaller data set and fewer epochs (about a minute
in all) to check that it runs, or to rerun on another machine.

Results: benchmarks/results/dask-scale.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from ._workers import RESULTS, machine, spawn, write_atomic

BIG = {"batch": 1024, "hidden": 256, "time": 50, "features": 8, "dtype": "float32"}
TINY = {"batch": 8, "hidden": 4, "time": 2, "features": 2, "dtype": "float32"}
CONFIGS = ["one process", "dask, 1 worker", "dask, 2 workers"]


def _worker(config: str, model: dict, n: int, epochs: int) -> dict:
    """One timed fit in this process: ``{"samples_per_s", "step_s", "load"}``."""
    import numpy as np

    from rnnx.models import RNNClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, model["time"], model["features"])).astype(model["dtype"])
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    est = RNNClassifier(hidden_size=model["hidden"], batch_size=model["batch"], epochs=epochs,
                        random_state=0, dtype=model["dtype"])
    stamps: list[float] = []

    def tick(epoch: int, history: dict) -> None:
        stamps.append(time.perf_counter())

    load = [os.getloadavg()[0]]
    if config == "one process":
        est.fit(X, y, callback=tick)
    else:
        import dask.array as da
        import distributed

        workers = int(config.split(",")[1].split()[0])
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as cluster, \
                distributed.Client(cluster):
            rows = -(-n // workers)  # one chunk per worker
            est.fit(da.from_array(X, chunks=(rows, *X.shape[1:])),
                    da.from_array(y, chunks=(rows,)), callback=tick)
    load.append(os.getloadavg()[0])
    timed = stamps[-1] - stamps[0]  # epochs 2..epochs
    steps = (epochs - 1) * -(-n // model["batch"])
    return {"samples_per_s": n * (epochs - 1) / timed, "step_s": timed / steps, "load": load}


def _run(config: str, model: dict, n: int, epochs: int) -> dict:
    arg = json.dumps({"config": config, "model": model, "n": n, "epochs": epochs})
    return spawn("benchmarks.dask_scale", [arg], threads=1, what=config)


def _spread(values: list[float]) -> str:
    med = statistics.median(values)
    return f"±{100 * (max(values) - min(values)) / 2 / med:.0f} %" if len(values) > 1 else "-"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dask_scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small data, 1 round: a smoke run")
    p.add_argument("--out", type=Path, default=RESULTS / "dask-scale")
    args = p.parse_args(argv)
    if args.worker:
        a = json.loads(args.worker)
        print(json.dumps(_worker(a["config"], a["model"], a["n"], a["epochs"])))
        return
    rounds = 1 if args.quick else args.rounds
    n_big, ep_big = (2048, 2) if args.quick else (4096, 3)  # 2 (4) steps of 1024 an epoch
    results: dict[str, list[dict]] = {c: [] for c in CONFIGS}
    lat: list[dict] = []
    for r in range(rounds):
        order = CONFIGS if r % 2 == 0 else CONFIGS[::-1]
        for c in order:
            results[c].append(_run(c, BIG, n_big, ep_big))
            print(f"round {r + 1} {c}: {results[c][-1]}", file=sys.stderr)
        lat.append(_run("dask, 2 workers", TINY, 64, 4 if args.quick else 6))
        print(f"round {r + 1} latency: {lat[-1]}", file=sys.stderr)
    base = statistics.median(x["samples_per_s"] for x in results["one process"])
    lines = [f"# Data-parallel training on dask: {machine().get('cpu', '')}, "
             f"{os.cpu_count()} cores", "",
             f"Model: hidden {BIG['hidden']}, time {BIG['time']}, features {BIG['features']}, "
             f"batch {BIG['batch']}, {BIG['dtype']}, Elman; {n_big} samples, {ep_big - 1} timed "
             f"epoch(s); {rounds} round(s), medians, one BLAS thread per process.", "",
             "| configuration | samples/s | spread | vs one process | step (s) | load 1-min "
             "(min-max) |", "|---|---|---|---|---|---|"]
    for c in CONFIGS:
        sps = [x["samples_per_s"] for x in results[c]]
        loads = [v for x in results[c] for v in x["load"]]
        lines.append(f"| {c} | {statistics.median(sps):.0f} | {_spread(sps)} | "
                     f"{statistics.median(sps) / base:.2f}x | "
                     f"{statistics.median(x['step_s'] for x in results[c]):.3f} | "
                     f"{min(loads):.1f}-{max(loads):.1f} |")
    steps = [x["step_s"] for x in lat]
    lines += ["", f"Latency of one data-parallel step (2 workers, hidden {TINY['hidden']}, time "
              f"{TINY['time']}, batch {TINY['batch']}): {1000 * statistics.median(steps):.1f} ms "
              f"median ({_spread(steps)} over {len(steps)} run(s)).", ""]
    text = "\n".join(lines)
    print(text)
    write_atomic(args.out.with_suffix(".md"), text)
    write_atomic(args.out.with_suffix(".json"), json.dumps(
        {"big": BIG, "tiny": TINY, "n": n_big, "epochs": ep_big, "results": results,
         "latency": lat}, indent=1))


if __name__ == "__main__":
    main()
