"""rnnx._backend._fuse: a traced stage computes the stage. Every stage and adjoint of every
fusable cell, traced and evaluated with NumPy, equals the stage called with NumPy bit for bit
(the same IEEE operations in the same order); the LN-LSTM is refused; what cannot be fused says
why; the CUDA C of every graph the fused executor makes compiles (nvcc, float and double) and,
compiled for the host, computes its graph."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from rnnx._backend import get_namespace
from rnnx._backend._fuse import NotFusable, Tracer, flatten
from rnnx._backend._fuse_kernels import At, evaluate, kernel_args, kernel_source
from rnnx.functional.registry import CELLS

from ._fuse_cases import (
    NOT_FUSABLE,
    VARIANTS,
    HostKernels,
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


def _strided(rng, shape, dtype):
    """A view with both strides other than the contiguous ones: every kernel index uses its
    strides."""
    rows, cols = shape
    base = rng.standard_normal((cols * 2, rows + 1)).astype(dtype)
    return base.T[1:, ::2]  # (rows, cols), column stride 2*(rows+1) elements, row stride 1


@pytest.mark.parametrize("ctype", ["float", "double"])
def test_kernels_compute_their_graph_on_the_host(ctype, tmp_path):
    _check_on_the_host(ctype, tmp_path)


def test_a_wrong_constant_in_the_c_fails_the_host_check(tmp_path, monkeypatch):
    """The mutant: every float constant of the C off by 2e-4 relative (0.5 -> 0.5001) must fail
    the host check (its bound is 16 eps, 1.9e-6 in float32)."""
    from rnnx._backend import _fuse_kernels

    real = _fuse_kernels._c_literal
    monkeypatch.setattr(_fuse_kernels, "_c_literal",
                        lambda value, ctype: real(repr(float(value) * (1 + 2e-4)), ctype))
    with pytest.raises(AssertionError, match="eps"):
        _check_on_the_host("float", tmp_path)


def _check_on_the_host(ctype, tmp_path):
    """Every kernel's C, compiled for the host with -DRNNX_HOST (the same per-element function
    over a loop) and given its arguments as the CuPy launcher computes them (addresses with a
    slot's offset, strides in elements: :func:`kernel_args`), gives what the graph evaluated
    with NumPy gives, on strided inputs, time slots of 3-D buffers and outputs. The two differ
    only in the C library's tanh/exp against NumPy's (each within a few ulp of the exact value):
    every output of one step, a handful of roundings deep, stays within 16 eps of its largest
    magnitude."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler on PATH: the kernels' C is not run on the host here")
    kernels = HostKernels(tmp_path)
    sources = _sources(ctype)
    kernels.build([(name, src) for name, _, src in sources])
    dt = np.float32 if ctype == "float" else np.float64
    eps = np.finfo(dt).eps
    rng = np.random.default_rng(0)
    rows, hidden = 4, 3
    exact = 0
    for name, graph, _ in sources:
        inputs, host = {}, {}
        for src, kind, blocks, _ in graph.inputs:
            if kind == "row":
                if rng.random() < 0.5:
                    a = _strided(rng, (rows, blocks * hidden), dt)
                    inputs[src] = host[src] = a
                else:  # slot 1 of a time-major (3, rows, width) buffer
                    buf = rng.standard_normal((3, rows, blocks * hidden)).astype(dt)
                    inputs[src], host[src] = At(buf, 0, 1), buf[1]
            elif kind == "vec":
                inputs[src] = host[src] = rng.standard_normal(2 * blocks * hidden).astype(dt)[::2]
            else:  # column 2 of a (rows, time) mask
                m = rng.standard_normal((rows, 5)) > 0
                inputs[src], host[src] = At(m, 1, 2), m[:, 2:3]
        outs = [_strided(rng, (rows, len(blocks) * hidden), dt) for _, blocks in graph.outputs]
        with np.errstate(invalid="ignore", divide="ignore"):
            kernels.launch(graph, inputs, outs, xp=np_xp, rows=rows, hidden=hidden,
                           float_dtype=dt, dev=None)
            want = evaluate(graph, host, xp=np_xp, hidden=hidden, float_dtype=dt)
        for o, (label, blocks) in zip(outs, want):
            ref = assemble(blocks, rows, hidden, dt)
            finite = np.isfinite(ref)
            np.testing.assert_array_equal(np.isfinite(o), finite, err_msg=f"{name} {label}")
            scale = max(float(np.max(np.abs(ref[finite]), initial=0.0)), np.finfo(dt).tiny)
            err = float(np.max(np.abs(o[finite] - ref[finite]), initial=0.0)) / scale
            assert err <= 16 * eps, f"{name} output {label}: {err / eps:.1f} eps"
            exact += bool(np.array_equal(o[finite], ref[finite]))
    assert exact > 0


def test_kernel_arguments_are_checked():
    """What the launcher passes a kernel is checked first: dtype, shape, slot index, strides
    of whole elements; each error names the argument."""
    t = Tracer(np_xp, np.float64, batch=2, hidden=3)
    a, m = t.input("a", "row", 2), t.input("m", "col", 1, "b")
    graph = t.graph([("o", t.ns.where(m, t.ns.tanh(a), a))])
    buf = np.zeros((4, 2, 6))
    mask = np.ones((2, 4), dtype=bool)
    run = dict(rows=2, hidden=3, dtypes={"f": np.dtype(np.float64), "b": np.dtype(np.bool_)},
               address=lambda x: x.ctypes.data, check=lambda name, x: None)
    got = kernel_args(graph, {"a": At(buf, 0, 3), "m": At(mask, 1, 1)}, [buf[0]], **run)
    assert got == [("u64", buf.ctypes.data + 3 * 2 * 6 * 8), ("i64", 6), ("i64", 1),
                   ("u64", mask.ctypes.data + 1), ("i64", 4),
                   ("u64", buf.ctypes.data), ("i64", 6), ("i64", 1)]
    for inputs, outs, match in [
        ({"a": At(buf, 0, 4), "m": mask[:, 0]}, [buf[0]], "index 4 on axis 0"),
        ({"a": buf[0].astype(np.float32), "m": mask[:, 0]}, [buf[0]], "'a': dtype float64"),
        ({"a": buf[0, :, :3], "m": mask[:, 0]}, [buf[0]], r"'a': shape \(2, 6\) expected"),
        ({"a": buf[0], "m": mask[:, :1].astype(float)}, [buf[0]], "'m': dtype bool"),
        ({"a": buf[0], "m": mask[:, 0]}, [buf[0, :, :3]], "output 'o': shape"),
        ({"a": np.ndarray((2, 6), np.float64, bytearray(200), strides=(52, 8)),
          "m": mask[:, 0]}, [buf[0]], "whole elements"),
    ]:
        with pytest.raises(ValueError, match=match):
            kernel_args(graph, inputs, outs, **run)
