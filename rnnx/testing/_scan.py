"""Tolerances for results of a linear scan ``h_t = a_t h_{t-1} + b_t``
(:mod:`rnnx.functional.scan`) and of the cells built on it (minGRU, minLSTM).

A rounding error ``e_k`` made at step ``k`` reaches ``h_t`` multiplied by ``P(k, t) = a_{k+1}
... a_t``: ``error of h_t = sum_k P(k, t) e_k``. Two kinds of ``e_k``:

* the roundings of the step's own arithmetic and of what ``b_k`` is computed from (``K`` of
  them, each of relative size ``u = eps / 2``) vary from step to step; taken as independent
  (the probabilistic model of :mod:`rnnx.testing._checks`) they add up to about
  ``lambda * u * sqrt(K * N_t)`` times the size of the terms, with ``N_t = sum_k P(k, t)^2``;
* the rounding of the coefficient itself, ``|delta a_k| <= 2 eps a_k`` (a sigmoid of four
  roundings, each of relative size ``u``), times ``h_{k-1}``, may have the same sign at every
  step when the gate barely varies (a state kept for thousands of steps): no cancellation,
  at most ``2 eps * M_t`` times ``max |h|`` with ``M_t = sum_k P(k, t)`` (since
  ``sum_k P(k, t) a_k <= M_t``).

``N_t`` and ``M_t`` are the scan's *memory*, the scans of ``a^2`` and of ``a`` with ``b = 1``:
both at most ``t + 1``, which they reach only when every ``a = 1`` (the worst case, where
:func:`rnnx.testing.recurrence_rtol`'s ``sqrt(time)`` applies to ``N``); about ``1 / (1 - a^2)``
and ``1 / (1 - a)`` for a constant ``a < 1``. The adjoint ``G_t = g_t + a_{t+1} G_{t+1}`` has
the same bounds with the memory taken right to left. A weight gradient sums ``batch * time``
products on top (``sqrt(batch * time)``, as in ``recurrence_rtol``), an input gradient
``G * hidden``.

So a result is compared, relative to the reference array's largest magnitude, with::

    rtol = gain * eps * (SAFETY * sqrt(N * terms + sums) + 2 M)

``terms``: the roundings on the path into one step (2 for the scan itself, 2 more where ``a``
and ``b`` are rounded from float64; for a minimal RNN the input projection's ``features + 1``
products and the gates' elementwise operations, :data:`MIN_RNN_GATE_ROUNDINGS`). ``sums``: the
length of a sum the result is taken over afterwards (0 for the states). With gates near 0.5
(``N``, ``M`` about 2) and the test cases' sizes this is ~4e-6 in float32: a 2e-4 error fails.
With ``a = 0.9997`` (``M`` about 3000) float32 itself promises no better than ~8e-4: each
stored coefficient is ``1 - 3.4e-4`` to within ``6e-8``, and ``3000`` of them multiplied.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._backend import host_namespace, to_numpy
from ._checks import SAFETY

__all__ = ["MIN_RNN_GATE_ROUNDINGS", "ScanMemory", "scan_memory", "scan_rtol"]

#: Elementwise roundings between the input projection and the new state in one step of a
#: minimal RNN (minLSTM's, the longer: two ``logaddexp``, a subtraction, a sigmoid of four
#: operations, ``1 - f'``, the candidate's four, two products and the scan's two).
MIN_RNN_GATE_ROUNDINGS = 16


class ScanMemory(NamedTuple):
    """The largest ``N_t = sum_k P(k, t)^2`` and ``M_t = sum_k P(k, t)`` over every step,
    sample and unit, in both directions (see the module docstring)."""

    squares: float
    sums: float


def scan_memory(a: Any) -> ScanMemory:
    """The memory of a scan with coefficients ``a (batch, time, hidden)`` (any namespace;
    computed on the host in float64, step by step): the forward ``N_t = a_t^2 N_{t-1} + 1``,
    ``M_t = a_t M_{t-1} + 1`` and the adjoint's, ``N'_t = a_{t+1}^2 N'_{t+1} + 1``,
    ``M'_t = a_{t+1} M'_{t+1} + 1``."""
    hnp = host_namespace()
    a1 = hnp.abs(to_numpy(a).astype("float64"))  # (B, T, H)
    time = a1.shape[1]
    zero = hnp.zeros(a1[:, 0, :].shape)
    n_f, m_f, n_b, m_b = zero, zero, zero, zero
    squares = sums = 1.0
    for t in range(time):
        a_t = a1[:, t, :]
        n_f, m_f = a_t * a_t * n_f + 1.0, a_t * m_f + 1.0
        nxt = a1[:, time - t, :] if t > 0 else 1.0  # a_{s+1} for s = time - 1 - t
        n_b, m_b = nxt * nxt * n_b + 1.0, nxt * m_b + 1.0
        squares = max(squares, float(n_f.max()), float(n_b.max()))
        sums = max(sums, float(m_f.max()), float(m_b.max()))
    return ScanMemory(squares, sums)


def scan_rtol(dtype: Any, xp: Any, *, memory: ScanMemory, terms: int, sums: int = 0,
              gain: float = 1.0) -> float:
    """``gain * eps * (SAFETY * sqrt(memory.squares * terms + sums) + 2 * memory.sums)`` for
    a floating ``dtype`` of namespace ``xp`` (see the module docstring)."""
    eps = float(xp.finfo(dtype).eps)
    return gain * eps * (SAFETY * math.sqrt(memory.squares * terms + sums) + 2.0 * memory.sums)
