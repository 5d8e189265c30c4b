"""Executors: how the driver's time loop runs on each backend. The maths of a step is the
cell's (:mod:`rnnx.functional._step`), the hoisted products and sums the driver's
(:mod:`rnnx.functional._loop`); an executor only runs the step over time, and the backend picks
it (:func:`executor`), never a cell.

* :class:`Eager` — a Python loop, one step after the other (NumPy, array-api-strict, torch,
  CuPy): per-step results go into time-major buffers allocated at the first step (lists stacked
  at the end for arrays that cannot be written in place), the masked carry, and the per-step
  observer. On NumPy it allows the cells' tuned whole-sequence forms (``tuned``).
* :class:`Scanned` — JAX: the forward and the backward are each one ``jax.lax.scan`` over the
  same step, and the driver's whole forward and whole backward are compiled with ``jax.jit``
  once per (cell, options, shapes, dtype): the step is traced once, so compile time does not
  grow with the sequence length. Traced and run under :func:`jax_matmul_precision`.

The two loops have the same contract:

``forward(stages, products, u, state0, mask, *, xp, workspace)``
    ``stages`` are the cell's forward stages with their parameters bound (``stage(u_t, v,
    state[, ctx])``), ``products`` one ``(w, bias or None)`` per stage (the recurrent product
    ``v = operand @ w + bias``), ``u (time, batch, .)`` the hoisted input side, ``state0`` the
    initial states, ``mask`` a boolean ``(batch, time)`` or ``None``. Returns time-major
    ``(states, saved, operands)``: the carried states, the step's saved arrays (those that are
    a new state are not stored twice: they come back as the state's array), and the operands of
    the products after the first.

``backward(adjoints, products_t, g0, states, state_init, saved, operands, mask, seq, observe,
*, xp, workspace)``
    ``adjoints`` are the stages' adjoints with their parameters bound, ``products_t`` the
    transposed weights, ``g0`` the gradients reaching the final states, ``states`` /
    ``state_init`` the forward's carried states and the initial ones, ``seq (batch, time,
    hidden)`` every step's output gradient (masked) or ``None``. Returns ``(du, dvs, dparams,
    g, observed)``: the per-step gradients of the input side and of each product
    (time-major), the per-step parameter contributions by name, the gradients reaching the
    initial states, and ``dL/dh_t`` of every step ``(time, batch, hidden)`` if ``observe``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import array_api_compat

from ._devices import jax_matmul_precision
from ._namespaces import backend_name, device, writeable

__all__ = ["GPU_EXECUTOR_ENV", "Compiled", "Eager", "Scanned", "epoch_executor", "executor",
           "forced_executor", "is_traced"]


def _run_stages(stages, products, u_t, state):
    """One forward step: each stage after its recurrent product; returns ``(new_state, saved,
    operands of the products after the first)``."""
    operand, ctx, operands = state[0], None, []
    for k, (stage, product) in enumerate(zip(stages, products)):
        if k:
            operands.append(operand)
        v = None  # a cell without recurrent weights (its gates read x_t only)
        if product is not None:
            w, bias = product
            v = operand @ w  # (B, width of the stage's blocks)
            if bias is not None:
                v = v + bias
        out = stage(u_t, v, state) if k == 0 else stage(u_t, v, state, ctx)
        operand, ctx = out
    return operand, ctx, operands


def _run_adjoints(adjoints, products_t, g, saved, prev, xp):
    """One backward step (the adjoints last to first); returns ``(StepGrads, dvs of the
    products after the first, g_prev)``: ``g_prev`` the gradients reaching ``prev``."""
    last = len(adjoints) - 1
    d, ctx, later = g, None, []
    for k in range(last, -1, -1):
        out = adjoints[k](d, saved, prev) if k == last else adjoints[k](d, saved, prev, ctx)
        if k == 0:
            grads = out
            break
        dv, ctx = out
        later.insert(0, dv)
        d = dv @ products_t[k]  # (B, H): the gradient of stage k's operand
    w0_t = products_t[0]
    g_prev = []
    for j, direct in enumerate(grads.dstate):
        if j == 0 and w0_t is not None:
            gh = grads.dv @ w0_t  # (B, H)
            g_prev.append(gh if direct is None else gh + direct)
        else:
            g_prev.append(direct if direct is not None else xp.zeros_like(g[j]))
    return grads, later, tuple(g_prev)


def _kept_saved(new: tuple, saved: tuple) -> tuple[list[int | None], list[int]]:
    """Which saved arrays are one of the new states (kept once: ``[state index or None]``) and
    the indices of the others."""
    where_state = []
    for s in saved:
        where_state.append(next((i for i, n in enumerate(new) if s is n), None))
    return where_state, [j for j, i in enumerate(where_state) if i is None]


#: On NumPy a cell's parallel-in-time form (the minimal RNNs' linear scan) beats its step
#: through the eager loop only while a step's ``batch * hidden`` is small: the scan makes every
#: elementwise pass of the loop once over ``(batch, time, hidden)`` plus its own passes, at
#: memory bandwidth, where the loop's per-step calls on ``(batch, hidden)`` stay in cache and pay
#: a call's overhead. Measured crossover (minGRU, float32, one thread, T = 1024;
#: docs/min-rnn.md): 1.2x faster at 2048 elements a step, 0.9x at 4096.
NUMPY_PARALLEL_MAX_STEP_ELEMENTS = 3072


class Eager:
    """The Python loop (see the module docstring). ``tuned``: whether the cells' NumPy fast
    paths may run (NumPy only)."""

    name = "eager"

    def __init__(self, tuned: bool) -> None:
        self.tuned = tuned

    def parallel_pays(self, batch: int, hidden: int) -> bool:
        """Whether a cell's parallel-in-time form should run instead of its step for a step of
        ``batch * hidden`` elements (:meth:`rnnx.functional.registry.Cell.run`'s
        ``form="auto"``): on NumPy (``tuned``) below :data:`NUMPY_PARALLEL_MAX_STEP_ELEMENTS`;
        elsewhere always (every call of the loop is a dispatch, on a GPU a kernel launch)."""
        return not self.tuned or batch * hidden < NUMPY_PARALLEL_MAX_STEP_ELEMENTS

    def run(self, fn: Callable[..., Any], static: Any, *args: Any, workspace: Any = None) -> Any:
        """``fn(static, *args, workspace=workspace)``: called as it is."""
        return fn(static, *args, workspace=workspace)

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` itself: nothing to compile."""
        return fn

    @staticmethod
    def _store(xp, slots, buffered, t, time, name, arrays, workspace):
        for k, a in enumerate(arrays):
            if buffered:
                if slots[k] is None:
                    shape = (time, *a.shape)
                    slots[k] = (workspace.empty(f"{name}{k}", shape, a, xp=xp) if workspace
                                is not None else xp.empty(shape, dtype=a.dtype, device=device(a)))
                slots[k][t, ...] = a  # (B, w): one contiguous row block
            else:
                if slots[k] is None:
                    slots[k] = [None] * time
                slots[k][t] = a

    @staticmethod
    def _stacked(xp, slots, buffered):
        return tuple(s if buffered else xp.stack(s, axis=0) for s in slots)  # (T, B, w) each

    def forward(self, stages, products, u, state0, mask, *, xp, workspace=None):
        time = u.shape[0]
        buffered = writeable(u)
        state = tuple(state0)
        n_state = len(state)
        state_slots: list[Any] = [None] * n_state
        saved_slots: list[Any] = []
        op_slots: list[Any] = [None] * (len(stages) - 1)
        keep = None
        for t in range(time):
            new, saved, operands = _run_stages(stages, products, u[t, ...], state)
            if keep is None:
                keep = _kept_saved(new, saved)
                saved_slots = [None] * len(keep[1])
            if mask is not None:
                m_t = mask[:, t, None]  # (B, 1)
                new = tuple(xp.where(m_t, n, s) for n, s in zip(new, state))  # carried if padded
            state = new
            # The states are always new arrays (the forward's output); the rest may be a
            # workspace's.
            self._store(xp, state_slots, buffered, t, time, "state", new, None)
            self._store(xp, saved_slots, buffered, t, time, "fwd", [saved[j] for j in keep[1]],
                        workspace)
            self._store(xp, op_slots, buffered, t, time, "operand", operands, workspace)
        states = self._stacked(xp, state_slots, buffered)
        others = self._stacked(xp, saved_slots, buffered)
        saved = tuple(states[i] if i is not None else others[keep[1].index(j)]
                      for j, i in enumerate(keep[0]))
        return states, saved, self._stacked(xp, op_slots, buffered)

    def backward(self, adjoints, products_t, g0, states, state_init, saved, operands, mask, seq,
                 observe, *, xp, workspace=None):
        time = states[0].shape[0]
        buffered = writeable(states[0])
        g = tuple(g0)
        # The padded steps' zero, made once: a Python 0.0 in `where` becomes an array every
        # call behind array-api-compat's torch wrapper (a host -> device copy on a GPU).
        zero = None if mask is None else xp.zeros((), dtype=g[0].dtype, device=device(g[0]))
        du_slot: list[Any] = [None]
        dv_slots: list[Any] = [None] * len(adjoints)
        dp_slots: list[Any] = []
        dp_names: list[str] = []
        same = first = False
        observed = [None] * time if observe else None
        for t in range(time - 1, -1, -1):
            if observed is not None:
                observed[t] = g[0]  # dL/dh_t, the total gradient reaching h_t
            prev = state_init if t == 0 else tuple(s[t - 1, ...] for s in states)
            saved_t = tuple(s[t, ...] for s in saved)
            gm = g if mask is None else tuple(xp.where(mask[:, t, None], a, zero) for a in g)
            grads, later, g_prev = _run_adjoints(adjoints, products_t, gm, saved_t, prev, xp)
            if mask is not None:
                # The carried state passes its gradient straight through a padded step.
                m_t = mask[:, t, None]  # (B, 1)
                g_prev = tuple(p + xp.where(m_t, zero, a) for p, a in zip(g_prev, g))
            if seq is not None and t > 0:
                g_prev = (g_prev[0] + seq[:, t - 1, :], *g_prev[1:])  # (B, H)
            g = g_prev
            if t == time - 1:
                dp_names = list(grads.dparams)
                dp_slots = [None] * len(dp_names)
                # The cells whose recurrent product takes the input side's gradient (Elman,
                # LSTM) return one array for both: stored once.
                same = grads.dv is grads.du
                # The first stage's dv is stored unless it is du's array, or there is none (a
                # cell without recurrent weights).
                first = not same and grads.dv is not None
                dv_slots = dv_slots if first else dv_slots[1:]
            self._store(xp, du_slot, buffered, t, time, "du", (grads.du,), workspace)
            self._store(xp, dv_slots, buffered, t, time, "dv",
                        (grads.dv, *later) if first else later, workspace)
            self._store(xp, dp_slots, buffered, t, time, "dp",
                        [grads.dparams[n] for n in dp_names], workspace)
        (du,) = self._stacked(xp, du_slot, buffered)
        dvs = ((du,) if same else ()) + self._stacked(xp, dv_slots, buffered)
        dparams = dict(zip(dp_names, self._stacked(xp, dp_slots, buffered)))
        obs = None if observed is None else xp.stack(observed, axis=0)  # (T, B, H)
        return du, dvs, dparams, g, obs


class Compiled:
    """A function compiled by :meth:`Scanned.compile`: call it like the function.
    :attr:`compilations` counts the shapes it has been compiled for."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        import jax

        self.fn = fn
        self._jitted = jax.jit(fn)

    def __call__(self, *args: Any) -> Any:
        with jax_matmul_precision():
            return self._jitted(*args)

    @property
    def compilations(self) -> int:
        return self._jitted._cache_size()


class Scanned:
    """JAX: ``jax.lax.scan`` loops, and :meth:`run` compiles the driver's function with
    ``jax.jit`` (see the module docstring)."""

    name = "scanned"
    tuned = False

    def parallel_pays(self, batch: int, hidden: int) -> bool:
        """Always: the parallel form compiles to a few fused passes over the whole sequence."""
        return True

    def __init__(self) -> None:
        self._jitted: dict[Callable[..., Any], Callable[..., Any]] = {}

    @property
    def compilations(self) -> int:
        """How many (function, static arguments, shapes) the driver's calls have compiled."""
        return sum(j._cache_size() for j in self._jitted.values())

    def run(self, fn: Callable[..., Any], static: Any, *args: Any, workspace: Any = None) -> Any:
        """``fn(static, *args)`` compiled: one ``jax.jit`` of ``fn`` with ``static`` (hashable)
        a static argument, traced and run under :func:`jax_matmul_precision` (so the cache
        key holds the one precision rnnx computes at). JAX arrays are immutable: no
        ``workspace``."""
        jitted = self._jitted.get(fn)
        if jitted is None:
            import jax

            jitted = self._jitted[fn] = jax.jit(fn, static_argnums=0)
        with jax_matmul_precision():
            return jitted(static, *args)

    def compile(self, fn: Callable[..., Any]) -> Compiled:
        """``fn`` (a function of arrays and pytrees of arrays) compiled with ``jax.jit``, once
        per shape, traced and run under :func:`jax_matmul_precision`."""
        return Compiled(fn)

    def scan(self, body: Callable[..., Any], carry: Any, xs: Any) -> tuple[Any, Any]:
        """``jax.lax.scan(body, carry, xs)``: a loop over the leading axis of ``xs`` inside a
        compiled function (the estimators' epoch over its mini-batches)."""
        from jax import lax

        return lax.scan(body, carry, xs)

    def placed_like(self, tree: Any, like: Any) -> Any:
        """The arrays of ``tree`` placed (committed) as ``like`` is: what a compiled call
        returns is, and a call whose arguments are placed differently compiles again."""
        import jax

        return jax.device_put(tree, like.sharding)

    def forward(self, stages, products, u, state0, mask, *, xp, workspace=None):
        from jax import lax

        probe: dict[str, Any] = {}

        def body(state, xs):
            u_t, m_t = xs
            new, saved, operands = _run_stages(stages, products, u_t, state)
            keep = _kept_saved(new, saved)
            probe["keep"] = keep
            if m_t is not None:
                new = tuple(xp.where(m_t[:, None], n, s) for n, s in zip(new, state))
            return new, (new, tuple(saved[j] for j in keep[1]), tuple(operands))

        m_tm = None if mask is None else xp.permute_dims(mask, (1, 0))  # (T, B)
        _, (states, others, operands) = lax.scan(body, tuple(state0), (u, m_tm))
        where_state, rest = probe["keep"]
        saved = tuple(states[i] if i is not None else others[rest.index(j)]
                      for j, i in enumerate(where_state))
        return states, saved, operands

    def backward(self, adjoints, products_t, g0, states, state_init, saved, operands, mask, seq,
                 observe, *, xp, workspace=None):
        from jax import lax

        time = states[0].shape[0]
        prev_tm = tuple(xp.concat([s0[None, ...], s[: time - 1, ...]], axis=0)
                        for s0, s in zip(state_init, states))  # (T, B, H): the state before t
        seq_prev = None
        if seq is not None:
            seq_tm = xp.permute_dims(seq, (1, 0, 2))  # (T, B, H)
            # the output gradient of step t-1, added after step t (none before step 1)
            seq_prev = xp.concat([xp.zeros_like(seq_tm[:1, ...]), seq_tm[: time - 1, ...]],
                                 axis=0)
        m_tm = None if mask is None else xp.permute_dims(mask, (1, 0))  # (T, B)

        def body(g, xs):
            saved_t, prev, m_t, s_prev = xs
            gm = g if m_t is None else tuple(xp.where(m_t[:, None], a, 0.0) for a in g)
            grads, later, g_prev = _run_adjoints(adjoints, products_t, gm, saved_t, prev, xp)
            if m_t is not None:
                g_prev = tuple(p + xp.where(m_t[:, None], 0.0, a) for p, a in zip(g_prev, g))
            if s_prev is not None:
                g_prev = (g_prev[0] + s_prev, *g_prev[1:])
            probe["same"] = same = grads.dv is grads.du
            first = not same and grads.dv is not None
            ys = (grads.du, (grads.dv, *later) if first else tuple(later), dict(grads.dparams),
                  g[0] if observe else None)
            return g_prev, ys

        probe: dict[str, bool] = {}
        g, (du, dvs, dparams, obs) = lax.scan(body, tuple(g0), (saved, prev_tm, m_tm, seq_prev),
                                              reverse=True)
        if probe["same"]:
            dvs = (du, *dvs)
        return du, dvs, dparams, g, obs


def is_traced(a: Any) -> bool:
    """Whether ``a`` is an abstract value being traced (a JAX tracer inside ``jax.jit``): its
    values cannot be read to the host, so checks that read them are left to the caller's
    concrete data."""
    if not array_api_compat.is_jax_array(a):
        return False
    import jax

    return isinstance(a, jax.core.Tracer)


_EAGER_TUNED = Eager(tuned=True)
_EAGER = Eager(tuned=False)
_SCANNED = Scanned()
_FORCED: list[Any] = []


_BY_NAMESPACE: dict[Any, Eager | Scanned] = {}


#: ``RNNX_GPU_EXECUTOR=eager`` turns the GPU executors off: CuPy's fused kernels and torch
#: CUDA's captured training step (both checked against the eager loop in the tests).
GPU_EXECUTOR_ENV = "RNNX_GPU_EXECUTOR"
_GPU: dict[str, Any] = {}


def _gpu_executors_on() -> bool:
    value = os.environ.get(GPU_EXECUTOR_ENV, "").strip().lower()
    if value not in ("", "eager", "auto"):
        raise ValueError(f"{GPU_EXECUTOR_ENV} must be 'eager' (GPU executors off) or 'auto' "
                         f"(the default); got {value!r}")
    return value != "eager"


def _gpu(name: str) -> Any:
    """The one :class:`~rnnx._backend._fused.Fused` (``"fused"``) or
    :class:`~rnnx._backend._capture.Captured` (``"captured"``) of this process, made on first
    use (they import this module)."""
    if name not in _GPU:
        if name == "fused":
            from ._fused import Fused

            _GPU[name] = Fused()
        else:
            from ._capture import Captured

            _GPU[name] = Captured()
    return _GPU[name]


def executor(xp: Any) -> Any:
    """The executor of the cells' time loops for arrays of namespace ``xp``: :class:`Scanned`
    for JAX; the fused kernels for CuPy (:class:`~rnnx._backend._fused.Fused`, unless
    ``RNNX_GPU_EXECUTOR=eager``); :class:`Eager` otherwise, with the cells' tuned forms on NumPy
    (where they measured faster than the readable step: docs/performance.md). Decided once per
    namespace: every call asks."""
    if _FORCED:
        return _FORCED[-1]
    ex = _BY_NAMESPACE.get(xp)
    if ex is None:
        if array_api_compat.is_jax_namespace(xp):
            ex = _SCANNED
        elif backend_name(xp) == "cupy" and _gpu_executors_on():
            ex = _gpu("fused")
        else:
            ex = _EAGER_TUNED if backend_name(xp) == "numpy" else _EAGER
        _BY_NAMESPACE[xp] = ex
    return ex


def epoch_executor(xp: Any, dev: Any) -> Any:
    """The executor that runs the estimators' training epoch as a whole
    (:class:`rnnx.models._training.CompiledEpoch`), or ``None`` where its steps run one by one:
    :class:`Scanned` for JAX (one compiled ``lax.scan``), the captured executor for torch on a
    CUDA device (:class:`~rnnx._backend._capture.Captured`: one CUDA graph of the step,
    replayed; unless ``RNNX_GPU_EXECUTOR=eager``)."""
    if _FORCED:
        forced = _FORCED[-1]
        return forced if forced.name in ("scanned", "captured") else None
    if array_api_compat.is_jax_namespace(xp):
        return _SCANNED
    if (backend_name(xp) == "torch" and getattr(dev, "type", None) == "cuda"
            and _gpu_executors_on()):
        return _gpu("captured")
    return None


@contextlib.contextmanager
def forced_executor(name: str):
    """Within the block every call runs on executor ``name``: ``"eager"`` (the readable step,
    no tuned forms), ``"tuned"`` (eager with the tuned forms, on any namespace), ``"scanned"``
    (JAX only), ``"fused"`` (CuPy's kernels) or ``"captured"`` (torch CUDA's captured training
    step). For tests that check one against the other."""
    table = {"eager": _EAGER, "tuned": _EAGER_TUNED, "scanned": _SCANNED}
    if name in ("fused", "captured"):
        table[name] = _gpu(name)
    if name not in table:
        raise ValueError(f"executor must be one of {sorted([*table, 'fused', 'captured'])}; "
                         f"got {name!r}")
    _FORCED.append(table[name])
    try:
        yield table[name]
    finally:
        _FORCED.pop()
