"""The ``rnnx`` command line. This module (with the tests) is where results move to the host."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import click
import numpy as np

from . import __version__
from ._backend import (
    available_backends,
    devices,
    from_host,
    get_namespace,
    namespace,
    to_numpy,
)
from .datasets import SEED_EXPECTED_LAST_STATE, seed_example
from .functional import (
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)
from .testing import default_rtol, finite_difference_grads, grad_check_error

# --------------------------------------------------------------------------------------------
# Agreement cases: each cell kind maps host float64 arrays to a dict of named outputs (forward
# states and every gradient) computed on a given backend/device/dtype. New cells add an entry.
# --------------------------------------------------------------------------------------------


def _elman_case(rng: np.random.Generator, batch=4, time=16, features=5, hidden=8) -> dict:
    return {
        "x": rng.normal(size=(batch, time, features)),
        "w_x": rng.normal(size=(features, hidden)) / math.sqrt(features),
        "w_h": rng.normal(size=(hidden, hidden)) * (0.6 / math.sqrt(hidden)),
        "b": rng.normal(size=(hidden,)) * 0.1,
        "h0": rng.normal(size=(batch, hidden)) * 0.5,
        "dhs": rng.normal(size=(batch, time, hidden)),
    }


def _elman_run(nonlinearity: str) -> Callable[..., dict]:
    def run(a: dict) -> dict:
        hs, cache = rnn_forward(a["x"], a["w_x"], a["w_h"], a["b"], a["h0"],
                                nonlinearity=nonlinearity)
        return {"hs": hs, **rnn_backward(a["dhs"], cache)._asdict()}

    return run


def _elman_loss(nonlinearity: str) -> Callable[..., Callable[..., Any]]:
    def make(a: dict) -> Callable[..., Any]:
        def loss(x, w_x, w_h, b, h0):
            hs, _ = rnn_forward(x, w_x, w_h, b, h0, nonlinearity=nonlinearity)
            xp = namespace(hs)
            return xp.sum(hs * a["dhs"])

        return loss

    return make


def _gated_case(kind: str) -> Callable[..., dict]:
    gates = {"lstm": 4, "gru": 3}[kind]

    def make(rng: np.random.Generator, batch=4, time=16, features=5, hidden=8) -> dict:
        case = {
            "x": rng.normal(size=(batch, time, features)),
            "w_x": rng.normal(size=(features, gates * hidden)) / math.sqrt(features),
            "w_h": rng.normal(size=(hidden, gates * hidden)) * (0.6 / math.sqrt(hidden)),
            "h0": rng.normal(size=(batch, hidden)) * 0.5,
            "dhs": rng.normal(size=(batch, time, hidden)),
        }
        if kind == "lstm":
            case["b"] = rng.normal(size=(gates * hidden,)) * 0.1
            case["c0"] = rng.normal(size=(batch, hidden)) * 0.5
        else:
            case["b_ih"] = rng.normal(size=(gates * hidden,)) * 0.1
            case["b_hh"] = rng.normal(size=(gates * hidden,)) * 0.1
        return case

    return make


def _gated_forward(kind: str, a: dict, **p: Any) -> tuple[Any, Any]:
    v = {**a, **p}
    if kind == "lstm":
        return lstm_forward(v["x"], v["w_x"], v["w_h"], v["b"], v["h0"], v["c0"])
    return gru_forward(v["x"], v["w_x"], v["w_h"], v["b_ih"], v["b_hh"], v["h0"])


def _gated_run(kind: str) -> Callable[..., dict]:
    def run(a: dict) -> dict:
        hs, cache = _gated_forward(kind, a)
        back = lstm_backward if kind == "lstm" else gru_backward
        return {"hs": hs, **back(a["dhs"], cache)._asdict()}

    return run


def _gated_loss(kind: str) -> Callable[..., Callable[..., Any]]:
    def make(a: dict) -> Callable[..., Any]:
        def loss(**p):
            hs, _ = _gated_forward(kind, a, **p)
            return namespace(hs).sum(hs * a["dhs"])

        return loss

    return make


#: name -> (make host case, run on backend arrays, make scalar loss for the gradient check,
#: names of differentiable inputs)
CELLS: dict[str, tuple] = {
    "rnn-tanh": (_elman_case, _elman_run("tanh"), _elman_loss("tanh"),
                 ("x", "w_x", "w_h", "b", "h0")),
    "rnn-relu": (_elman_case, _elman_run("relu"), _elman_loss("relu"),
                 ("x", "w_x", "w_h", "b", "h0")),
    "lstm": (_gated_case("lstm"), _gated_run("lstm"), _gated_loss("lstm"),
             ("x", "w_x", "w_h", "b", "h0", "c0")),
    "gru": (_gated_case("gru"), _gated_run("gru"), _gated_loss("gru"),
            ("x", "w_x", "w_h", "b_ih", "b_hh", "h0")),
}


def _targets(names: tuple[str, ...]) -> list[tuple[str, Any, Any, str]]:
    """``(backend, xp, device, device label)`` for every requested backend/device available here."""
    out = []
    for name in names:
        xp = get_namespace(name)
        for dev in devices(name):
            label = str(dev)
            if label.startswith("array_api_strict.Device("):
                label = label.split("'")[1]  # "device1" rather than the full repr
            out.append((name, xp, dev, label))
    return out


def _put(host: dict, xp: Any, dev: Any, dtype: Any) -> dict:
    return {k: from_host(v, xp=xp, device=dev, dtype=dtype) for k, v in host.items()}


def _deviation(got: dict, ref: dict) -> tuple[float, float]:
    """Largest absolute deviation and largest deviation relative to each array's max magnitude."""
    max_abs = max_rel = 0.0
    for name, r in ref.items():
        d = np.abs(to_numpy(got[name]).astype(np.float64) - r)
        max_abs = max(max_abs, float(d.max()))
        max_rel = max(max_rel, float(d.max()) / max(float(np.abs(r).max()), 1e-300))
    return max_abs, max_rel


def agreement_rows(backends: tuple[str, ...], seed: int = 0) -> list[dict]:
    """For every cell kind, backend, device and dtype: deviation from NumPy float64."""
    rows = []
    hnp = get_namespace("numpy")
    for cell, (make, run, _, _) in CELLS.items():
        host = make(np.random.default_rng(seed))
        ref = {k: to_numpy(v) for k, v in run(_put(host, hnp, "cpu", hnp.float64)).items()}
        for name, xp, dev, label in _targets(backends):
            for dtype_name in ("float64", "float32"):
                dtype = getattr(xp, dtype_name)
                got = run(_put(host, xp, dev, dtype))
                max_abs, max_rel = _deviation(got, ref)
                # float64 runs the same operations in another order: ~1e-15 expected, 1e-10
                # flags a real difference. float32 is held to its dtype tolerance 4*sqrt(eps).
                limit = 1e-10 if dtype_name == "float64" else default_rtol(dtype, xp)
                rows.append({"cell": cell, "backend": name, "device": label,
                             "dtype": dtype_name, "max_abs": max_abs, "max_rel": max_rel,
                             "ok": max_rel <= limit})
    return rows


def seed_rows(backends: tuple[str, ...]) -> list[dict]:
    """The seed's Problem 2 value and a finite-difference gradient check on every target."""
    rows = []
    expected = np.asarray(SEED_EXPECTED_LAST_STATE)
    for name, xp, dev, label in _targets(backends):
        a = _put(seed_example(), xp, dev, xp.float64)
        hs, _ = rnn_forward(a["x"], a["w_x"], a["w_h"], a["b"])
        last = to_numpy(hs[:, -1, :])
        seed_err = float(np.max(np.abs(last - expected)))
        make, run, make_loss, wrt = CELLS["rnn-tanh"]
        case = _put(make(np.random.default_rng(1), batch=2, time=4, features=3, hidden=4),
                    xp, dev, xp.float64)
        grads = run(case)
        numeric = finite_difference_grads(make_loss(case), {k: case[k] for k in wrt})
        gc = max(grad_check_error(grads["d" + k], numeric[k]) for k in wrt)
        # The seed printed 8 decimals; finite differences of a correct gradient score ~1e-10.
        rows.append({"backend": name, "device": label, "last_state": last[0],
                     "seed_err": seed_err, "grad_check": gc,
                     "ok": seed_err <= 5e-9 and gc <= 1e-7})
    return rows


def _fmt_row(cols: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    click.echo(_fmt_row(header, widths))
    click.echo(_fmt_row(["-" * w for w in widths], widths))
    for r in rows:
        click.echo(_fmt_row(r, widths))


class _OneLineErrors(click.Group):
    """Turn expected user errors into one line on stderr and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ValueError, TypeError, OSError, RuntimeError) as exc:
            click.echo(f"rnnx: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnnx")
def main() -> None:
    """rnnx: recurrent networks with hand-derived BPTT on any Array API backend."""


@main.command()
@click.option("--backend", "backends", multiple=True,
              help="Backend to check (repeatable). Default: every backend available here.")
@click.option("--strict/--no-strict", default=True, show_default=True,
              help="Exit with status 1 if any value is outside its tolerance.")
def check(backends: tuple[str, ...], strict: bool) -> None:
    """Seed value, gradient check and agreement with NumPy float64 on every backend."""
    status = available_backends()
    if backends:
        for b in backends:
            if b not in status:
                raise click.BadParameter(f"unknown backend {b!r}; know {', '.join(status)}",
                                         param_hint="--backend")
            if not status[b].available:
                raise click.BadParameter(f"{b} is unavailable here: {status[b].reason}",
                                         param_hint="--backend")
    else:
        backends = tuple(n for n, s in status.items() if s.available)
    for s in status.values():
        if not s.available:
            click.echo(f"skipped {s.name}: {s.reason}")
    click.echo("")
    click.echo("Seed Problem 2 (float64; the seed printed "
               "[[0.79494228 0.81839002 0.83939649 0.85584174]]) and finite-difference check")
    srows = seed_rows(backends)
    _print_table(
        ["backend", "device", "last hidden state", "|err| vs seed", "grad-check rel err", "ok"],
        [[r["backend"], r["device"], np.array2string(r["last_state"], precision=8),
          f"{r['seed_err']:.1e}", f"{r['grad_check']:.1e}", "yes" if r["ok"] else "NO"]
         for r in srows],
    )
    click.echo("")
    click.echo("Agreement with NumPy float64 (forward states and every gradient; rel = max abs "
               "deviation / max |reference| per array)")
    arows = agreement_rows(backends)
    _print_table(
        ["cell", "backend", "device", "dtype", "max abs dev", "max rel dev", "ok"],
        [[r["cell"], r["backend"], r["device"], r["dtype"], f"{r['max_abs']:.2e}",
          f"{r['max_rel']:.2e}", "yes" if r["ok"] else "NO"] for r in arows],
    )
    bad = [r for r in srows + arows if not r["ok"]]
    if bad:
        click.echo(f"\n{len(bad)} check(s) outside tolerance", err=True)
        if strict:
            sys.exit(1)
    else:
        click.echo("\nall checks within tolerance")


if __name__ == "__main__":
    main()
