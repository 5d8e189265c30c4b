"""Elementwise fusion of a cell's step: a stage function traced once into a graph of
elementwise operations (:class:`Tracer`, :class:`Graph`), which
:mod:`rnnx._backend._fuse_kernels` evaluates with any namespace's operations or compiles into
one CUDA kernel.

A cell's stages (:mod:`rnnx.functional._step`) are plain Array-API code, so they can be called
with *symbolic* arrays (:class:`Sym`) and a symbolic namespace (:class:`Tracer`'s ``ns``) that
record what is done to them instead of doing it. What can be recorded is what one thread of an
elementwise kernel over the ``(batch, hidden)`` index space can compute for its element:

* the operators ``+ - * /``, unary ``-``, the comparisons, ``& | ~`` on booleans;
* ``xp.tanh``, ``exp``, ``log``, ``sqrt``, ``abs``, ``maximum``, ``minimum``, ``where``,
  ``astype`` (boolean to the float dtype), the functional forms of the operators;
* constants: Python scalars, ``xp.zeros/ones/full(())``, ``xp.asarray(scalar)``,
  ``xp.zeros_like/ones_like``;
* ``xp.concat`` along the last axis and last-axis slices on ``hidden`` boundaries (what
  :func:`rnnx.functional._step.blocks` takes): an array is tracked as its list of ``hidden``-wide
  column blocks, so slicing and concatenating move no data at all;
* 1-D parameter vectors broadcast over the rows, ``(batch, 1)`` masks broadcast over the
  columns.

Anything else — a reduction (the layer norm's ``xp.mean``), a matrix product, a reshape, a
slice across blocks, reading a value on the host (a Python branch on an array) — raises
:class:`NotFusable`, and the executor runs that cell eagerly.

Each recorded operation is one node, created once: the same operation on the same nodes gives
the node already made (so a subexpression written twice is computed once; that changes no
value, the operations being deterministic). Constants take the traced float dtype, which is
what NumPy (NEP 50), CuPy and array-api-strict do with a Python scalar against a float array.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["Graph", "Node", "NotFusable", "Sym", "Tracer", "flatten", "symbolic_like",
           "trace_call", "unflatten"]


class NotFusable(Exception):
    """A stage does something one elementwise kernel cannot (a reduction, a matrix product, a
    reshape, a read of a value...): the message says what. The executor runs the cell eagerly."""


class Node:
    """One value per element of the ``(batch, hidden)`` index space: an input block, a
    constant, or an operation on other nodes. ``kind`` says how it varies: ``"row"`` over
    both axes, ``"vec"`` over columns only (a parameter block), ``"col"`` over rows only (a
    ``(batch, 1)`` mask), ``"scalar"`` not at all. ``dtype`` is ``"f"`` (the traced float
    dtype) or ``"b"`` (boolean). ``index`` is the creation order (the evaluation order)."""

    __slots__ = ("args", "dtype", "index", "kind", "op", "value")

    def __init__(self, op: str, args: tuple[Node, ...], dtype: str, kind: str, value: Any,
                 index: int) -> None:
        self.op, self.args, self.dtype, self.kind, self.value, self.index = (
            op, args, dtype, kind, value, index)

    def __repr__(self) -> str:
        inner = ", ".join(f"%{a.index}" for a in self.args)
        extra = "" if self.value is None else f" {self.value!r}"
        return f"%{self.index} = {self.op}({inner}){extra} : {self.kind}/{self.dtype}"


def _kind(kinds: Iterator[str]) -> str:
    """The kind of an elementwise result of operands of ``kinds`` (broadcasting)."""
    varying = set(kinds) - {"scalar"}
    if not varying:
        return "scalar"
    if len(varying) == 1:
        return varying.pop()
    return "row"  # row with anything, or a vec (over columns) with a col (over rows)


class Sym:
    """A symbolic array: ``kind`` (``"row"`` ``(batch, n*hidden)``, ``"vec"`` ``(n*hidden,)``,
    ``"col"`` ``(batch, 1)``, ``"scalar"`` ``()``) and its column ``blocks`` (``n`` nodes for
    a row or vec, one for the others). Supports what the module docstring lists; anything else
    raises :class:`NotFusable` (or the ``AttributeError`` of a missing attribute)."""

    __slots__ = ("_t", "blocks", "kind")

    def __init__(self, tracer: Tracer, kind: str, blocks: tuple[Node, ...]) -> None:
        self._t, self.kind, self.blocks = tracer, kind, tuple(blocks)

    # -- what the Array API lets code read without computing --------------------------------
    @property
    def dtype(self) -> Any:
        return self._t.float_dtype if self.blocks[0].dtype == "f" else self._t.bool_dtype

    @property
    def shape(self) -> tuple[int, ...]:
        t = self._t
        return {"row": (t.batch, len(self.blocks) * t.hidden), "vec": (len(self.blocks) * t.hidden,),
                "col": (t.batch, 1), "scalar": ()}[self.kind]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def device(self) -> Any:
        return self._t.device

    def __array_namespace__(self, api_version: Any = None) -> Any:
        return self._t.ns

    # -- operators ---------------------------------------------------------------------------
    def __add__(self, other: Any) -> Sym:
        return self._t.arith("add", self, other)

    def __radd__(self, other: Any) -> Sym:
        return self._t.arith("add", other, self)

    def __sub__(self, other: Any) -> Sym:
        return self._t.arith("sub", self, other)

    def __rsub__(self, other: Any) -> Sym:
        return self._t.arith("sub", other, self)

    def __mul__(self, other: Any) -> Sym:
        return self._t.arith("mul", self, other)

    def __rmul__(self, other: Any) -> Sym:
        return self._t.arith("mul", other, self)

    def __truediv__(self, other: Any) -> Sym:
        return self._t.arith("div", self, other)

    def __rtruediv__(self, other: Any) -> Sym:
        return self._t.arith("div", other, self)

    def __neg__(self) -> Sym:
        return self._t.unary("neg", self)

    def __pos__(self) -> Sym:
        return self._t.float_operand(self, "unary +")

    def __abs__(self) -> Sym:
        return self._t.unary("abs", self)

    def __lt__(self, other: Any) -> Sym:
        return self._t.compare("lt", self, other)

    def __le__(self, other: Any) -> Sym:
        return self._t.compare("le", self, other)

    def __gt__(self, other: Any) -> Sym:
        return self._t.compare("gt", self, other)

    def __ge__(self, other: Any) -> Sym:
        return self._t.compare("ge", self, other)

    def __eq__(self, other: Any) -> Sym:  # type: ignore[override]
        return self._t.compare("eq", self, other)

    def __ne__(self, other: Any) -> Sym:  # type: ignore[override]
        return self._t.compare("ne", self, other)

    __hash__ = object.__hash__  # identity: the executors tell outputs apart with `is`

    def __and__(self, other: Any) -> Sym:
        return self._t.logical("and", self, other)

    def __rand__(self, other: Any) -> Sym:
        return self._t.logical("and", other, self)

    def __or__(self, other: Any) -> Sym:
        return self._t.logical("or", self, other)

    def __ror__(self, other: Any) -> Sym:
        return self._t.logical("or", other, self)

    def __invert__(self) -> Sym:
        return self._t.logical_not(self)

    def __getitem__(self, key: Any) -> Sym:
        return self._t.getitem(self, key)

    # -- what a kernel cannot do -------------------------------------------------------------
    def __matmul__(self, other: Any) -> Sym:
        raise NotFusable("a matrix product inside a stage")

    __rmatmul__ = __matmul__

    def __setitem__(self, key: Any, value: Any) -> None:
        raise NotFusable("item assignment inside a stage")

    def _host(self, *args: Any) -> Any:
        raise NotFusable("a stage reads an array's value (a Python branch on it?)")

    __bool__ = __float__ = __int__ = __index__ = __complex__ = __array__ = _host

    def __pow__(self, other: Any) -> Sym:
        raise NotFusable("`**` (write the product: pow's rounding is not the product's)")

    __rpow__ = __pow__

    @property
    def T(self) -> Sym:
        raise NotFusable("a transpose inside a stage")

    mT = T

    def __iter__(self) -> Iterator[Any]:
        raise NotFusable("iterating over an array inside a stage")

    def __repr__(self) -> str:
        return f"Sym({self.kind}, {[b.index for b in self.blocks]})"


class _Device:
    """The device the symbolic arrays report (``device(a)``): creation functions are given it
    back and ignore it."""

    def __repr__(self) -> str:
        return "fused-kernel"


_DEVICE = _Device()


class _Namespace:
    """The namespace a stage is traced with (``xp``): elementwise functions record nodes;
    dtypes are the real namespace's; any other name raises :class:`NotFusable`."""

    def __init__(self, tracer: Tracer) -> None:
        self._t = tracer

    def __getattr__(self, name: str) -> Any:
        if name in ("float32", "float64", "bool", "float16", "int32", "int64", "int8", "int16",
                    "uint8", "complex64", "complex128"):
            return getattr(self._t.real, name)
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotFusable(f"xp.{name} is not elementwise (or not supported by the fuser)")

    # elementwise functions
    def tanh(self, x: Any) -> Sym:
        return self._t.unary("tanh", x)

    def exp(self, x: Any) -> Sym:
        return self._t.unary("exp", x)

    def log(self, x: Any) -> Sym:
        return self._t.unary("log", x)

    def sqrt(self, x: Any) -> Sym:
        return self._t.unary("sqrt", x)

    def abs(self, x: Any) -> Sym:
        return self._t.unary("abs", x)

    def negative(self, x: Any) -> Sym:
        return self._t.unary("neg", x)

    def positive(self, x: Any) -> Sym:
        return self._t.float_operand(self._t.sym(x), "positive")

    def add(self, a: Any, b: Any) -> Sym:
        return self._t.arith("add", a, b)

    def subtract(self, a: Any, b: Any) -> Sym:
        return self._t.arith("sub", a, b)

    def multiply(self, a: Any, b: Any) -> Sym:
        return self._t.arith("mul", a, b)

    def divide(self, a: Any, b: Any) -> Sym:
        return self._t.arith("div", a, b)

    def maximum(self, a: Any, b: Any) -> Sym:
        return self._t.arith("max", a, b)

    def minimum(self, a: Any, b: Any) -> Sym:
        return self._t.arith("min", a, b)

    def less(self, a: Any, b: Any) -> Sym:
        return self._t.compare("lt", a, b)

    def less_equal(self, a: Any, b: Any) -> Sym:
        return self._t.compare("le", a, b)

    def greater(self, a: Any, b: Any) -> Sym:
        return self._t.compare("gt", a, b)

    def greater_equal(self, a: Any, b: Any) -> Sym:
        return self._t.compare("ge", a, b)

    def equal(self, a: Any, b: Any) -> Sym:
        return self._t.compare("eq", a, b)

    def not_equal(self, a: Any, b: Any) -> Sym:
        return self._t.compare("ne", a, b)

    def logical_and(self, a: Any, b: Any) -> Sym:
        return self._t.logical("and", a, b)

    def logical_or(self, a: Any, b: Any) -> Sym:
        return self._t.logical("or", a, b)

    def logical_not(self, a: Any) -> Sym:
        return self._t.logical_not(a)

    def where(self, cond: Any, a: Any, b: Any) -> Sym:
        return self._t.where(cond, a, b)

    def astype(self, x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Sym:
        return self._t.astype(self._t.sym(x), dtype)

    def concat(self, arrays: Any, /, *, axis: int | None = 0) -> Sym:
        return self._t.concat(arrays, axis)

    # constants
    def _constant(self, shape: Any, value: Any, dtype: Any) -> Sym:
        if tuple(shape) != ():
            raise NotFusable(f"an array of shape {tuple(shape)} made inside a stage "
                             "(only 0-d constants and *_like)")
        return self._t.const(value, self._t.code_of(dtype, value))

    def zeros(self, shape: Any, *, dtype: Any = None, device: Any = None) -> Sym:
        return self._constant(shape, 0, dtype)

    def ones(self, shape: Any, *, dtype: Any = None, device: Any = None) -> Sym:
        return self._constant(shape, 1, dtype)

    def full(self, shape: Any, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Sym:
        return self._constant(shape, fill_value, dtype)

    def zeros_like(self, x: Any, /, *, dtype: Any = None, device: Any = None) -> Sym:
        return self._t.like(x, 0, dtype)

    def ones_like(self, x: Any, /, *, dtype: Any = None, device: Any = None) -> Sym:
        return self._t.like(x, 1, dtype)

    def full_like(self, x: Any, /, fill_value: Any, *, dtype: Any = None,
                  device: Any = None) -> Sym:
        return self._t.like(x, fill_value, dtype)

    def asarray(self, obj: Any, /, *, dtype: Any = None, device: Any = None,
                copy: Any = None) -> Sym:
        if isinstance(obj, Sym):
            return obj if dtype is None else self._t.astype(obj, dtype)
        return self._constant((), obj, dtype)


class Tracer:
    """Records one stage (or any elementwise function) as nodes.

    ``xp`` is the real namespace (its dtypes are reported), ``float_dtype`` the dtype of the
    call, ``batch`` and ``hidden`` the sizes the symbolic arrays report. Make the inputs with
    :meth:`input`, call the function with them and ``xp=tracer.ns``, then :meth:`graph` of the
    outputs."""

    def __init__(self, xp: Any, float_dtype: Any, *, batch: int, hidden: int) -> None:
        self.real, self.float_dtype, self.bool_dtype = xp, float_dtype, xp.bool
        self.batch, self.hidden = int(batch), int(hidden)
        self.device = _DEVICE
        self.ns = _Namespace(self)
        self.nodes: list[Node] = []
        self._memo: dict[tuple, Node] = {}
        self.sources: list[tuple[Any, str, int, str]] = []  # (source, kind, blocks, dtype)

    # -- nodes -------------------------------------------------------------------------------
    def node(self, op: str, args: tuple[Node, ...], dtype: str, value: Any = None) -> Node:
        """The node of ``op`` on ``args`` (made once: the same operation on the same nodes
        returns the node already made)."""
        key = (op, tuple(id(a) for a in args), dtype, value)
        found = self._memo.get(key)
        if found is not None:
            return found
        kind = "scalar" if op == "const" else _kind(a.kind for a in args)
        n = Node(op, args, dtype, kind, value, len(self.nodes))
        self.nodes.append(n)
        self._memo[key] = n
        return n

    def input(self, source: Any, kind: str, blocks: int = 1, dtype: str = "f") -> Sym:
        """A new input: ``kind`` ``"row"`` ``(batch, blocks*hidden)``, ``"vec"``
        ``(blocks*hidden,)`` or ``"col"`` ``(batch, 1)``; ``source`` names where the caller
        will find the array (a hashable label, unique per input)."""
        if kind not in ("row", "vec", "col") or (kind == "col" and blocks != 1) or blocks < 1:
            raise ValueError(f"an input is a row, vec or col of >= 1 blocks; got {kind} x {blocks}")
        if any(s[0] == source for s in self.sources):
            raise ValueError(f"input {source!r} declared twice")
        self.sources.append((source, kind, blocks, dtype))
        nodes = []
        for k in range(blocks):
            n = Node("input", (), dtype, kind, (source, k), len(self.nodes))
            self.nodes.append(n)
            nodes.append(n)
        return Sym(self, kind, tuple(nodes))

    def const(self, value: Any, dtype: str) -> Sym:
        if dtype == "b":
            v: Any = bool(value)
        else:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise NotFusable(f"a constant {value!r} of type {type(value).__name__}")
            v = float(value)
            if not math.isfinite(v):
                raise NotFusable(f"a non-finite constant {v!r}")
            if isinstance(value, numbers.Integral) and abs(int(value)) > 2**53:
                raise NotFusable(f"an integer constant {value!r} beyond float64's exact range")
            v = repr(v)  # keeps -0.0 apart from 0.0 in the node key
        return Sym(self, "scalar", (self.node("const", (), dtype, v),))

    def code_of(self, dtype: Any, value: Any = None) -> str:
        """``"f"`` or ``"b"`` for a requested dtype (``None``: from the Python value)."""
        if dtype is None:
            return "b" if isinstance(value, bool) else "f"
        if dtype == self.float_dtype:
            return "f"
        if dtype == self.bool_dtype:
            return "b"
        raise NotFusable(f"dtype {dtype} in a stage traced in {self.float_dtype}")

    def sym(self, x: Any) -> Sym:
        """``x`` as a symbolic array: Python scalars become constants of the traced dtype."""
        if isinstance(x, Sym):
            if x._t is not self:
                raise NotFusable("an array of another trace")
            return x
        if isinstance(x, bool):
            return self.const(x, "b")
        if isinstance(x, numbers.Real) and not hasattr(x, "shape"):
            return self.const(x, "f")
        if isinstance(x, numbers.Real) and getattr(x, "shape", None) == ():
            return self.const(float(x), "f")  # a NumPy scalar
        raise NotFusable(f"a concrete {type(x).__name__} inside a stage (only the stage's "
                         "arguments and Python scalars can enter a kernel)")

    def float_operand(self, s: Sym, what: str) -> Sym:
        if s.blocks[0].dtype != "f":
            raise NotFusable(f"{what} of a boolean array")
        return s

    def _to_float(self, s: Sym) -> Sym:
        return s if s.blocks[0].dtype == "f" else self._map("cast", [s], "f")

    def _map(self, op: str, operands: list[Sym], dtype: str, value: Any = None) -> Sym:
        """``op`` block by block over broadcast operands."""
        wide = [s for s in operands if s.kind in ("row", "vec")]
        widths = {len(s.blocks) for s in wide}
        if len(widths) > 1:
            raise NotFusable(f"{op} of arrays {[s.shape for s in operands]} that do not "
                             "broadcast")
        n = widths.pop() if widths else 1
        kind = _kind(s.kind for s in operands)
        blocks = tuple(self.node(op, tuple(s.blocks[k] if s.kind in ("row", "vec") else s.blocks[0]
                                           for s in operands), dtype, value)
                       for k in range(n))
        return Sym(self, kind, blocks)

    def unary(self, op: str, x: Any) -> Sym:
        s = self.float_operand(self.sym(x), op)
        return self._map(op, [s], "f")

    def arith(self, op: str, a: Any, b: Any) -> Sym:
        sa, sb = self.sym(a), self.sym(b)
        if sa.blocks[0].dtype == "b" and sb.blocks[0].dtype == "b":
            raise NotFusable(f"{op} of two boolean arrays")
        return self._map(op, [self._to_float(sa), self._to_float(sb)], "f")

    def compare(self, op: str, a: Any, b: Any) -> Sym:
        sa, sb = self.sym(a), self.sym(b)
        da, db = sa.blocks[0].dtype, sb.blocks[0].dtype
        if da != db or (da == "b" and op not in ("eq", "ne")):
            raise NotFusable(f"comparison {op} of {da}/{db} operands")
        return self._map(op, [sa, sb], "b")

    def logical(self, op: str, a: Any, b: Any) -> Sym:
        sa, sb = self.sym(a), self.sym(b)
        if sa.blocks[0].dtype != "b" or sb.blocks[0].dtype != "b":
            raise NotFusable(f"logical {op} of non-boolean arrays")
        return self._map(op, [sa, sb], "b")

    def logical_not(self, a: Any) -> Sym:
        s = self.sym(a)
        if s.blocks[0].dtype != "b":
            raise NotFusable("logical not (~) of a non-boolean array")
        return self._map("not", [s], "b")

    def where(self, cond: Any, a: Any, b: Any) -> Sym:
        sc, sa, sb = self.sym(cond), self.sym(a), self.sym(b)
        if sc.blocks[0].dtype != "b":
            raise NotFusable("where with a non-boolean condition")
        if sa.blocks[0].dtype != sb.blocks[0].dtype:
            sa, sb = self._to_float(sa), self._to_float(sb)
        return self._map("where", [sc, sa, sb], sa.blocks[0].dtype)

    def astype(self, s: Sym, dtype: Any) -> Sym:
        code = self.code_of(dtype)
        have = s.blocks[0].dtype
        if code == have:
            return s
        if code == "f":
            return self._map("cast", [s], "f")
        raise NotFusable("a cast of a float array to boolean")

    def like(self, x: Any, value: Any, dtype: Any) -> Sym:
        s = self.sym(x)
        code = s.blocks[0].dtype if dtype is None else self.code_of(dtype)
        c = self.const(value, code).blocks[0]
        return Sym(self, s.kind, (c,) * len(s.blocks))

    def getitem(self, s: Sym, key: Any) -> Sym:
        keys = list(key) if isinstance(key, tuple) else [key]
        ndim = {"row": 2, "vec": 1}.get(s.kind)
        if ndim is None:
            raise NotFusable(f"indexing a {s.kind} array")
        if keys.count(Ellipsis) > 1 or any(k is not Ellipsis and not isinstance(k, slice)
                                          for k in keys):
            raise NotFusable(f"index {key!r} (only slices on hidden blocks)")
        if Ellipsis in keys:
            at = keys.index(Ellipsis)
            keys[at: at + 1] = [slice(None)] * (ndim - len(keys) + 1)
        keys += [slice(None)] * (ndim - len(keys))
        if len(keys) != ndim or any(k != slice(None) for k in keys[:-1]):
            raise NotFusable(f"index {key!r} (only the last axis may be sliced)")
        h = self.hidden
        start, stop, step = keys[-1].indices(len(s.blocks) * h)
        if step != 1 or start % h or stop % h or stop <= start:
            raise NotFusable(f"slice {keys[-1]!r} of a ({len(s.blocks)}*{h})-wide axis is not a "
                             "range of whole hidden blocks")
        return Sym(self, s.kind, s.blocks[start // h: stop // h])

    def concat(self, arrays: Any, axis: int | None) -> Sym:
        parts = [self.sym(a) for a in arrays]
        kinds = {p.kind for p in parts}
        if not parts or len(kinds) != 1 or kinds.pop() not in ("row", "vec"):
            raise NotFusable("concat of arrays that are not all (batch, n*hidden) or all 1-D")
        ndim = parts[0].ndim
        if axis is None or axis not in (ndim - 1, -1):
            raise NotFusable(f"concat along axis {axis} (only the last)")
        if len({p.blocks[0].dtype for p in parts}) != 1:
            raise NotFusable("concat of float and boolean arrays")
        return Sym(self, parts[0].kind, tuple(b for p in parts for b in p.blocks))

    # -- the result --------------------------------------------------------------------------
    def graph(self, outputs: list[tuple[Any, Sym]]) -> Graph:
        """The graph computing ``outputs`` (``(label, Sym)`` pairs; each a float ``(batch,
        n*hidden)`` array) from the inputs it reads (the others are dropped)."""
        outs = []
        for label, s in outputs:
            if not isinstance(s, Sym) or s._t is not self:
                raise NotFusable(f"output {label!r} is a {type(s).__name__}, not an array of "
                                 "this trace")
            if s.kind != "row":
                raise NotFusable(f"output {label!r} is {s.shape}, not (batch, n*hidden)")
            if s.blocks[0].dtype != "f":
                raise NotFusable(f"output {label!r} is boolean")
            outs.append((label, s.blocks))
        seen: dict[int, Node] = {}
        stack = [b for _, blocks in outs for b in blocks]
        while stack:
            n = stack.pop()
            if n.index not in seen:
                seen[n.index] = n
                stack.extend(n.args)
        nodes = tuple(seen[i] for i in sorted(seen))
        used = {n.value[0] for n in nodes if n.op == "input"}
        sources = tuple(s for s in self.sources if s[0] in used)
        return Graph(sources, tuple(outs), nodes)


class Graph:
    """A traced elementwise computation: ``inputs`` ``(source, kind, blocks, dtype)`` in the
    order a kernel takes them, ``outputs`` ``(label, blocks)`` (each block a node), and every
    node they need in evaluation order."""

    __slots__ = ("inputs", "nodes", "outputs")

    def __init__(self, inputs: tuple, outputs: tuple, nodes: tuple[Node, ...]) -> None:
        self.inputs, self.outputs, self.nodes = inputs, outputs, nodes

    @property
    def operations(self) -> int:
        """Nodes that compute something (not inputs or constants): one thread's arithmetic."""
        return sum(1 for n in self.nodes if n.op not in ("input", "const"))

    def describe(self) -> str:
        """The nodes, one a line, and the outputs: for reading a trace."""
        lines = [repr(n) for n in self.nodes]
        lines += [f"out {label!r} = {[b.index for b in blocks]}" for label, blocks in self.outputs]
        return "\n".join(lines)


# -- pytrees of stage results ---------------------------------------------------------------

def flatten(tree: Any) -> tuple[list[Sym], Any]:
    """The symbolic arrays of a stage's result (nested tuples, NamedTuples, lists, dicts,
    ``None``) in order, and a description to :func:`unflatten` it with other leaves."""
    leaves: list[Sym] = []

    def walk(x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, Sym):
            leaves.append(x)
            return ("leaf", len(leaves) - 1)
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return ("named", type(x), tuple(walk(v) for v in x))
        if isinstance(x, (tuple, list)):
            return (type(x).__name__, tuple(walk(v) for v in x))
        if isinstance(x, Mapping):
            return ("dict", tuple(x), tuple(walk(v) for v in x.values()))
        raise NotFusable(f"a stage returned a {type(x).__name__}")

    return leaves, walk(tree)


def unflatten(spec: Any, leaves: list[Any]) -> Any:
    """The structure ``spec`` (from :func:`flatten`) with its leaves taken from ``leaves``."""
    if spec is None:
        return None
    tag = spec[0]
    if tag == "leaf":
        return leaves[spec[1]]
    if tag == "named":
        return spec[1](*(unflatten(s, leaves) for s in spec[2]))
    if tag == "dict":
        return dict(zip(spec[1], (unflatten(s, leaves) for s in spec[2])))
    items = [unflatten(s, leaves) for s in spec[1]]
    return tuple(items) if tag == "tuple" else items


def symbolic_like(tracer: Tracer, label: Any, tree: Any) -> Any:
    """Inputs of ``tracer`` with the structure of ``tree`` (nested tuples, lists, dicts,
    ``None``; leaves real or symbolic arrays ``(batch, n*hidden)`` or ``(n*hidden,)``): leaf
    ``i`` becomes the input ``(label, i)``. The shapes must be whole ``hidden`` blocks."""
    leaves: list[Any] = []

    def collect(x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return ("named", type(x), tuple(collect(v) for v in x))
        if isinstance(x, (tuple, list)):
            return (type(x).__name__, tuple(collect(v) for v in x))
        if isinstance(x, Mapping):
            return ("dict", tuple(x), tuple(collect(v) for v in x.values()))
        shape = tuple(getattr(x, "shape", ()))
        h = tracer.hidden
        if len(shape) == 2 and shape[0] == tracer.batch and shape[1] % h == 0 and shape[1]:
            kind = "row"
        elif len(shape) == 1 and shape[0] % h == 0 and shape[0]:
            kind = "vec"
        else:
            raise NotFusable(f"an input of shape {shape} is not (batch, n*hidden) or (n*hidden,)")
        leaves.append(tracer.input((label, len(leaves)), kind, shape[-1] // h))
        return ("leaf", len(leaves) - 1)

    spec = collect(tree)
    return unflatten(spec, leaves)


def trace_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with the errors a symbolic call can raise on unsupported code
    (a missing attribute, a type the function did not expect) reported as
    :class:`NotFusable`, naming ``fn``."""
    try:
        return fn(*args, **kwargs)
    except NotFusable as exc:
        raise NotFusable(f"{_name(fn)}: {exc}") from None
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        raise NotFusable(f"{_name(fn)} could not be traced: {type(exc).__name__}: {exc}") from None


def _name(fn: Any) -> str:
    inner = getattr(fn, "func", fn)
    return f"{getattr(inner, '__module__', '?')}.{getattr(inner, '__qualname__', repr(inner))}"
