"""rnnx._backend._fuse: a traced stage computes the stage. Every stage and adjoint of every
fusable cell, traced and evaluated with NumPy, equals the stage called with NumPy bit for bit
(the same IEEE operations in the same order); the LN-LSTM is refused; what cannot be fused says
why; the CUDA C of every graph the fused executor makes compiles (nvcc, float and double) and,
compiled for the host, computes its graph."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from rnnx._backend import get_namespace
from rnnx._backend._fuse import NotFusable, Tracer, evaluate, flatten, kernel_source
from rnnx.functional.registry import CELLS

from ._fuse_cases import (
    NOT_FUSABLE,
    VARIANTS,
    assemble,
    executor_graphs,
    real_leaves,
    stage_calls,
    trace_stage,
)

np_xp = get_namespace("numpy")
BATCH, HIDDEN = 3, 5
DTYPES = {"float32": np.float32, "float64": np.float64}


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_traced_stages_equal_the_stages_bit_for_bit(variant, dtype):
    """Each forward stage and adjoint, traced and evaluated node by node with NumPy, gives the
    arrays the stage gives when called with NumPy on the same random arguments, bit for bit;
    an array the stage returns twice (``du is dv``) is one array in the trace too."""
    label, spec, options = variant
    dt = DTYPES[dtype]
    for seed in range(3):
        p, calls = stage_calls(spec, options, np_xp, dt, np.random.default_rng(seed),
                               batch=BATCH, hidden=HIDDEN)
        for name, f, args in calls:
            graph, sources, traced = trace_stage(f, p, args, options, np_xp, dt, batch=BATCH,
                                                 hidden=HIDDEN)
            result = f(p, *args, xp=np_xp, **options)
            direct = real_leaves(result)
            got = evaluate(graph, sources, xp=np_xp, hidden=HIDDEN, float_dtype=dt)
            assert len(got) == len(direct), (label, name)
            for (i, blocks), want in zip(got, direct):
                have = assemble(blocks, BATCH, HIDDEN, dt)
                assert have.dtype == want.dtype and have.shape == want.shape, (label, name, i)
                np.testing.assert_array_equal(have, want, err_msg=f"{label} {name} output {i}")
            if hasattr(result, "du"):
                assert (traced.du is traced.dv) == (result.du is result.dv), (label, name)


# Operations (nodes that compute: not inputs or constants) of each stage's graph, as traced
# from the readable steps: one thread's work in the fused kernel. A change to a step shows here.
OPERATIONS = {
    "rnn-tanh": {"forward0": 2, "backward0": 3},
    "rnn-relu": {"forward0": 2, "backward0": 3},
    "lstm": {"forward0": 22, "backward0": 23},
    "gru": {"forward0": 17, "backward0": 15},
    "gru_reset_before": {"forward0": 11, "forward1": 6, "backward1": 10, "backward0": 6},
}


@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_graph_sizes(variant):
    label, spec, options = variant
    p, calls = stage_calls(spec, options, np_xp, np.float32, np.random.default_rng(0),
                           batch=BATCH, hidden=HIDDEN)
    got = {name: trace_stage(f, p, args, options, np_xp, np.float32, batch=BATCH,
                             hidden=HIDDEN)[0].operations for name, f, args in calls}
    assert got == OPERATIONS[label]


@pytest.mark.parametrize("kind", NOT_FUSABLE)
def test_layer_norm_cells_are_not_fusable(kind):
    """The LN-LSTM's stages reduce over the hidden axis (``xp.mean``): tracing refuses them,
    naming the function, and the executor runs them eagerly."""
    spec = CELLS[kind]
    p, calls = _ln_calls(spec)
    for _, f, args in calls:
        with pytest.raises(NotFusable, match=rf"{f.__qualname__}: xp\.mean is not elementwise"):
            trace_stage(f, p, args, {}, np_xp, np.float64, batch=BATCH, hidden=HIDDEN)


def _ln_calls(spec):
    """The LN-LSTM's step and adjoint with arguments of their real shapes (its saved arrays
    include ``(batch, 1)`` scales, which :func:`stage_calls` would refuse first)."""
    rng = np.random.default_rng(0)

    def rand(*shape):
        return rng.standard_normal(shape)

    p = {name: rand(width * HIDDEN) for name, (width, _) in spec.vectors.items()}
    state = (rand(BATCH, HIDDEN), rand(BATCH, HIDDEN))
    u, v = rand(BATCH, 4 * HIDDEN), rand(BATCH, 4 * HIDDEN)
    f, adj = spec.step.forward[0], spec.step.backward[0]
    saved = f(p, u, v, state, xp=np_xp)[1]
    # The adjoint's saved arrays without the (batch, 1) scales: it still reduces (xp.mean).
    saved = tuple(np.broadcast_to(s, (BATCH, HIDDEN)).copy() if s.shape[1] == 1 else s
                  for s in saved)
    return p, [("forward0", f, (u, v, state)),
               ("backward0", adj, ((rand(BATCH, HIDDEN), rand(BATCH, HIDDEN)), saved, state))]


def _trace(fn, *shapes):
    t = Tracer(np_xp, np.float64, batch=BATCH, hidden=HIDDEN)
    args = [t.input(("a", i), kind, blocks) for i, (kind, blocks) in enumerate(shapes)]
    return t, fn(t.ns, *args)


@pytest.mark.parametrize("fn, match", [
    (lambda xp, a: a @ a, "matrix product"),
    (lambda xp, a: xp.mean(a, axis=-1), r"xp\.mean"),
    (lambda xp, a: xp.sum(a), r"xp\.sum"),
    (lambda xp, a: xp.reshape(a, (-1,)), r"xp\.reshape"),
    (lambda xp, a: a[..., 1:3], "whole hidden blocks"),
    (lambda xp, a: a[0, :], "only slices"),
    (lambda xp, a: a[:, ::2], "whole hidden blocks"),
    (lambda xp, a: xp.concat([a, a], axis=0), "only the last"),
    (lambda xp, a: xp.tanh(a) if a > 0 else a, "reads an array's value"),
    (lambda xp, a: float(a[..., :HIDDEN]), "reads an array's value"),
    (lambda xp, a: a ** 2, "pow"),
    (lambda xp, a: a.T, "transpose"),
    (lambda xp, a: xp.zeros((BATCH, HIDDEN)), "made inside a stage"),
    (lambda xp, a: a + np.ones((BATCH, 2 * HIDDEN)), "concrete ndarray"),
    (lambda xp, a: a + a[..., :HIDDEN], "do not broadcast"),
    (lambda xp, a: xp.astype(a, xp.int32), "dtype"),
    (lambda xp, a: xp.where(a, a, a), "non-boolean condition"),
    (lambda xp, a: a + float("inf"), "non-finite"),
])
def test_what_cannot_be_fused_says_why(fn, match):
    with pytest.raises(NotFusable, match=match):
        _trace(fn, ("row", 2))


def test_a_subexpression_is_computed_once():
    """The same operation on the same nodes is one node, wherever it is written again."""
    t, out = _trace(lambda xp, a: xp.tanh(0.5 * a) + xp.tanh(0.5 * a), ("row", 1))
    g = t.graph([("o", out)])
    assert [n.op for n in g.nodes] == ["input", "const", "mul", "tanh", "add"]
    assert g.operations == 3


def test_blocks_move_no_data():
    """Slicing whole hidden blocks and concatenating them is bookkeeping: no operation."""
    def fn(xp, a, b):
        parts = [a[..., k * HIDDEN:(k + 1) * HIDDEN] for k in range(3)]
        return xp.concat([parts[2], b, parts[0]], axis=-1)

    t, out = _trace(fn, ("row", 3), ("row", 1))
    g = t.graph([("o", out)])
    assert g.operations == 0 and out.shape == (BATCH, 3 * HIDDEN)
    assert [n.value for n in out.blocks] == [(("a", 0), 2), (("a", 1), 0), (("a", 0), 0)]


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_constants_and_broadcasts_round_as_numpy_does(dtype):
    """A Python constant takes the array's dtype (0.1 rounded to float32 against float32), a
    parameter vector broadcasts over rows and a (batch, 1) mask over columns, as in NumPy."""
    dt = DTYPES[dtype]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((BATCH, 2 * HIDDEN)).astype(dt)
    b = rng.standard_normal(2 * HIDDEN).astype(dt)
    m = rng.standard_normal((BATCH, 1)) > 0
    t = Tracer(np_xp, dt, batch=BATCH, hidden=HIDDEN)
    sa, sb = t.input("a", "row", 2), t.input("b", "vec", 2)
    sm = t.input("m", "col", 1, "b")
    ns = t.ns
    out = ns.where(sm, 0.1 * sa - sb / 3, ns.maximum(sa, ns.zeros((), dtype=dt)))
    out = out + ns.astype(sa > sb, dt) + ns.exp(-ns.abs(sa)) - ns.log(1.0 + ns.sqrt(ns.abs(sb)))
    want = np.where(m, 0.1 * a - b / 3, np.maximum(a, dt(0))) + (a > b).astype(dt) \
        + np.exp(-np.abs(a)) - np.log(1.0 + np.sqrt(np.abs(b)))
    (_, blocks), = evaluate(t.graph([("o", out)]), {"a": a, "b": b, "m": m}, xp=np_xp,
                            hidden=HIDDEN, float_dtype=dt)
    have = assemble(blocks, BATCH, HIDDEN, dt)
    assert want.dtype == dt
    np.testing.assert_array_equal(have, want)


def test_outputs_must_be_float_rows():
    t, out = _trace(lambda xp, a: a > 0, ("row", 1))
    with pytest.raises(NotFusable, match="boolean"):
        t.graph([("o", out)])
    t, out = _trace(lambda xp, a: a, ("vec", 1))
    with pytest.raises(NotFusable, match="not \\(batch, n\\*hidden\\)"):
        t.graph([("o", out)])
    t = Tracer(np_xp, np.float64, batch=BATCH, hidden=HIDDEN)
    leaves, _ = flatten(((t.input("x", "row"),), None, {"k": t.input("y", "row")}))
    assert len(leaves) == 2
    with pytest.raises(NotFusable, match="returned a str"):
        flatten(("no",))


# -- the CUDA C ---------------------------------------------------------------------------

def _sources(ctype):
    seen, out = set(), []
    for _, graph in executor_graphs():
        name, src = kernel_source(graph, ctype)
        if name not in seen:
            seen.add(name)
            out.append((name, graph, src))
    return out


def test_every_executor_graph_is_collected():
    """The graphs the executor makes on the CPU cases: per fusable cell, forward with and
    without a mask, backward at the last step and at the others, with and without a mask, an
    output gradient per step, an observer."""
    labels = {label for label, _ in executor_graphs()}
    for variant, _, _ in VARIANTS:
        assert any(label.startswith(variant + " ") for label in labels), variant
    assert len(_sources("float")) >= 40


@pytest.mark.parametrize("ctype", ["float", "double"])
def test_kernels_compile_with_nvcc(ctype, tmp_path):
    """Every kernel source, as CuPy's RawKernel gets it, compiles for sm_90 (PTX) with the
    options CuPy is given (no fused multiply-add): a syntax or type error fails here."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH: the CUDA C of the fused kernels is not compiled here")
    sources = _sources(ctype)
    cu = tmp_path / f"fused_{ctype}.cu"
    cu.write_text("\n".join(src for _, _, src in sources))
    done = subprocess.run([nvcc, "-arch=sm_90", "--ptx", "-fmad=false", "-o",
                           str(tmp_path / "out.ptx"), str(cu)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    ptx = (tmp_path / "out.ptx").read_text()
    for name, _, _ in sources:
        assert f".entry {name}(" in ptx, name


def _host_library(tmp_path, ctype):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH: the kernels' C is not run on the host here")
    sources = _sources(ctype)
    cpp = tmp_path / f"fused_{ctype}.cpp"
    cpp.write_text("\n".join(src for _, _, src in sources))
    lib = tmp_path / f"fused_{ctype}.so"
    # -ffp-contract=off: no fused multiply-add, as the CUDA kernels are compiled.
    done = subprocess.run([cxx, "-x", "c++", "-DRNNX_HOST", "-O1", "-ffp-contract=off",
                           "-shared", "-fPIC", "-o", str(lib), str(cpp)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    return ctypes.CDLL(str(lib)), sources


def _strided(rng, shape, dtype):
    """A view with both strides other than the contiguous ones: every kernel index uses its
    strides."""
    rows, cols = shape
    base = rng.standard_normal((cols * 2, rows + 1)).astype(dtype)
    return base.T[1:, ::2]  # (rows, cols), column stride 2*(rows+1) elements, row stride 1


@pytest.mark.parametrize("ctype", ["float", "double"])
def test_kernels_compute_their_graph_on_the_host(ctype, tmp_path):
    """The kernels' C, compiled for the host with -DRNNX_HOST (the same per-element function
    over a loop), gives what the graph evaluated with NumPy gives, on strided inputs and
    outputs. They differ only in the C library's tanh/exp/log against NumPy's (each within a
    few ulp of the exact value); every output of a single step, a handful of roundings deep,
    stays within 16 eps of its largest magnitude; the other operations round identically."""
    lib, sources = _host_library(tmp_path, ctype)
    dt = np.float32 if ctype == "float" else np.float64
    eps = np.finfo(dt).eps
    rng = np.random.default_rng(0)
    rows, hidden = 4, 3
    exact = 0
    for name, graph, _ in sources:
        fn = getattr(lib, name + "_host")
        args: list = [ctypes.c_longlong(rows), ctypes.c_longlong(hidden)]
        inputs = {}
        for src, kind, blocks, _ in graph.inputs:
            if kind == "row":
                a = _strided(rng, (rows, blocks * hidden), dt)
                st = [s // a.itemsize for s in a.strides]
            elif kind == "vec":
                a = rng.standard_normal(2 * blocks * hidden).astype(dt)[::2]
                st = [a.strides[0] // a.itemsize]
            else:
                a = (rng.standard_normal((rows, 3)) > 0)[:, 1:2]
                st = [a.strides[0] // a.itemsize]
            inputs[src] = a
            args += [ctypes.c_void_p(a.ctypes.data), *map(ctypes.c_longlong, st)]
        outs = []
        for _, blocks in graph.outputs:
            o = _strided(rng, (rows, len(blocks) * hidden), dt)
            outs.append(o)
            args += [ctypes.c_void_p(o.ctypes.data),
                     *(ctypes.c_longlong(s // o.itemsize) for s in o.strides)]
        fn.restype = None
        with np.errstate(invalid="ignore", divide="ignore"):
            fn(*args)
            want = evaluate(graph, inputs, xp=np_xp, hidden=hidden, float_dtype=dt)
        for o, (label, blocks) in zip(outs, want):
            ref = assemble(blocks, rows, hidden, dt)
            finite = np.isfinite(ref)
            np.testing.assert_array_equal(np.isfinite(o), finite, err_msg=f"{name} {label}")
            scale = max(float(np.max(np.abs(ref[finite]), initial=0.0)), np.finfo(dt).tiny)
            err = float(np.max(np.abs(o[finite] - ref[finite]), initial=0.0)) / scale
            assert err <= 16 * eps, f"{name} output {label}: {err / eps:.1f} eps"
            exact += bool(np.array_equal(o[finite], ref[finite]))
    assert exact > 0
