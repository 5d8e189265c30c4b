"""Running a traced step graph (:mod:`rnnx._backend._fuse`): with a namespace's operations
(:func:`evaluate`, :class:`ReferenceKernels`) or as one CUDA kernel (:func:`kernel_source`,
:func:`kernel_args`, :class:`CupyKernels`).

The kernel source is plain C++ over the ``(batch, hidden)`` index space: one statement per node
in the graph's order, every input read before any output is written, functions of the kernel's
float type (``tanhf`` for float, ``tanh`` for double), constants converted to it as NumPy
converts a Python float against an array of that type. The same text compiles as CUDA (CuPy's
NVRTC, or nvcc) and, with ``-DRNNX_HOST``, as host C++, which is how the tests run it on a CPU.
A kernel takes every array by address and strides in elements (a slot of a time-major buffer,
:class:`At`, is an address plus an offset: no view is made per step).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ._fuse import Graph

__all__ = ["PRELUDE", "At", "CupyKernels", "ReferenceKernels", "evaluate", "kernel_args",
           "kernel_source", "view"]


def evaluate(graph: Graph, inputs: Mapping[Any, Any], *, xp: Any, hidden: int,
             float_dtype: Any, device: Any = None) -> list[tuple[Any, list[Any]]]:
    """The graph's outputs computed with namespace ``xp``'s operations, one call per node in
    evaluation order: ``[(label, [block arrays])]``. ``inputs`` maps each input's source to
    its array (a row ``(batch, n*hidden)``, a vec ``(n*hidden,)``, a col ``(batch, 1)``);
    constants are 0-d arrays of ``float_dtype`` (or boolean) on ``device``. A block may be a
    0-d or 1-D array where the output does not vary over rows or columns (broadcast it)."""
    vals: dict[int, Any] = {}
    h = hidden
    for n in graph.nodes:
        op, a = n.op, [vals[x.index] for x in n.args]
        if op == "input":
            src, k = n.value
            arr = inputs[src]
            v = arr[:, k * h:(k + 1) * h] if n.kind == "row" else (
                arr[k * h:(k + 1) * h] if n.kind == "vec" else arr)
        elif op == "const":
            v = xp.asarray(n.value if n.dtype == "b" else float(n.value),
                           dtype=float_dtype if n.dtype == "f" else xp.bool, device=device)
        elif op == "add":
            v = a[0] + a[1]
        elif op == "sub":
            v = a[0] - a[1]
        elif op == "mul":
            v = a[0] * a[1]
        elif op == "div":
            v = a[0] / a[1]
        elif op == "neg":
            v = -a[0]
        elif op in ("abs", "tanh", "exp", "log", "sqrt"):
            v = getattr(xp, op)(a[0])
        elif op == "max":
            v = xp.maximum(a[0], a[1])
        elif op == "min":
            v = xp.minimum(a[0], a[1])
        elif op == "lt":
            v = a[0] < a[1]
        elif op == "le":
            v = a[0] <= a[1]
        elif op == "gt":
            v = a[0] > a[1]
        elif op == "ge":
            v = a[0] >= a[1]
        elif op == "eq":
            v = a[0] == a[1]
        elif op == "ne":
            v = a[0] != a[1]
        elif op == "and":
            v = xp.logical_and(a[0], a[1])
        elif op == "or":
            v = xp.logical_or(a[0], a[1])
        elif op == "not":
            v = xp.logical_not(a[0])
        elif op == "where":
            v = xp.where(a[0], a[1], a[2])
        elif op == "cast":
            v = xp.astype(a[0], float_dtype)
        else:  # pragma: no cover - the tracer makes no other op
            raise AssertionError(op)
        vals[n.index] = v
    return [(label, [vals[b.index] for b in blocks]) for label, blocks in graph.outputs]


# -- CUDA C ---------------------------------------------------------------------------------

_FUNCTIONS = {
    "float": {"tanh": "tanhf", "exp": "expf", "log": "logf", "sqrt": "sqrtf", "abs": "fabsf"},
    "double": {"tanh": "tanh", "exp": "exp", "log": "log", "sqrt": "sqrt", "abs": "fabs"},
}
_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "lt": "<", "le": "<=", "gt": ">",
          "ge": ">=", "eq": "==", "ne": "!=", "and": "&&", "or": "||"}

#: What every kernel source starts with: the same text compiles as CUDA (NVRTC or nvcc, where
#: ``RNNX_HOST`` is undefined) and, with ``-DRNNX_HOST``, as host C++ that runs the same
#: per-element function over a loop (the tests run it on the CPU).
PRELUDE = """\
#ifdef RNNX_HOST
#include <math.h>
#define RNNX_AT static inline
#else
#define RNNX_AT __device__ __forceinline__
#endif
"""


def _c_params(graph: Graph, ctype: str) -> list[tuple[str, str, str]]:
    """``(C type inside, C type of the kernel parameter, name)`` of the parameters after
    ``rows, hidden``: per input its pointer and strides in elements (a row: row and column
    strides; a vec: its stride; a col: its row stride), per output its pointer and row and
    column strides. A kernel takes each pointer as an ``unsigned long long`` address (what
    :func:`kernel_args` computes, a view's offset included) and casts it."""
    addr, stride = "const unsigned long long", "const long long"
    params: list[tuple[str, str, str]] = []
    for i, (_, kind, _, dtype) in enumerate(graph.inputs):
        t = "bool" if dtype == "b" else ctype
        params.append((f"const {t}*", addr, f"in{i}"))
        params += [(stride, stride, f"in{i}_{s}") for s in
                   {"row": ("rs", "cs"), "vec": ("cs",), "col": ("rs",)}[kind]]
    for j, _ in enumerate(graph.outputs):
        params += [(f"{ctype}*", addr, f"out{j}"), (stride, stride, f"out{j}_rs"),
                   (stride, stride, f"out{j}_cs")]
    return params


def _c_literal(value: str, ctype: str) -> str:
    """A float constant as C: the shortest decimal that reads back as the double (Python's
    repr), converted to ``ctype`` (to float by round-to-nearest, as NumPy converts a Python
    float against a float32 array)."""
    return f"(({ctype}){value})"


def kernel_source(graph: Graph, ctype: str) -> tuple[str, str]:
    """``(name, source)`` of the CUDA kernel computing ``graph`` in ``ctype`` (``"float"`` or
    ``"double"``): one thread per element of ``(rows, hidden)`` in a grid-stride loop,
    ``extern "C" __global__ void name(long long rows, long long hidden, <inputs>, <outputs>)``
    (parameters: :func:`_c_params`, their values: :func:`kernel_args`). Every input is read
    before any output is written; each node is one statement. The name is a hash of the
    source, so equal graphs share a kernel.
    With ``-DRNNX_HOST`` the source defines ``name_host`` instead, the same computation as a
    host loop."""
    if ctype not in _FUNCTIONS:
        raise ValueError(f"ctype must be 'float' or 'double'; got {ctype!r}")
    fns = _FUNCTIONS[ctype]
    slot = {src: i for i, (src, *_) in enumerate(graph.inputs)}
    lines = []
    for n in graph.nodes:
        t = "bool" if n.dtype == "b" else ctype
        a = [f"v{x.index}" for x in n.args]
        op = n.op
        if op == "input":
            src, k = n.value
            i = slot[src]
            at = {"row": f"in{i}[r * in{i}_rs + ({k} * hidden + c) * in{i}_cs]",
                  "vec": f"in{i}[({k} * hidden + c) * in{i}_cs]",
                  "col": f"in{i}[r * in{i}_rs]"}[n.kind]
            expr = at
        elif op == "const":
            expr = ("true" if n.value else "false") if n.dtype == "b" else _c_literal(n.value, ctype)
        elif op in _INFIX:
            expr = f"{a[0]} {_INFIX[op]} {a[1]}"
        elif op == "neg":
            expr = f"-{a[0]}"
        elif op == "not":
            expr = f"!{a[0]}"
        elif op in fns:
            expr = f"{fns[op]}({a[0]})"
        elif op == "max":  # NumPy's maximum: NaN wins
            expr = f"({a[0]} >= {a[1]} || {a[0]} != {a[0]}) ? {a[0]} : {a[1]}"
        elif op == "min":
            expr = f"({a[0]} <= {a[1]} || {a[0]} != {a[0]}) ? {a[0]} : {a[1]}"
        elif op == "where":
            expr = f"{a[0]} ? {a[1]} : {a[2]}"
        elif op == "cast":
            expr = f"({ctype}){a[0]}"
        else:  # pragma: no cover - the tracer makes no other op
            raise AssertionError(op)
        lines.append(f"    const {t} v{n.index} = {expr};")
    for j, (_, blocks) in enumerate(graph.outputs):
        for k, b in enumerate(blocks):
            lines.append(f"    out{j}[r * out{j}_rs + ({k} * hidden + c) * out{j}_cs] = v{b.index};")
    params = _c_params(graph, ctype)
    decl = ",\n    ".join(f"{t} {n}" for t, _, n in params)
    outer = ",\n    ".join(f"{t} {n}" for _, t, n in params)
    names = ", ".join(n if t == a else f"({t}){n}" for t, a, n in params)
    body = "\n".join(lines)
    digest = hashlib.sha1(f"{ctype}\n{decl}\n{body}".encode()).hexdigest()[:16]
    name = f"rnnx_fused_{digest}"
    src = f"""{PRELUDE}
RNNX_AT void {name}_at(const long long r, const long long c, const long long hidden,
    {decl})
{{
{body}
}}

#ifndef RNNX_HOST
extern "C" __global__ void {name}(const long long rows, const long long hidden,
    {outer})
{{
    const long long n = rows * hidden;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {{
        const long long r = i / hidden;
        {name}_at(r, i - r * hidden, hidden, {names});
    }}
}}
#else
extern "C" void {name}_host(const long long rows, const long long hidden,
    {outer})
{{
    for (long long r = 0; r < rows; ++r)
        for (long long c = 0; c < hidden; ++c)
            {name}_at(r, c, hidden, {names});
}}
#endif
"""
    return name, src


class At(NamedTuple):
    """``array`` at ``index`` along ``axis`` (``a[t, ...]`` is ``At(a, 0, t)``, ``mask[:, t]``
    is ``At(mask, 1, t)``), not made: a compiled kernel reads it by address, the view's offset
    computed (:func:`kernel_args`); :func:`view` makes it where a namespace's operations need it.
    Per step this saves making a view of each buffer slot a kernel reads or writes."""

    array: Any
    axis: int
    index: int


def view(a: Any) -> Any:
    """The array an argument stands for: ``a`` itself, or the view an :class:`At` names."""
    if isinstance(a, At):
        return a.array[(slice(None),) * a.axis + (a.index, Ellipsis)]
    return a


def kernel_args(graph: Graph, inputs: Mapping[Any, Any], outputs: list[Any], *, rows: int,
                hidden: int, dtypes: Mapping[str, Any], address: Callable[[Any], int],
                check: Callable[[str, Any], None]) -> list[tuple[str, int]]:
    """The values of the kernel parameters after ``rows, hidden`` (:func:`_c_params`), as
    ``("u64", address)`` and ``("i64", stride in elements)`` pairs: each input by its source in
    ``inputs``, each output in ``outputs`` (arrays with ``shape``, ``strides`` in bytes,
    ``itemsize``, ``dtype``, or :class:`At` of such arrays). ``dtypes`` maps ``"f"``/``"b"`` to
    the dtypes the kernel reads, ``address(array)`` is the address of an array's first element,
    ``check(name, array)`` may refuse an array (another device). Raises ``ValueError`` naming
    the argument for a wrong dtype, shape, index or a stride of no whole element, so nothing
    out of bounds reaches a kernel."""

    def layout(name: str, a: Any, code: str, shape: tuple[int, ...]) -> list[tuple[str, int]]:
        arr, offset = (a.array, None) if isinstance(a, At) else (a, 0)
        check(name, arr)
        want = dtypes[code]
        if arr.dtype != want:
            raise ValueError(f"fused kernel argument {name}: dtype {want} expected; got "
                             f"{arr.dtype}")
        have, strides = tuple(arr.shape), tuple(arr.strides)
        if isinstance(a, At):
            if not 0 <= a.axis < len(have) or not 0 <= a.index < have[a.axis]:
                raise ValueError(f"fused kernel argument {name}: index {a.index} on axis "
                                 f"{a.axis} of an array of shape {have}")
            offset = a.index * strides[a.axis]
            have = have[: a.axis] + have[a.axis + 1:]
            strides = strides[: a.axis] + strides[a.axis + 1:]
        if have == (rows,) and shape == (rows, 1):  # a mask column
            have, strides = (rows, 1), (*strides, 0)
        if have != shape:
            raise ValueError(f"fused kernel argument {name}: shape {shape} expected; got {have}")
        size = arr.itemsize
        if any(st % size for st in strides):
            raise ValueError(f"fused kernel argument {name}: strides {strides} are not whole "
                             f"elements of {size} bytes")
        els = [st // size for st in strides]
        return [("u64", address(arr) + offset), *(("i64", e) for e in els)]

    args: list[tuple[str, int]] = []
    for src, kind, blocks, code in graph.inputs:
        a = inputs[src]
        if kind == "row":
            args += layout(repr(src), a, code, (rows, blocks * hidden))
        elif kind == "vec":
            args += layout(repr(src), a, code, (blocks * hidden,))
        else:
            args += layout(repr(src), a, code, (rows, 1))[:2]  # the address and row stride
    if len(outputs) != len(graph.outputs):
        raise ValueError(f"{len(graph.outputs)} outputs expected; got {len(outputs)}")
    for (label, blocks), out in zip(graph.outputs, outputs):
        args += layout(f"output {label!r}", out, "f", (rows, len(blocks) * hidden))
    return args



# -- kernel backends -------------------------------------------------------------------------

class ReferenceKernels:
    """Runs a graph with the namespace of its arrays, one call per node, and writes each output
    block by item assignment (all outputs computed before any is written, as in the CUDA
    kernel). ``launches`` counts the graphs run."""

    name = "reference"

    def __init__(self) -> None:
        self.launches = 0

    def launch(self, graph: Graph, inputs: Mapping[Any, Any], outputs: list[Any], *, xp: Any,
               rows: int, hidden: int, float_dtype: Any, dev: Any) -> None:
        self.launches += 1
        arrays = {}
        for src, kind, _, _ in graph.inputs:
            a = view(inputs[src])
            arrays[src] = a[:, None] if kind == "col" and a.ndim == 1 else a  # (B, 1)
        values = evaluate(graph, arrays, xp=xp, hidden=hidden, float_dtype=float_dtype,
                          device=dev)
        for (_, blocks), out in zip(values, outputs):
            out = view(out)
            for k, b in enumerate(blocks):
                out[:, k * hidden:(k + 1) * hidden] = b  # (B, H), a view of the caller's buffer


class CupyKernels:
    """Compiles each graph into a ``cupy.RawKernel`` (cached by its source: equal graphs share
    a kernel) and launches it on the current stream, ``threads`` per block in a grid-stride
    loop. Arguments are arrays or :class:`At` slots of them, passed by
    address and strides (:func:`kernel_args`: dtype, shape, index and
    strides checked, so a wrong buffer raises ``ValueError`` instead of being written out of
    bounds); each must be a CuPy array on the current device. ``launches`` counts the kernels
    launched."""

    name = "cuda"
    #: The compiler options: no fused multiply-add, so each ``*`` and ``+`` rounds as CuPy's
    #: elementwise functions (one operation a kernel) round it.
    OPTIONS = ("--fmad=false",)

    def __init__(self, *, threads: int = 256) -> None:
        self.threads = threads
        self.launches = 0
        self._by_graph: dict[tuple[int, str], tuple[Graph, Any]] = {}
        self._by_source: dict[str, Any] = {}

    def kernel(self, graph: Graph, ctype: str) -> Any:
        """The compiled kernel of ``graph`` in ``ctype`` (``"float"``/``"double"``)."""
        key = (id(graph), ctype)
        held = self._by_graph.get(key)
        if held is not None and held[0] is graph:
            return held[1]
        import cupy

        name, src = kernel_source(graph, ctype)
        k = self._by_source.get(src)
        if k is None:
            k = self._by_source[src] = cupy.RawKernel(src, name, options=self.OPTIONS)
        self._by_graph[key] = (graph, k)  # holds the graph: its id stays its own
        return k

    def launch(self, graph: Graph, inputs: Mapping[Any, Any], outputs: list[Any], *, xp: Any,
               rows: int, hidden: int, float_dtype: Any, dev: Any) -> None:
        import cupy
        import numpy

        dtype = numpy.dtype(float_dtype)
        ctype = {numpy.dtype("float32"): "float", numpy.dtype("float64"): "double"}.get(dtype)
        if ctype is None:
            raise ValueError(f"fused kernels compute in float32 or float64; got {dtype}")
        here = cupy.cuda.Device().id

        def check(name: str, a: Any) -> None:
            if not isinstance(a, cupy.ndarray):
                raise ValueError(f"fused kernel argument {name}: a cupy.ndarray expected; "
                                 f"got {type(a).__name__}")
            if a.data.device_id != here:
                raise ValueError(f"fused kernel argument {name} is on device "
                                 f"{a.data.device_id}, the kernel runs on {here}")

        args = kernel_args(graph, inputs, outputs, rows=rows, hidden=hidden,
                           dtypes={"f": dtype, "b": numpy.dtype(numpy.bool_)},
                           address=lambda a: a.data.ptr, check=check)
        n = rows * hidden
        if n == 0:
            return
        values = [numpy.int64(rows), numpy.int64(hidden)]
        values += [numpy.uint64(v) if kind == "u64" else numpy.int64(v) for kind, v in args]
        grid = min(-(-n // self.threads), 1 << 20)
        self.kernel(graph, ctype)((grid,), (self.threads,), tuple(values))
        self.launches += 1
