"""Which evaluation of the linear scan ``h_t = a_t h_{t-1} + b_t`` for rnnx: float32 error at
``T = 10^4`` against the float64 loop, and CPU time on NumPy (one thread), of

* ``loop``: the sequential recurrence, two array calls a step;
* ``chunked``: :func:`rnnx.functional.scan.scan` (two passes over ``sqrt(T)`` chunks, no
  logarithm, exponential or division);
* ``cumprod-div``: in each chunk ``h_t = P_t (s + cumsum(b_k / P_k))`` with ``P`` the
  cumulative product of ``a``, chunks carried as above;
* ``log-space``: Heinsen's form as Feng et al. use it for minGRU, ``log h_t = A_t +
  logcumsumexp(log b_k - A_k)``, ``A = cumsum(log a)``, over the whole sequence (torch's
  ``logcumsumexp``; the Array API has none).

on the scan of a minGRU (``a = 1 - z``, ``b = z g(v)``, ``b > 0`` as the log-space form
needs, ``h0 > 0``) with gates ``z = sigmoid(k)``: ``plain`` ``k ~ N(0, 1)``, ``keep``
``k ~ N(-4, 1)`` (memory ~30 steps), ``reset`` ``k ~ N(6, 9)`` (``a`` down to 1e-10).
Errors relative to the largest state; NaN counts. One process, deterministic data::

    python -m benchmarks.scan_forms [--time 10000] [--batch 8] [--hidden 64]

Writes ``benchmarks/results/scan-forms.md`` and ``.json`` (``--out``); prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from ._workers import RESULTS, machine, write_atomic


def _loop(a, b, h0):
    h, out = h0, np.empty_like(b)
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out[:, t] = h
    return out


def _chunked(a, b, h0):
    import array_api_compat.numpy as xp

    from rnnx.functional.scan import scan

    return scan(a, b, h0, xp=xp)


def _cumprod_div(a, b, h0):
    from rnnx.functional.scan import chunk_length

    batch, steps, hidden = a.shape
    length = chunk_length(steps)
    count = -(-steps // length)
    pad = count * length - steps
    if pad:
        a = np.concatenate([a, np.ones((batch, pad, hidden), a.dtype)], axis=1)
        b = np.concatenate([b, np.zeros((batch, pad, hidden), b.dtype)], axis=1)
    a4, b4 = a.reshape(batch, count, length, hidden), b.reshape(batch, count, length, hidden)
    p = np.cumprod(a4, axis=2)
    y = p * np.cumsum(b4 / p, axis=2)  # each chunk's scan from zero
    s, starts = h0, []
    for c in range(count):
        starts.append(s)
        s = p[:, c, -1] * s + y[:, c, -1]
    return (y + p * np.stack(starts, axis=1)[:, :, None]).reshape(batch, -1, hidden)[:, :steps]


def _log_space(a, b, h0):
    import torch

    la, lb = torch.log(torch.from_numpy(a)), torch.log(torch.from_numpy(b))
    lh0 = torch.log(torch.from_numpy(h0))[:, None]
    a_star = torch.cat([torch.zeros_like(lh0), torch.cumsum(la, dim=1)], dim=1)
    log_h = a_star + torch.logcumsumexp(torch.cat([lh0, lb], dim=1) - a_star, dim=1)
    return torch.exp(log_h[:, 1:]).numpy()


FORMS = {"loop": _loop, "chunked": _chunked, "cumprod-div": _cumprod_div,
         "log-space": _log_space}


def _case(kind, batch, steps, hidden, rng):
    k = rng.standard_normal((batch, steps, hidden))
    k = {"plain": k, "keep": k - 4.0, "reset": 3.0 * k + 6.0}[kind]
    v = rng.standard_normal((batch, steps, hidden))
    z = 1.0 / (1.0 + np.exp(-k))
    g = np.where(v >= 0, v + 0.5, 1.0 / (1.0 + np.exp(-v)))
    return 1.0 - z, z * g, np.abs(rng.standard_normal((batch, hidden))) + 0.1


def measure(batch: int, steps: int, hidden: int) -> list[dict]:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    rng = np.random.default_rng(20261204)
    rows = []
    with threadpool_limits(1):
        for kind in ("plain", "keep", "reset"):
            a, b, h0 = _case(kind, batch, steps, hidden, rng)
            ref = _loop(a, b, h0)
            scale = float(np.abs(ref).max())
            a32, b32, h32 = (v.astype(np.float32) for v in (a, b, h0))
            for name, form in FORMS.items():
                best = math.inf
                with np.errstate(all="ignore"):
                    for _ in range(3):
                        c0 = time.process_time()
                        h = form(a32, b32, h32)
                        best = min(best, time.process_time() - c0)
                bad = int(np.count_nonzero(~np.isfinite(h)))
                err = float(np.nanmax(np.abs(h.astype(np.float64) - ref))) / scale
                rows.append({"gates": kind, "form": name, "error": err, "nonfinite": bad,
                             "cpu_ms": 1e3 * best, "min_a": float(a.min())})
    return rows


def to_markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# Linear scan evaluations, float32, (batch, time, hidden) = ({meta['batch']}, "
             f"{meta['time']}, {meta['hidden']})", "",
             "Error: max |h - h_float64_loop| / max |h_float64_loop| of the float32 result; "
             "non-finite: NaN or inf states; CPU: best of 3 in one process, one thread "
             "(indicative: the cores are shared).", "",
             "| gates (min a) | form | float32 error | non-finite | CPU ms |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['gates']} ({r['min_a']:.0e}) | {r['form']} | {r['error']:.1e} "
                     f"| {r['nonfinite']} | {r['cpu_ms']:.0f} |")
    m = meta["machine"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--time", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--out", default=str(RESULTS / "scan-forms"),
                   help="path without suffix: .md and .json are written")
    args = p.parse_args(argv)
    rows = measure(args.batch, args.time, args.hidden)
    meta = {"batch": args.batch, "time": args.time, "hidden": args.hidden, "machine": machine()}
    md = to_markdown(rows, meta)
    write_atomic(Path(args.out + ".json"), json.dumps({"meta": meta, "rows": rows}, indent=1))
    write_atomic(Path(args.out + ".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
