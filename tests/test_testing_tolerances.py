"""The tolerances can see a real error: a forward pass whose float32 states are off by 2e-4
relative (a float32-only path that loses precision, a wrong constant) fails the float32 check
and the agreement table for every registered cell, on every backend, while the correct cell
passes both; and the bounds themselves follow the rounding analysis of ``rnnx.testing``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rnnx._backend import namespace
from rnnx.functional.registry import CELLS
from rnnx.testing import SAFETY, agreement_rows, recurrence_rtol, rounding_rtol

from . import _cell_checks as checks
from . import _cells

ERROR = 2e-4


def _float32_mutant(forward):
    def mutant(*args, **kwargs):
        out, cache = forward(*args, **kwargs)
        xp = namespace(out)
        return (out * (1.0 + ERROR) if out.dtype == xp.float32 else out), cache

    return mutant


@pytest.fixture
def mutate(monkeypatch):
    def _mutate(kind):
        spec = CELLS[kind]
        if spec.parallel is not None:  # the form the cell runs by default
            mutated = dataclasses.replace(spec, parallel=spec.parallel._replace(
                forward=_float32_mutant(spec.parallel.forward)))
        else:
            mutated = dataclasses.replace(spec, forward=_float32_mutant(spec.forward))
        monkeypatch.setitem(CELLS, kind, mutated)
    return _mutate


@pytest.mark.parametrize("kind", _cells.KINDS)
def test_float32_check_catches_a_2e_4_error(kind, xp, device, put, rng, mutate):
    checks.check_float32(kind, xp, device, put, np.random.default_rng(3))  # the cell passes
    mutate(kind)
    with pytest.raises(AssertionError, match="arrays not close"):
        checks.check_float32(kind, xp, device, put, np.random.default_rng(3))


@pytest.mark.parametrize("kind", _cells.KINDS)
def test_agreement_table_catches_a_2e_4_error(kind, backend, mutate):
    name = backend[0]
    rows = agreement_rows((name,), cells=(kind,))
    assert rows and all(r["ok"] for r in rows)
    mutate(kind)
    rows = agreement_rows((name,), cells=(kind,))
    f32 = [r for r in rows if r["dtype"] == "float32"]
    assert f32 and not any(r["ok"] for r in f32), [(r["max_rel"], r["limit"]) for r in f32]
    assert all(r["ok"] for r in rows if r["dtype"] == "float64")  # the mutant is float32-only


def test_bounds_follow_the_rounding_analysis():
    import numpy as host

    eps32, eps64 = float(host.finfo(host.float32).eps), float(host.finfo(host.float64).eps)
    assert rounding_rtol(host.float32, host) == SAFETY * eps32
    assert rounding_rtol(host.float64, host, steps=16, terms=9, gain=2.0) == SAFETY * 2 * eps64 * 12
    # A layer: time steps of (features + hidden + 1)-term sums, plus the batch-time sums of the
    # weight gradients.
    got = recurrence_rtol(host.float32, host, batch=4, time=12, features=3, hidden=8)
    assert got == pytest.approx(SAFETY * eps32 * math.sqrt(12 * (3 + 8 + 1 + 4)), rel=1e-15)
    # Tight enough to fail the mutant by a margin, loose enough for what is measured (2-4e-7).
    assert 10 * got < ERROR and got > 10 * 4e-7
    gained = recurrence_rtol(host.float32, host, batch=4, time=12, features=3, hidden=8,
                             gain=CELLS["ln_lstm"].rounding_gain)
    assert gained < ERROR
