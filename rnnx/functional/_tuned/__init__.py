"""The NumPy fast paths: each cell's readable step (:mod:`rnnx.functional.lstm` and the other
cell modules) rearranged for fewer array calls on NumPy, where every call costs about a
microsecond of dispatch and the seed-sized cases are dominated by it (docs/performance.md,
"Calls per time step").

What the tuned forms do that a readable step does not: the sigmoids' halving folded into the
weights once per call (``sigmoid(a) = (1 + tanh(a/2)) / 2`` with ``a/2`` from pre-scaled
weights: exact, powers of two), one ``tanh`` over all gate columns, gates written in place into
the input projection's rows, a first step from the zero state without the product of zeros,
the backward's gradient-independent factors computed a block of steps at a time while they fit
in cache, and the Elman cell's lean loops (two array calls a step). The backend decides where
they run (:func:`rnnx._backend.executor`: NumPy); everywhere else, and as the reference the
test suite checks them against on every case, the readable step runs.

Each module exposes ``forward(xp, x, params, state0, mask, options, workspace) -> (out, Cache)``
and ``backward(xp, cache, dhs, finals, state_grads, workspace) -> grads by name``, called by the
driver (:mod:`rnnx.functional._loop`) with checked arguments.
"""

from __future__ import annotations
