"""``rnnx check``: the seed value, the gradient check and the agreement of every cell with NumPy
float64 on every backend and device here (:mod:`rnnx.testing.agreement`)."""

from __future__ import annotations

import sys

import click
import numpy as np

from .._backend import REQUIRE_ENV, available_backends, required_backends, requirement_status
from ..testing import agreement_rows, float64_skips, seed_rows
from ._common import print_table

__all__ = ["check"]


@click.command()
@click.option("--backend", "backends", multiple=True,
              help="Backend to check (repeatable). Default: every backend available here.")
@click.option("--strict/--no-strict", default=True, show_default=True,
              help="Exit with status 1 if any value is outside its tolerance.")
def check(backends: tuple[str, ...], strict: bool) -> None:
    """Seed value, gradient check and agreement with NumPy float64 on every backend.

    Backends named in RNNX_REQUIRE_BACKENDS (and torch-cuda: torch on a CUDA device) must run:
    one that cannot is a failing row and exit status 1, whatever --strict says."""
    required = required_backends()  # ValueError for an unknown name: one line, exit 2
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
        if not s.available and s.name not in required:
            click.echo(f"skipped {s.name}: {s.reason}")
    rrows = [requirement_status(name) for name in required]
    if rrows:
        click.echo("")
        click.echo(f"Required backends ({REQUIRE_ENV}={','.join(required)})")
        print_table(["requirement", "runs here", "why not"],
                     [[r.name, "yes" if r.available else "NO", r.reason] for r in rrows])
    for line in float64_skips(backends):
        click.echo(f"skipped {line}")
    click.echo("")
    click.echo("Seed Problem 2 (the seed printed [[0.79494228 0.81839002 0.83939649 0.85584174]])"
               " and finite-difference check (float64)")
    srows = seed_rows(backends)
    print_table(
        ["backend", "device", "dtype", "last hidden state", "|err| vs seed", "grad-check rel err",
         "ok"],
        [[r["backend"], r["device"], r["dtype"],
          np.array2string(np.asarray(r["last_state"]), precision=8), f"{r['seed_err']:.1e}",
          "n/a (no float64)" if r["note"] else f"{r['grad_check']:.1e}",
          "yes" if r["ok"] else "NO"] for r in srows],
    )
    click.echo("")
    click.echo("Agreement with NumPy float64 (forward states and every gradient; rel = max abs "
               "deviation / max |reference| per array; limit = the rounding bound of the case "
               "in its dtype, rnnx.testing.recurrence_rtol)")
    arows = agreement_rows(backends)
    print_table(
        ["cell", "backend", "device", "dtype", "max abs dev", "max rel dev", "limit", "ok"],
        [[r["cell"], r["backend"], r["device"], r["dtype"], f"{r['max_abs']:.2e}",
          f"{r['max_rel']:.2e}", f"{r['limit']:.1e}", "yes" if r["ok"] else "NO"]
         for r in arows],
    )
    bad = [r for r in srows + arows if not r["ok"]]
    unmet = [r for r in rrows if not r.available]
    if bad:
        click.echo(f"\n{len(bad)} check(s) outside tolerance", err=True)
    else:
        click.echo("\nall checks within tolerance")
    if unmet:
        click.echo(f"{len(unmet)} required backend(s) cannot run here: "
                   + "; ".join(f"{r.name}: {r.reason}" for r in unmet), err=True)
        sys.exit(1)
    if bad and strict:
        sys.exit(1)
