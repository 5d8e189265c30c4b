"""Every stage of every fusable cell called directly and traced, on random arguments: shared by
the CPU tests of the tracer, its CUDA C and the fused executor."""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnx._backend._fuse import Tracer, flatten, symbolic_like, trace_call
from rnnx._backend._fused import _Params
from rnnx.functional.registry import CELLS
from rnnx.testing.agreement import cell_variants

from ._cell_checks import SHAPE_IDS, SHAPES

#: The cells whose steps fuse, and the one that must not (its layer norms reduce over hidden).
#: The minimal RNNs' steps (no recurrent product) run the eager loop under the fused executor:
#: their layers run the parallel form.
FUSABLE = ("rnn", "lstm", "gru", "gru_reset_before")
NOT_FUSABLE = ("ln_lstm",)
EAGER_STEP = ("min_gru", "min_lstm")

#: (label, cell, options) of every run-option variant of the fusable cells.
VARIANTS = [(label, spec, options) for label, spec, options in cell_variants()
            if spec.name in FUSABLE]


def real_leaves(tree: Any) -> list[Any]:
    """The arrays of a nested tuple/list/dict/NamedTuple in :func:`flatten`'s order."""
    if tree is None:
        return []
    if isinstance(tree, (tuple, list)):
        return [leaf for x in tree for leaf in real_leaves(x)]
    if isinstance(tree, dict):
        return [leaf for x in tree.values() for leaf in real_leaves(x)]
    return [tree]


def stage_calls(spec, options, xp, dtype, rng, *, batch=3, hidden=5):
    """``(params, [(name, function, args)])``: the cell's forward stages, then its adjoints last
    to first, each with the arguments the driver would pass after ``params`` (random states,
    products and gradients; each stage's context and the saved arrays from the direct calls
    before it)."""
    step = spec.step

    def rand(*shape):
        return xp.asarray(rng.standard_normal(shape), dtype=dtype)

    g = spec.gates
    p = {"w_x": rand(4, g * hidden), "w_h": rand(hidden, g * hidden)}
    p.update({name: rand(width * hidden) for name, (width, _) in spec.vectors.items()})
    calls = []
    u = rand(batch, g * hidden)
    state = tuple(rand(batch, hidden) for _ in spec.states)
    ctx = None
    spans = step.product_blocks(g)
    for k, (f, (a, e)) in enumerate(zip(step.forward, spans)):
        v = rand(batch, (e - a) * hidden)
        args = (u, v, state) if k == 0 else (u, v, state, ctx)
        calls.append((f"forward{k}", f, args))
        ctx = f(p, *args, xp=xp, **options)[1]
    saved = ctx
    last = len(step.backward) - 1
    for k in range(last, -1, -1):
        f = step.backward[k]
        if k == last:
            args = (tuple(rand(batch, hidden) for _ in spec.states), saved, state)
        else:
            args = (rand(batch, hidden), saved, state, ctx)
        calls.append((f"backward{k}", f, args))
        if k:
            ctx = f(p, *args, xp=xp, **options)[1]
    return p, calls


def trace_stage(f, p, args, options, xp, dtype, *, batch, hidden):
    """``(graph, sources, traced result)`` of ``f(p, *args)`` traced: each argument leaf is the
    input ``("arg", i)``, each parameter ``("param", name)``; the graph's outputs are the
    result's leaves, labelled by position."""
    t = Tracer(xp, dtype, batch=batch, hidden=hidden)
    sym = symbolic_like(t, "arg", args)
    out = trace_call(f, _Params(t, p), *sym, xp=t.ns, **options)
    leaves, _ = flatten(out)
    graph = t.graph([(i, s) for i, s in enumerate(leaves)])
    sources = {("arg", i): a for i, a in enumerate(real_leaves(args))}
    sources.update({("param", name): a for name, a in p.items()})
    return graph, sources, out


def assemble(blocks, batch, hidden, dtype):
    """An output's evaluated blocks (some 0-d or 1-D where constant) as one (batch, n*hidden)
    host array."""
    return np.concatenate([np.broadcast_to(np.asarray(b), (batch, hidden)) for b in blocks],
                          axis=1).astype(dtype, copy=False)


def cell_names():
    return list(CELLS)


def use_executor(ex):
    """A context in which every driver call runs on executor ``ex`` (as
    :func:`rnnx._backend.forced_executor` does for the registered ones)."""
    import contextlib

    from rnnx._backend import _executors

    @contextlib.contextmanager
    def forced():
        _executors._FORCED.append(ex)
        try:
            yield ex
        finally:
            _executors._FORCED.pop()

    return forced()


_GRAPHS: list = []


def executor_graphs():
    """``[(label, graph)]``: every graph the fused executor makes for the fusable cells on small
    NumPy float64 cases: each run option, with and without a lengths mask, a gradient at every
    step or at the last state only, with and without the per-step observer (computed once)."""
    if _GRAPHS:
        return _GRAPHS
    from rnnx._backend import from_host, host_rng
    from rnnx._backend._fuse_kernels import ReferenceKernels
    from rnnx._backend._fused import Fused
    from rnnx.testing.agreement import make_case

    xp = get_namespace_numpy()
    for label, spec, options in VARIANTS:
        fused = Fused(ReferenceKernels())
        for masked in (False, True):
            for per_step in (True, False):
                for observe in (False, True):
                    case = make_case(spec, host_rng(0), 3, 4, 2, 5, with_state=True)
                    a = {k: None if v is None else from_host(v, xp=xp, dtype=xp.float64)
                         for k, v in case.items()}
                    mask = from_host(np.array([4, 2, 3]), xp=xp) if masked else None
                    state0 = {s + "0": a[s + "0"] for s in spec.states}
                    with use_executor(fused):
                        _, cache = spec.run(a, a["x"], state0, mask=mask, options=options,
                                            form="step")
                        dhs = a["dhs"] if per_step else a["dhs"][:, -1, :]
                        spec.run_backward(cache, dhs, {}, state_grads=[None] * 4
                                          if observe else None)
        for key, plan in fused._plans.items():
            assert not isinstance(plan, Exception), (label, plan)
            if key[0] == "forward":
                tag = f"{label} forward mask={key[-2]}"
            else:
                tag = f"{label} backward mask={key[-4]} dhs={key[-3]} observe={key[-2]}"
            if key[0] == "forward":
                _GRAPHS.extend((f"{tag} stage{k}", g) for k, g in enumerate(plan.graphs))
            else:
                _GRAPHS.extend((f"{tag} {which} stage{k}", g)
                               for which in ("first", "rest")
                               for k, g in enumerate(getattr(plan, which)))
    return _GRAPHS


def get_namespace_numpy():
    from rnnx._backend import get_namespace

    return get_namespace("numpy")


# -- the executor cases: what the cell tests run, fused against eager ------------------------

class Case:
    """One run of a cell: ``shape`` (batch, time, features, hidden), an initial state or zeros,
    a mask (``None``, ``"lengths"``, ``"left-padded"``, ``"holes-and-empty"``), the output
    gradient (``"seq"`` every step, ``"last"`` the last state's, ``"none"``), the final
    states' gradients, the per-step observer, a workspace."""

    def __init__(self, name, shape, *, with_h0=True, mask=None, dhs="seq", final=True,
                 observe=False, workspace=False):
        self.name, self.shape, self.with_h0, self.mask = name, shape, with_h0, mask
        self.dhs, self.final, self.observe, self.workspace = dhs, final, observe, workspace

    def __repr__(self):
        return self.name


MASKS = {
    "lengths": np.array([5, 2, 7, 1]),
    "left-padded": np.arange(7)[None, :] >= np.array([0, 5, 2, 6])[:, None],
    "holes-and-empty": np.array([[1, 0, 1, 1, 0, 1, 1], [0] * 7, [1] * 7, [0, 0, 1, 1, 1, 1, 1]],
                                dtype=bool),
}


def executor_cases():
    """The cell tests' shapes with and without an initial state and final-state gradients;
    three masks with each kind of output gradient, with the observer; the observer, a
    workspace and the last-state gradients without a mask."""
    cases = [Case(f"{sid}-{'h0' if h0 else 'zeros'}-{'final' if final else 'outputs'}", shape,
                  with_h0=h0, final=final)
             for shape, sid in zip(SHAPES, SHAPE_IDS) for h0 in (True, False)
             for final in (True, False)]
    cases += [Case(f"{m}-{d}", (4, 7, 3, 5), mask=m, dhs=d, observe=True, workspace=d == "seq")
              for m in MASKS for d in ("seq", "last", "none")]
    cases += [Case("observe-workspace", (3, 6, 4, 6), observe=True, workspace=True),
              Case("last-zeros", (3, 6, 4, 6), with_h0=False, dhs="last", final=False,
                   observe=True),
              Case("finals-only", (3, 6, 4, 6), dhs="none", workspace=True)]
    return cases


def run_executor_case(spec, options, case, put, dtype, seed=0):
    """Forward and backward of ``case`` on the arrays ``put(host, dtype)`` makes; every result
    by name (``out``, ``h_n``..., ``dx``, ``d<state>0``, ``d<param>``, ``state_grads``)."""
    from rnnx.functional import Workspace
    from rnnx.testing.agreement import make_case

    batch, time, features, hidden = case.shape
    host = make_case(spec, np.random.default_rng(seed), batch, time, features, hidden,
                     with_state=case.with_h0)
    a = {k: None if v is None else put(v, dtype) for k, v in host.items()}
    mask = None if case.mask is None else put(MASKS[case.mask])
    ws = Workspace() if case.workspace else None
    state0 = {s + "0": a.get(s + "0") for s in spec.states}
    out, cache = spec.run(a, a["x"], state0, mask=mask, options=options, workspace=ws,
                          form="step")
    res = {"out": out}
    res.update({s + "_n": v for s, v in zip(spec.states, spec.final_states(cache))})
    finals = {s: a[f"d{s}_n"] for s in spec.states} if case.final else {}
    dhs = {"seq": a["dhs"], "last": a["dhs"][:, -1, :], "none": None}[case.dhs]
    observed = [None] * time if case.observe else None
    dx, d0, dp = spec.run_backward(cache, dhs, finals, state_grads=observed, workspace=ws)
    res["dx"] = dx
    res.update({"d" + k: v for k, v in d0.items()})
    res.update({"d" + k: v for k, v in dp.items()})
    if observed is not None:
        res.update({f"state_grads{t}": g for t, g in enumerate(observed)})
    return res


class HostKernels:
    """The CUDA kernels' own C compiled for the host (``-DRNNX_HOST``, no fused multiply-add, as
    on the GPU) and called through ctypes with the very arguments :class:`CupyKernels` passes
    (:func:`rnnx._backend._fuse_kernels.kernel_args`: addresses with the views' offsets, strides in
    elements): the GPU's launch path, C included, run on the CPU. One shared library per
    kernel, built on first use in ``workdir``."""

    name = "host"

    def __init__(self, workdir):
        import shutil

        self.cxx = shutil.which("g++") or shutil.which("c++")
        self.workdir = workdir
        self.launches = 0
        self._fns = {}

    def build(self, sources):
        """Compile ``[(name, source)]`` into one library (one compiler run for many kernels)."""
        import ctypes
        import subprocess

        todo = [(name, src) for name, src in dict(sources).items() if name not in self._fns]
        if not todo:
            return
        stem = self.workdir / f"kernels{len(list(self.workdir.glob('kernels*.so')))}"
        cpp, lib = stem.with_suffix(".cpp"), stem.with_suffix(".so")
        cpp.write_text("\n".join(src for _, src in todo))
        done = subprocess.run([self.cxx, "-x", "c++", "-DRNNX_HOST", "-O1", "-ffp-contract=off",
                               "-shared", "-fPIC", "-o", str(lib), str(cpp)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-4000:]
        loaded = ctypes.CDLL(str(lib))
        for name, _ in todo:
            fn = self._fns[name] = getattr(loaded, name + "_host")
            fn.restype = None

    def function(self, graph, ctype):
        from rnnx._backend._fuse_kernels import kernel_source

        name, src = kernel_source(graph, ctype)
        if name not in self._fns:
            self.build([(name, src)])
        return self._fns[name]

    def launch(self, graph, inputs, outputs, *, xp, rows, hidden, float_dtype, dev):
        import ctypes

        from rnnx._backend._fuse_kernels import kernel_args

        dtype = np.dtype(float_dtype)

        def check(name, a):
            assert isinstance(a, np.ndarray), (name, type(a))

        args = kernel_args(graph, inputs, outputs, rows=rows, hidden=hidden,
                           dtypes={"f": dtype, "b": np.dtype(np.bool_)},
                           address=lambda a: a.ctypes.data, check=check)
        fn = self.function(graph, "float" if dtype == np.float32 else "double")
        fn(ctypes.c_longlong(rows), ctypes.c_longlong(hidden),
           *(ctypes.c_ulonglong(v) if kind == "u64" else ctypes.c_longlong(v) for kind, v in args))
        self.launches += 1
