"""The fused executor: each time step is its recurrent product(s) and ONE elementwise kernel
per stage, made from the cell's own step functions (Appleyard, Kocisky & Blunsom 2016, cuDNN's
RNN: a step is a GEMM plus one fused pointwise kernel).

The stages of a cell (:mod:`rnnx.functional._step`) are traced once per (stage, options,
dtype, shapes) into elementwise graphs (:mod:`rnnx._backend._fuse`); a *kernel backend* runs a
graph over the ``(batch, hidden)`` index space, reading its inputs and writing its outputs
straight into the executor's time-major buffers (the states, the saved arrays, the
gradients): no copies follow.

Kernel backends (:mod:`rnnx._backend._fuse_kernels`):

* ``CupyKernels`` compiles each graph into one CUDA kernel (``cupy.RawKernel``; float and
  double; ``--fmad=false``, so each multiply and add rounds as CuPy's own elementwise functions
  round it) and launches it.
* ``ReferenceKernels`` evaluates the same graph with the arrays' own namespace, one call per
  node: the executor's bookkeeping runs on the CPU with it, bit for bit equal to the eager loop.

Per step and direction the executor makes, per stage, one view (the product's operand, a slot
of a time-major buffer), one product and one kernel. Forward: ``operand @ w``, then the kernel
(the stage, the recurrent bias add, the masked carry of the states). Backward: the kernel, then
the product (the last stage's kernel also sums what reaches the step's states: ``dv @ w^T`` of
the step after, the cell's direct paths, the masked carry and the output gradient, in the
eager loop's order). Every other slot a kernel reads or writes goes to it as an
:class:`~rnnx._backend._fuse_kernels.At` (an address and strides; no view is made). A cell whose stages
cannot be traced (:class:`~rnnx._backend._fuse.NotFusable`: the LN-LSTM's layer norms reduce
over the hidden axis) runs on the eager loop; :attr:`Fused.fallbacks` says why.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ._executors import Eager
from ._fuse import NotFusable, Sym, Tracer, flatten, trace_call
from ._fuse import unflatten as _unflatten
from ._fuse_kernels import At, CupyKernels
from ._namespaces import device, writeable

__all__ = ["Fused"]


# -- tracing the stages ---------------------------------------------------------------------

def _unbind(stage: Any) -> tuple[Any, Mapping[str, Any], dict[str, Any]]:
    """``(function, params, options)`` of a stage the driver bound as ``partial(f, p, xp=xp,
    **options)``."""
    if (not isinstance(stage, functools.partial) or len(stage.args) != 1
            or "xp" not in stage.keywords):
        raise NotFusable("a stage not bound as partial(f, params, xp=..., **options)")
    options = {k: v for k, v in stage.keywords.items() if k != "xp"}
    try:
        hash(tuple(sorted(options.items())))
    except TypeError:
        raise NotFusable(f"unhashable options {options!r}") from None
    return stage.func, stage.args[0], options


class _Params(Mapping):
    """The parameters as a stage sees them while traced: a 1-D vector of whole hidden blocks
    becomes the input ``("param", name)``; anything else read raises :class:`NotFusable`."""

    def __init__(self, tracer: Tracer, params: Mapping[str, Any]) -> None:
        self._t, self._p = tracer, params
        self._made: dict[str, Sym] = {}

    def __getitem__(self, name: str) -> Sym:
        if name not in self._made:
            a = self._p[name]
            h = self._t.hidden
            if a.ndim != 1 or a.shape[0] % h or not a.shape[0]:
                raise NotFusable(f"parameter {name!r} of shape {tuple(a.shape)} read in a stage "
                                 "(only 1-D vectors of whole hidden blocks)")
            self._made[name] = self._t.input(("param", name), "vec", a.shape[0] // h)
        return self._made[name]

    def __iter__(self):
        return iter(self._p)

    def __len__(self) -> int:
        return len(self._p)


def _row(s: Any, what: str, blocks: int | None = None) -> Sym:
    if not isinstance(s, Sym) or s.kind != "row" or s.blocks[0].dtype != "f":
        raise NotFusable(f"{what} is not a float (batch, n*hidden) array")
    if blocks is not None and len(s.blocks) != blocks:
        raise NotFusable(f"{what} has {len(s.blocks)} hidden blocks, {blocks} expected")
    return s


def _whole(width: int, hidden: int, what: str) -> int:
    """``width`` in hidden blocks."""
    if width % hidden or not width:
        raise NotFusable(f"{what} is {width} wide, not a whole number of {hidden}-wide blocks")
    return width // hidden


def _pair(out: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(out, tuple) or len(out) != 2:
        raise NotFusable(f"{what} returned {type(out).__name__}, not a pair")
    return out


def _names(stages: Any) -> str:
    """The stages' function names, for :attr:`Fused.fallbacks` (never their arguments' reprs:
    a device array's repr copies it to the host)."""
    return " + ".join(getattr(getattr(s, "func", s), "__qualname__", type(s).__name__)
                      for s in stages)


def _param_key(p: Mapping[str, Any]) -> tuple:
    return tuple((k, tuple(a.shape)) for k, a in p.items() if getattr(a, "ndim", None) == 1)


class _Forward:
    """A traced forward: per stage its graph, and the layout of what it writes."""

    def __init__(self, graphs, where_state, rest, saved_widths, ctx_widths):
        self.graphs = graphs  # one per stage
        self.where_state = where_state  # per saved array: the state it is, or None
        self.rest = rest  # indices of the saved arrays stored apart
        self.saved_widths = saved_widths  # blocks of each stored saved array
        self.ctx_widths = ctx_widths  # per stage: blocks of each ctx leaf it writes


class _Backward:
    """A traced backward: per stage its graph (the last stage's twice: at the last time step,
    from the final gradients; at the others, summing what reaches the states)."""

    def __init__(self, first, rest, same, direct, dp_names, du_blocks, ctx_widths):
        self.first, self.rest = first, rest  # graphs per stage
        self.same = same  # the first stage's dv is its du
        self.direct = direct  # per state: whether the cell has a direct path to it
        self.dp_names = dp_names
        self.du_blocks = du_blocks
        self.ctx_widths = ctx_widths


# -- the executor ---------------------------------------------------------------------------

_NO_PRODUCT = "no recurrent product (a cell without w_h): the eager loop"


class Fused(Eager):
    """The eager executor's contract (see :mod:`rnnx._backend._executors`) with each step's
    pointwise part fused: per stage one product and one kernel of ``kernels``
    (:class:`CupyKernels` by default, made on first use). A cell that cannot be fused runs on
    the eager loop; :attr:`fallbacks` maps its stage names to the reason. Traces are cached
    per (stages, options, dtype, shapes, mask/observer/output-gradient presence)."""

    name = "fused"

    def __init__(self, kernels: Any = None) -> None:
        super().__init__(tuned=False)
        self._kernels = kernels
        self._plans: dict[tuple, Any] = {}
        self.fallbacks: dict[str, str] = {}

    @property
    def kernels(self) -> Any:
        if self._kernels is None:
            self._kernels = CupyKernels()
        return self._kernels

    def _plan(self, key: tuple, make: Any, names: str) -> Any:
        plan = self._plans.get(key)
        if plan is None:
            try:
                plan = make()
            except NotFusable as exc:
                plan = exc
                self.fallbacks[names] = str(exc)
            self._plans[key] = plan
        return plan

    # -- forward -----------------------------------------------------------------------------
    def forward(self, stages, products, u, state0, mask, *, xp, workspace=None):
        if any(p is None for p in products):
            # A cell without recurrent weights (minGRU, minLSTM) has its own parallel form,
            # which the layers run; its step form stays the eager loop.
            self.fallbacks[_names(stages)] = _NO_PRODUCT
            return super().forward(stages, products, u, state0, mask, xp=xp, workspace=workspace)
        try:
            unbound = [_unbind(s) for s in stages]
        except NotFusable as exc:
            self.fallbacks[_names(stages)] = str(exc)
            return super().forward(stages, products, u, state0, mask, xp=xp, workspace=workspace)
        time, batch, width = u.shape
        hidden = state0[0].shape[1]
        p = unbound[0][1]
        key = ("forward", tuple((f, tuple(sorted(o.items()))) for f, _, o in unbound), u.dtype,
               batch, hidden, width, tuple((tuple(w.shape), b is not None) for w, b in products),
               len(state0), mask is not None, _param_key(p))
        names = _names(stages)
        plan = self._plan(key, lambda: self._trace_forward(unbound, products, u, state0, mask, xp),
                          names)
        if isinstance(plan, NotFusable) or not writeable(u) or time == 0:
            return super().forward(stages, products, u, state0, mask, xp=xp, workspace=workspace)
        return self._run_forward(plan, unbound, products, u, state0, mask, xp, workspace)

    def _trace_forward(self, unbound, products, u, state0, mask, xp) -> _Forward:
        _, batch, width = u.shape
        hidden = state0[0].shape[1]
        _whole(width, hidden, "the input side u")
        for w, _ in products:
            _whole(w.shape[1], hidden, "a recurrent product")
        graphs, ctx_widths = [], []
        ctx_spec, widths = None, []
        last = len(unbound) - 1
        for k, ((f, p, options), (w, bias)) in enumerate(zip(unbound, products)):
            t = Tracer(xp, u.dtype, batch=batch, hidden=hidden)
            params = _Params(t, p)
            u_s = t.input(("u",), "row", width // hidden)
            v_s = t.input(("v",), "row", w.shape[1] // hidden)
            if bias is not None:
                v_s = v_s + t.input(("bias",), "vec", w.shape[1] // hidden)  # the driver's add
            state = tuple(t.input(("state", j), "row") for j in range(len(state0)))
            if k == 0:
                out = trace_call(f, params, u_s, v_s, state, xp=t.ns, **options)
            else:
                ctx_in = [t.input(("ctx", i), "row", n) for i, n in enumerate(widths)]
                out = trace_call(f, params, u_s, v_s, state, _unflatten(ctx_spec, ctx_in),
                                 xp=t.ns, **options)
            first, second = _pair(out, getattr(f, "__qualname__", "a stage"))
            outputs: list[tuple[Any, Sym]] = []
            if k < last:
                outputs.append((("operand",), _row(first, "a stage's operand", 1)))
                leaves, ctx_spec = flatten(second)
                widths = [len(_row(s, "a stage's context").blocks) for s in leaves]
                outputs += [(("ctx", i), s) for i, s in enumerate(leaves)]
                ctx_widths.append(widths)
            else:
                new = tuple(first) if isinstance(first, tuple) else None
                if new is None or len(new) != len(state0):
                    raise NotFusable(f"the last stage returned {first!r} as the new states")
                for s in new:
                    _row(s, "a new state", 1)
                saved = second if isinstance(second, tuple) else None
                if saved is None or not all(isinstance(s, Sym) for s in saved):
                    raise NotFusable("the last stage's saved arrays are not a tuple of arrays")
                where_state = [next((i for i, n in enumerate(new) if s is n), None) for s in saved]
                rest = [j for j, i in enumerate(where_state) if i is None]
                if mask is not None:
                    m = t.input(("mask",), "col", 1, "b")
                    new = tuple(t.ns.where(m, n, s) for n, s in zip(new, state))  # carried if padded
                outputs += [(("state", j), s) for j, s in enumerate(new)]
                outputs += [(("saved", j), _row(saved[j], "a saved array")) for j in rest]
                saved_widths = [len(saved[j].blocks) for j in rest]
            graphs.append(t.graph(outputs))
        return _Forward(graphs, where_state, rest, saved_widths, ctx_widths)

    def _run_forward(self, plan: _Forward, unbound, products, u, state0, mask, xp, workspace):
        time, batch, _ = u.shape
        hidden = state0[0].shape[1]
        dtype, dev = u.dtype, device(u)
        kernels = self.kernels

        def alloc(name, shape):
            if workspace is not None:
                return workspace.empty(name, shape, u, xp=xp)
            return xp.empty(shape, dtype=dtype, device=dev)

        states = tuple(xp.empty((time, batch, hidden), dtype=dtype, device=dev) for _ in state0)
        saved_bufs = [alloc(f"fwd{k}", (time, batch, n * hidden))
                      for k, n in enumerate(plan.saved_widths)]
        operands = [alloc(f"operand{k}", (time, batch, hidden)) for k in range(len(unbound) - 1)]
        ctx_bufs = [[xp.empty((batch, n * hidden), dtype=dtype, device=dev) for n in widths]
                    for widths in plan.ctx_widths]
        fixed: dict[Any, Any] = {("param", name): a for name, a in unbound[0][1].items()}
        run = functools.partial(kernels.launch, xp=xp, rows=batch, hidden=hidden,
                                float_dtype=dtype, dev=dev)
        for t in range(time):
            env = dict(fixed)
            env[("u",)] = At(u, 0, t)  # (B, GH)
            for j, s in enumerate(state0):
                env[("state", j)] = s if t == 0 else At(states[j], 0, t - 1)
            if mask is not None:
                env[("mask",)] = At(mask, 1, t)  # (B,): the kernel reads it as (B, 1)
            for k, (graph, (w, bias)) in enumerate(zip(plan.graphs, products)):
                if k == 0:
                    operand = state0[0] if t == 0 else states[0][t - 1, ...]  # (B, H)
                else:
                    operand = operands[k - 1][t, ...]  # (B, H)
                env[("v",)] = operand @ w  # (B, width of the stage's blocks)
                env[("bias",)] = bias
                if k:
                    for i, a in enumerate(ctx_bufs[k - 1]):
                        env[("ctx", i)] = a
                outs = []
                for label, _ in graph.outputs:
                    kind = label[0]
                    outs.append(At(operands[k], 0, t) if kind == "operand" else
                                ctx_bufs[k][label[1]] if kind == "ctx" else
                                At(states[label[1]], 0, t) if kind == "state" else
                                At(saved_bufs[plan.rest.index(label[1])], 0, t))
                run(graph, env, outs)
        saved = tuple(states[i] if i is not None else saved_bufs[plan.rest.index(j)]
                      for j, i in enumerate(plan.where_state))
        return states, saved, tuple(operands)

    # -- backward ----------------------------------------------------------------------------
    def backward(self, adjoints, products_t, g0, states, state_init, saved, operands, mask, seq,
                 observe, *, xp, workspace=None):
        if any(w is None for w in products_t):
            self.fallbacks[_names(adjoints)] = _NO_PRODUCT
            return super().backward(adjoints, products_t, g0, states, state_init, saved,
                                    operands, mask, seq, observe, xp=xp, workspace=workspace)
        try:
            unbound = [_unbind(a) for a in adjoints]
        except NotFusable as exc:
            self.fallbacks[_names(adjoints)] = str(exc)
            unbound = None
        time, batch, hidden = states[0].shape
        if unbound is not None:
            p = unbound[0][1]
            key = ("backward", tuple((f, tuple(sorted(o.items()))) for f, _, o in unbound),
                   states[0].dtype, batch, hidden, tuple(tuple(s.shape[1:]) for s in saved),
                   tuple(tuple(w.shape) for w in products_t), len(states), mask is not None,
                   seq is not None, bool(observe), _param_key(p))
            names = _names(adjoints)
            plan = self._plan(key, lambda: self._trace_backward(
                unbound, products_t, states, saved, mask, seq, observe, xp), names)
        if (unbound is None or isinstance(plan, NotFusable) or not writeable(states[0])
                or time == 0):
            return super().backward(adjoints, products_t, g0, states, state_init, saved,
                                    operands, mask, seq, observe, xp=xp, workspace=workspace)
        return self._run_backward(plan, unbound, products_t, g0, states, state_init, saved, mask,
                                  seq, observe, xp, workspace)

    def _trace_chain(self, unbound, products_t, states, saved, mask, observe, xp, prologue):
        """The adjoints' graphs, last to first, the last one's gradients made by ``prologue(t)``
        (a tuple per state); returns ``(graphs, facts)``."""
        _, batch, hidden = states[0].shape
        n = len(states)
        last = len(unbound) - 1
        graphs: list[Any] = [None] * len(unbound)
        ctx_spec, widths, ctx_widths = None, [], [None] * len(unbound)
        facts: dict[str, Any] = {}
        for k in range(last, -1, -1):
            f, p, options = unbound[k]
            t = Tracer(xp, states[0].dtype, batch=batch, hidden=hidden)
            params = _Params(t, p)
            saved_s = tuple(t.input(("saved", i), "row", _whole(s.shape[2], hidden, "a saved array"))
                            for i, s in enumerate(saved))
            prev_s = tuple(t.input(("prev", j), "row") for j in range(n))
            outputs: list[tuple[Any, Sym]] = []
            if k == last:
                g = prologue(t)
                if observe:
                    outputs.append((("obs",), g[0]))
                if mask is not None:
                    outputs += [(("g", j), a) for j, a in enumerate(g)]
                    m = t.input(("mask",), "col", 1, "b")
                    zero = t.ns.zeros((), dtype=states[0].dtype)
                    g = tuple(t.ns.where(m, a, zero) for a in g)
                out = trace_call(f, params, g, saved_s, prev_s, xp=t.ns, **options)
            else:
                d = t.input(("d",), "row")
                ctx_in = [t.input(("ctx", i), "row", w) for i, w in enumerate(widths)]
                out = trace_call(f, params, d, saved_s, prev_s, _unflatten(ctx_spec, ctx_in),
                                 xp=t.ns, **options)
            if k > 0:
                dv, ctx = _pair(out, getattr(f, "__qualname__", "an adjoint"))
                outputs.append((("dv", k), _row(dv, "an adjoint's dv",
                                                products_t[k].shape[0] // hidden)))
                leaves, ctx_spec = flatten(ctx)
                widths = [len(_row(s, "an adjoint's context").blocks) for s in leaves]
                ctx_widths[k] = widths
                outputs += [(("bctx", i), s) for i, s in enumerate(leaves)]
            else:
                try:
                    du, dv, dstate, dparams = out.du, out.dv, tuple(out.dstate), dict(out.dparams)
                except (AttributeError, TypeError):
                    raise NotFusable("the first adjoint did not return StepGrads") from None
                if len(dstate) != n:
                    raise NotFusable(f"dstate has {len(dstate)} entries for {n} states")
                outputs.append((("du",), _row(du, "du")))
                same = dv is du
                if not same:
                    outputs.append((("dv", 0), _row(dv, "dv", products_t[0].shape[0] // hidden)))
                outputs += [(("direct", j), _row(a, "a dstate", 1))
                            for j, a in enumerate(dstate) if a is not None]
                outputs += [(("dp", name), _row(a, f"dparams[{name!r}]"))
                            for name, a in dparams.items()]
                facts.update(same=same, direct=tuple(a is not None for a in dstate),
                             dp_names=tuple(dparams), du_blocks=len(du.blocks),
                             dp_widths=tuple(len(a.blocks) for a in dparams.values()))
            graphs[k] = t.graph(outputs)
        facts["ctx_widths"] = ctx_widths
        return graphs, facts

    def _trace_backward(self, unbound, products_t, states, saved, mask, seq, observe, xp):
        n = len(states)

        def from_g0(t):
            return tuple(t.input(("g0", j), "row") for j in range(n))

        first, facts = self._trace_chain(unbound, products_t, states, saved, mask, observe, xp,
                                         from_g0)
        direct = facts["direct"]
        dtype = states[0].dtype

        def summed(t):
            # What reaches the states of step t from step t+1, in the eager loop's order:
            # dv @ w^T (+ the direct path), then the carry of a padded step, then dhs_t.
            gh = t.input(("gh",), "row")
            g = []
            for j in range(n):
                if j == 0:
                    a = gh if not direct[0] else gh + t.input(("direct", 0), "row")
                else:
                    a = t.input(("direct", j), "row") if direct[j] else t.ns.zeros_like(gh)
                g.append(a)
            if mask is not None:
                m = t.input(("mask_next",), "col", 1, "b")
                zero = t.ns.zeros((), dtype=dtype)
                g = [a + t.ns.where(m, zero, t.input(("g_next", j), "row"))
                     for j, a in enumerate(g)]
            if seq is not None:
                g[0] = g[0] + t.input(("seq",), "row")
            return tuple(g)

        rest, _ = self._trace_chain(unbound, products_t, states, saved, mask, observe, xp, summed)
        plan = _Backward(first, rest, facts["same"], direct, facts["dp_names"],
                         facts["du_blocks"], facts["ctx_widths"])
        plan.dp_widths = facts["dp_widths"]
        return plan

    def _run_backward(self, plan: _Backward, unbound, products_t, g0, states, state_init, saved,
                      mask, seq, observe, xp, workspace):
        time, batch, hidden = states[0].shape
        n = len(states)
        dtype, dev = states[0].dtype, device(states[0])
        last = len(unbound) - 1
        kernels = self.kernels

        def alloc(name, shape):
            if workspace is not None:
                return workspace.empty(name, shape, states[0], xp=xp)
            return xp.empty(shape, dtype=dtype, device=dev)

        def scratch(blocks=1):
            return xp.empty((batch, blocks * hidden), dtype=dtype, device=dev)

        du = alloc("du0", (time, batch, plan.du_blocks * hidden))
        stored = [k for k in range(len(unbound)) if not (k == 0 and plan.same)]
        dv_bufs = {k: alloc(f"dv{i}", (time, batch, products_t[k].shape[0]))
                   for i, k in enumerate(stored)}
        if plan.same:
            dv_bufs[0] = du
        dp_bufs = {name: alloc(f"dp{i}", (time, batch, w * hidden))
                   for i, (name, w) in enumerate(zip(plan.dp_names, plan.dp_widths))}
        direct = [[scratch() if present else None for present in plan.direct] for _ in range(2)]
        gbuf = [[scratch() for _ in range(n)] for _ in range(2)] if mask is not None else None
        obs = xp.empty((time, batch, hidden), dtype=dtype, device=dev) if observe else None
        bctx = [None if w is None else [scratch(b) for b in w] for w in plan.ctx_widths]
        fixed: dict[Any, Any] = {("param", name): a for name, a in unbound[0][1].items()}
        run = functools.partial(kernels.launch, xp=xp, rows=batch, hidden=hidden,
                                float_dtype=dtype, dev=dev)
        gh = None
        for t in range(time - 1, -1, -1):
            now, after = t % 2, (t + 1) % 2
            env = dict(fixed)
            for i, s in enumerate(saved):
                env[("saved", i)] = At(s, 0, t)
            for j, s in enumerate(state_init):
                env[("prev", j)] = s if t == 0 else At(states[j], 0, t - 1)
            if t == time - 1:
                graphs = plan.first
                for j, a in enumerate(g0):
                    env[("g0", j)] = a
            else:
                graphs = plan.rest
                env[("gh",)] = gh
                for j, a in enumerate(direct[after]):
                    env[("direct", j)] = a
                if mask is not None:
                    env[("mask_next",)] = At(mask, 1, t + 1)  # (B,): read as (B, 1)
                    for j, a in enumerate(gbuf[after]):
                        env[("g_next", j)] = a
                if seq is not None:
                    env[("seq",)] = At(seq, 1, t)  # (B, H)
            if mask is not None:
                env[("mask",)] = At(mask, 1, t)
            for k in range(last, -1, -1):
                graph = graphs[k]
                if k < last:
                    for i, a in enumerate(bctx[k + 1]):
                        env[("ctx", i)] = a
                outs = []
                for label, _ in graph.outputs:
                    kind = label[0]
                    outs.append(At(obs, 0, t) if kind == "obs" else
                                gbuf[now][label[1]] if kind == "g" else
                                At(dv_bufs[label[1]], 0, t) if kind == "dv" else
                                bctx[k][label[1]] if kind == "bctx" else
                                At(du, 0, t) if kind == "du" else
                                direct[now][label[1]] if kind == "direct" else
                                At(dp_bufs[label[1]], 0, t))
                run(graph, env, outs)
                if k > 0:
                    env[("d",)] = dv_bufs[k][t, ...] @ products_t[k]  # (B, H)
            gh = dv_bufs[0][t, ...] @ products_t[0]  # (B, H): dL/dh_{t-1} through the products
        # The gradients reaching the initial states, as the eager loop sums them after step 1.
        zero = None if mask is None else xp.zeros((), dtype=dtype, device=dev)
        g_init = []
        for j in range(n):
            d = direct[0][j]
            if j == 0:
                a = gh if d is None else gh + d
            else:
                a = d if d is not None else xp.zeros_like(gh)
            if mask is not None:
                a = a + xp.where(mask[:, 0, None], zero, gbuf[0][j])
            g_init.append(a)
        dvs = tuple(dv_bufs[k] for k in range(len(unbound)))
        return du, dvs, dict(dp_bufs), tuple(g_init), obs
