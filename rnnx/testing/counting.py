"""Array-API calls counted: how many calls a function makes, and how many a cell makes per time
step of its forward and backward pass.

On a GPU every call that computes something is a kernel launch (and every Python scalar handed
to a namespace function may be a host -> device copy behind array-api-compat's wrappers), so at
small and mid sizes the calls per step, not the arithmetic, set the speed of a recurrence.

:func:`count_calls` runs the real computation on a real backend (array-api-strict by default)
with its namespace functions and its array type's operators wrapped for the duration of a
``with`` block; the numbers computed are the ones the unwrapped backend computes.
:func:`calls_per_step` separates a cell's per-step calls from its fixed per-call ones by running
it at several sequence lengths, and :func:`cell_calls_rows` does that for every registered cell.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._backend import forced_executor, from_host, get_namespace, host_rng
from .._typing import Namespace
from ..functional.registry import CELLS, Cell
from .agreement import cell_variants, make_case

__all__ = ["CallCounts", "StepCalls", "calls_per_step", "cell_calls_rows", "count_calls",
           "scanned_ops_per_step"]

# Inquiries about dtypes and shapes: they compute nothing on any device.
_NOT_COUNTED = frozenset({"finfo", "iinfo", "isdtype", "result_type", "can_cast",
                          "broadcast_shapes", "__array_namespace_info__",
                          "set_array_api_strict_flags", "get_array_api_strict_flags",
                          "reset_array_api_strict_flags", "ArrayAPIStrictFlags", "Device"})

# Functions whose array operands may be Python scalars (the standard's binary elementwise
# functions, where and clip): the positions and keywords of those operands.
_BINARY = ("add", "subtract", "multiply", "divide", "floor_divide", "pow", "remainder",
           "maximum", "minimum", "atan2", "copysign", "hypot", "logaddexp", "nextafter",
           "equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
           "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or",
           "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift")
_OPERANDS: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    **{n: ((0, 1), ("x1", "x2")) for n in _BINARY},
    "where": ((1, 2), ("x1", "x2")),
    "clip": ((1, 2), ("min", "max")),
}

_ARITHMETIC = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
               "xor", "lshift", "rshift")
_OPERATORS = (*(f"__{p}{op}__" for op in _ARITHMETIC for p in ("", "r", "i")),
              "__neg__", "__pos__", "__abs__", "__invert__", "__eq__", "__ne__", "__lt__",
              "__le__", "__gt__", "__ge__", "__getitem__", "__setitem__")
# Reads to the host (each a device synchronisation on a GPU) and device moves.
_TRANSFERS = ("__bool__", "__int__", "__float__", "__complex__", "__index__", "__array__",
              "__dlpack__", "to_device")

_SCALARS = (bool, int, float, complex)


def _basic_index(key: Any) -> bool:
    """Whether ``key`` is basic indexing (integers, slices, ``...``, ``None``): a view, no
    kernel, in every strided array library."""
    keys = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice)) for k in keys)


@dataclass
class CallCounts:
    """Counts of one :func:`count_calls` block.

    ``by_name`` counts each namespace function (``"tanh"``) and array method (``"__mul__"``)
    called from outside the backend; ``views`` how many of those were basic-index
    ``__getitem__`` calls (a view, no kernel: counted in ``calls``, not in ``launches``);
    ``scalars`` the Python scalars passed as array operands to namespace functions
    (``maximum(a, 0.0)``), each a conversion to an array on some backends."""

    by_name: Counter = field(default_factory=Counter)
    views: int = 0
    scalars: int = 0
    uploads: int = 0

    @property
    def host_crossings(self) -> int:
        """Host reads and device moves (``__bool__``, ``__float__``, ``__array__``, ...,
        ``to_device``) plus ``uploads``, the ``asarray`` calls on host data (NumPy arrays,
        lists, scalars): each a synchronisation on a GPU."""
        return sum(self.by_name[name] for name in _TRANSFERS) + self.uploads

    @property
    def calls(self) -> int:
        """Every counted call."""
        return sum(self.by_name.values())

    @property
    def launches(self) -> int:
        """Calls that compute or copy something (``calls`` less the basic-index views): kernel
        launches on a GPU."""
        return self.calls - self.views


class _Recorder:
    def __init__(self) -> None:
        self.counts = CallCounts()
        self.depth = 0  # calls the backend makes to itself are part of the outer call

    def wrap(self, name: str, fn: Callable[..., Any], *, operands: Any = None,
             getitem: bool = False, device_type: type | None = None) -> Callable[..., Any]:
        @functools.wraps(fn)
        def counted(*args: Any, **kwargs: Any) -> Any:
            if self.depth == 0:
                c = self.counts
                c.by_name[name] += 1
                if getitem and _basic_index(args[1]):
                    c.views += 1
                if device_type is not None and args and not isinstance(args[0], device_type):
                    c.uploads += 1
                if operands is not None:
                    pos, kw = operands
                    c.scalars += sum(1 for i in pos if i < len(args)
                                     and isinstance(args[i], _SCALARS))
                    c.scalars += sum(1 for k in kw if isinstance(kwargs.get(k), _SCALARS))
            self.depth += 1
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1

        return counted


@contextlib.contextmanager
def count_calls(xp: Namespace | None = None) -> Iterator[CallCounts]:
    """Count the array-API calls made inside the ``with`` block::

        with count_calls() as c:
            out, cache = rnn_forward(x, w_x, w_h, b)   # x etc. array-api-strict arrays
        c.calls, c.launches, c.scalars, c.by_name

    ``xp`` is a namespace that is a module whose array type is a Python class, by default
    array-api-strict (whose arrays are those the block must compute with). For the block's
    duration every function of the namespace and the operators and methods of its array type
    are replaced by counting wrappers; they are restored on exit, also after an exception.

    Counted: calls of namespace functions (``xp.tanh``, ``xp.concat``, ``xp.zeros``...), array
    operators including the in-place and reflected ones (``a @ b``, ``a += b``, ``2.0 - a``),
    comparisons, indexing (``__getitem__``; basic indexing is also counted as a view) and item
    assignment (``__setitem__``), host reads and device moves (``__bool__``, ``__float__``,
    ``__array__``, ``__dlpack__``, ``to_device``...; with the ``asarray`` calls on host data,
    :attr:`CallCounts.host_crossings`). A call the backend makes to itself
    inside a counted call is part of that call. Not counted: attribute reads (``.shape``,
    ``.dtype``, ``.device``, ``.ndim``, ``.T``, ``.mT``), ``__array_namespace__``, dtype and
    shape inquiries (``finfo``, ``iinfo``, ``isdtype``, ``result_type``, ``can_cast``,
    ``broadcast_shapes``), the ``linalg``/``fft`` extensions, and anything outside the
    namespace. Not thread-safe: count one computation at a time."""
    if xp is None:
        xp = get_namespace("array_api_strict")
    if not isinstance(xp, types.ModuleType):
        raise TypeError(f"count_calls needs a namespace that is a module; got {type(xp).__name__}")
    array_type = type(xp.asarray(0.0))
    if array_type.__module__.split(".")[0] in ("builtins", "numpy"):
        raise TypeError(f"cannot wrap the methods of {array_type.__qualname__} (not a Python class)")
    rec = _Recorder()
    saved_functions: dict[str, Any] = {}
    saved_methods: dict[str, Any] = {}
    try:
        for name in getattr(xp, "__all__", dir(xp)):
            obj = xp.__dict__.get(name)
            if (name in _NOT_COUNTED or isinstance(obj, type)
                    or not isinstance(obj, (types.FunctionType, types.BuiltinFunctionType))):
                continue
            saved_functions[name] = obj
            setattr(xp, name, rec.wrap(name, obj, operands=_OPERANDS.get(name),
                                       device_type=array_type if name == "asarray" else None))
        for name in (*_OPERATORS, *_TRANSFERS):
            fn = array_type.__dict__.get(name)
            if fn is None:
                continue
            saved_methods[name] = fn
            setattr(array_type, name, rec.wrap(name, fn, getitem=name == "__getitem__"))
        yield rec.counts
    finally:
        for name, obj in saved_functions.items():
            setattr(xp, name, obj)
        for name, fn in saved_methods.items():
            setattr(array_type, name, fn)


@dataclass(frozen=True)
class StepCalls:
    """Calls of one pass (forward or backward) of a cell: ``per_step`` for each time step and
    ``fixed`` once per call (validation, the hoisted projections and weight gradients...);
    ``launches``/``fixed_launches`` the same without basic-index views, ``scalars`` the Python
    scalars handed to namespace functions per step, ``by_name`` the per-step calls by name."""

    per_step: int
    fixed: int
    launches: int
    fixed_launches: int
    scalars: int
    by_name: Mapping[str, int]


def _linear(name: str, counts: list[int], lengths: tuple[int, ...]) -> tuple[int, int]:
    """``(per step, fixed)`` of counts at ``lengths``, which must lie on one line."""
    slope, rem = divmod(counts[1] - counts[0], lengths[1] - lengths[0])
    fixed = counts[0] - slope * lengths[0]
    if rem or any(c != fixed + slope * t for c, t in zip(counts, lengths)):
        raise ValueError(f"{name} counts {counts} at lengths {lengths} are not linear in the "
                         "sequence length (a block or size threshold lies between them)")
    return slope, fixed


def _step_calls(counts: list[CallCounts], lengths: tuple[int, ...]) -> StepCalls:
    per_step, fixed = _linear("calls", [c.calls for c in counts], lengths)
    launches, fixed_launches = _linear("launches", [c.launches for c in counts], lengths)
    scalars, _ = _linear("scalars", [c.scalars for c in counts], lengths)
    dt = lengths[1] - lengths[0]
    names = set(counts[0].by_name) | set(counts[1].by_name)
    by_name = {n: (counts[1].by_name[n] - counts[0].by_name[n]) // dt for n in sorted(names)}
    return StepCalls(per_step, fixed, launches, fixed_launches, scalars,
                     {n: v for n, v in by_name.items() if v})


def calls_per_step(spec: Cell | str, *, masked: bool = False, per_step_grad: bool = True,
                   options: Mapping[str, Any] | None = None, lengths: tuple[int, ...] = (4, 8, 12),
                   batch: int = 2, features: int = 3, hidden: int = 16,
                   executor: str = "eager") -> dict[str, StepCalls]:
    """Array-API calls of cell ``spec`` (a registry record or name) per time step, forward and
    backward, on array-api-strict in float32 (whose ``tanh`` is the namespace's on every CPU).

    Runs the forward and the backward from a zero initial state at each sequence length of
    ``lengths`` (``(batch, time, features)`` inputs, ``hidden`` units) and fits ``calls =
    fixed + per_step * time``; counts that are not linear in ``time`` raise ``ValueError``.
    ``masked``: a lengths mask with the last sample one step short. ``per_step_grad``: the
    gradient ``dL/dh_t`` of every step ``(batch, time, hidden)``, else of the last state alone
    ``(batch, hidden)``. The defaults keep every size threshold of the cells on one side at all
    lengths: the backward's factors in one block, ``w_h^T`` copied, the bias not folded into the
    projection. The counts are of a warm call: an uncounted first call fills the constants the
    cells cache. ``executor``: ``"eager"``, the readable step in the Python loop (what torch,
    CuPy and array-api-strict run), or ``"tuned"``, the cell's tuned form where it has one (what
    NumPy runs; :func:`rnnx._backend.forced_executor`). Returns ``{"forward": StepCalls,
    "backward": StepCalls}``."""
    spec = CELLS[spec] if isinstance(spec, str) else spec
    xp = get_namespace("array_api_strict")
    found: dict[str, list[CallCounts]] = {"forward": [], "backward": []}
    # A first, uncounted call fills the constants a cell caches per namespace and size (the
    # LSTM's gate affine rows): the counts are those of every later call.
    for time in (lengths[0], *lengths):
        case = make_case(spec, host_rng(0), batch, time, features, hidden, with_state=False)
        a = {k: None if v is None else from_host(v, xp=xp, dtype=xp.float32)
             for k, v in case.items()}
        dhs = a["dhs"] if per_step_grad else a["dhs"][:, -1, :]
        mask = None
        if masked:
            mask = from_host([time] * (batch - 1) + [time - 1], xp=xp)
        state0 = {s + "0": None for s in spec.states}
        with forced_executor(executor), count_calls(xp) as fwd:
            _, cache = spec.run(a, a["x"], state0, mask=mask, options=options, form="step")
        with forced_executor(executor), count_calls(xp) as bwd:
            spec.run_backward(cache, dhs)
        found["forward"].append(fwd)
        found["backward"].append(bwd)
    return {k: _step_calls(v[1:], lengths) for k, v in found.items()}


def cell_calls_rows(*, masked: tuple[bool, ...] = (False, True), executor: str = "eager"
                    ) -> list[dict[str, Any]]:
    """:func:`calls_per_step` for every registered cell and every value of its run options,
    plain and (``masked``) with a lengths mask, gradient at every step, on ``executor``: one
    row per variant, ``{"cell", "options", "masked", "forward", "backward"}``."""
    rows = []
    for label, spec, options in cell_variants():
        for m in masked:
            got = calls_per_step(spec, masked=m, options=options, executor=executor)
            rows.append({"cell": label, "options": options, "masked": m, **got})
    return rows


def scanned_ops_per_step(spec: Cell | str, *, masked: bool = False, per_step_grad: bool = True,
                         options: Mapping[str, Any] | None = None, batch: int = 2,
                         features: int = 3, hidden: int = 16, time: int = 4) -> dict[str, int]:
    """The operations of one time step where JAX runs the cell: the primitive equations in the
    body of the forward's and the backward's ``jax.lax.scan`` (nested calls counted through),
    before XLA fuses them. Each pass is one compiled call (no per-step dispatch from Python);
    this is the work its loop body holds. Needs JAX. Returns ``{"forward": n, "backward":
    n}``."""
    import jax

    spec = CELLS[spec] if isinstance(spec, str) else spec
    xp = get_namespace("jax")
    case = make_case(spec, host_rng(0), batch, time, features, hidden, with_state=False)
    a = {k: None if v is None else from_host(v, xp=xp, dtype=xp.float32) for k, v in case.items()}
    dhs = a["dhs"] if per_step_grad else a["dhs"][:, -1, :]
    mask = from_host([time] * (batch - 1) + [time - 1], xp=xp) if masked else None
    state0 = {s + "0": None for s in spec.states}

    def forward(arrays: dict) -> Any:
        return spec.run(arrays, arrays["x"], state0, mask=mask, options=options,
                        form="step")[0]

    def backward(arrays: dict) -> Any:
        _, cache = spec.run(arrays, arrays["x"], state0, mask=mask, options=options,
                            form="step")
        return spec.run_backward(cache, dhs)[0]

    out = {}
    for name, fn in (("forward", forward), ("backward", backward)):
        scans = list(_scan_bodies(jax.make_jaxpr(fn)(a).jaxpr))
        out[name] = _leaf_equations(scans[-1])  # the backward's own scan follows the forward's
    return out


def _sub_jaxprs(eqn: Any) -> Iterator[Any]:
    for value in eqn.params.values():
        for v in (value if isinstance(value, (tuple, list)) else (value,)):
            inner = getattr(v, "jaxpr", v)
            if hasattr(inner, "eqns"):
                yield inner


def _scan_bodies(jaxpr: Any) -> Iterator[Any]:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            yield eqn.params["jaxpr"].jaxpr
        else:
            for inner in _sub_jaxprs(eqn):
                yield from _scan_bodies(inner)


def _leaf_equations(jaxpr: Any) -> int:
    n = 0
    for eqn in jaxpr.eqns:
        inner = list(_sub_jaxprs(eqn))
        n += sum(_leaf_equations(j) for j in inner) if inner else 1
    return n
