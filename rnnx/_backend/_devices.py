"""Running on the inputs' own device: the one device a call's arrays share
(:func:`common_device`), and the scope that makes it the current device for the call
(:func:`on_device`, :func:`device_scope`, the :func:`on_input_device` decorator).

Why a scope at all: array-api-compat's CuPy creation functions (``zeros``, ``empty``, ``*_like``,
``arange``...) accept ``device=`` but allocate on CuPy's *current* device, and CuPy refuses to
compute on arrays of another device than the current one. Data on a second GPU while the first
is current therefore lands on the wrong device or fails. Entering ``cupy.cuda.Device(id)`` of the
inputs' device for the call fixes both. Every other library places arrays where ``device=``
says, so for them the scope is a no-op, and a cheap one: it runs on every call, at the seed's
shapes too (what it costs there: docs/performance.md, "Per-call overhead").

The same scope fixes JAX's arithmetic: on GPUs JAX computes float32 matrix products in TF32 by
default (its ``default_matmul_precision``), about 1000 times the float32 rounding that every other
backend gives, so a call on JAX arrays runs under ``jax.default_matmul_precision`` of
:func:`jax_matmul_precision` ("highest": full float32). It is a context manager, so the user's
own JAX configuration outside rnnx's calls is untouched; under ``jax.jit`` it applies to what is
traced inside the call.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import array_api_compat

from .._typing import Device
from ._availability import status
from ._namespaces import device, device_label

__all__ = [
    "JAX_MATMUL_PRECISION",
    "common_device",
    "device_scope",
    "jax_matmul_precision",
    "on_device",
    "on_input_device",
]

F = TypeVar("F", bound=Callable[..., Any])

# One shared no-op: `nullcontext` is reusable and reentrant, and reusing it costs no allocation.
_NOOP = contextlib.nullcontext()

# What an argument's type means for the scope, decided once per type: _OTHER (not an array:
# look further), _PLAIN (an array of a library whose creation functions honour `device=`: no
# scope), _CUPY (an array that needs its device made current) or _JAX (a JAX array or tracer:
# the matmul precision is set for the call).
_OTHER, _PLAIN, _CUPY, _JAX = 0, 1, 2, 3

JAX_MATMUL_PRECISION = "highest"
"""The matrix-product precision rnnx's calls on JAX arrays run under: full float32 (JAX's
``"highest"``; its default on GPUs is TF32, ``"default"``/``"bfloat16_3x"`` class)."""


def jax_matmul_precision() -> Any:
    """Context manager: JAX's ``default_matmul_precision`` set to :data:`JAX_MATMUL_PRECISION`
    for the block (thread-local; the previous setting is restored on exit)."""
    import jax

    return jax.default_matmul_precision(JAX_MATMUL_PRECISION)
_KIND: dict[type, int] = {}


def _kind(a: Any) -> int:
    t = type(a)
    k = _KIND.get(t)
    if k is None:
        if array_api_compat.is_cupy_array(a):
            k = _CUPY
        elif array_api_compat.is_jax_array(a):
            k = _JAX
        elif hasattr(a, "shape") and hasattr(a, "dtype") and hasattr(a, "__array_namespace__"):
            k = _PLAIN
        elif array_api_compat.is_array_api_obj(a):
            k = _PLAIN
        else:
            k = _OTHER
        _KIND[t] = k
    return k


def common_device(*arrays: Any, names: tuple[str, ...] | None = None) -> Device:
    """The device every array of ``arrays`` is on (``None`` entries are skipped; ``None`` if no
    array is given).

    ``ValueError`` if they are spread over devices, naming the first two devices found and,
    given ``names`` (one per array), the arguments that hold them. This is the decision behind
    :func:`on_device`, written against the standard's ``device()``, so it is the same on every
    library (array-api-strict's ``device1`` and torch's ``meta`` show it without a GPU).
    """
    first = first_name = None
    for i, a in enumerate(arrays):
        if a is None:
            continue
        d = device(a)
        if first is None:
            first, first_name = d, i
        elif d != first:
            if names is not None:
                where = f"{names[first_name]} is on {device_label(first)} but {names[i]} is on"
            else:
                where = (f"argument {first_name} is on {device_label(first)} but argument {i} "
                         "is on")
            raise ValueError(f"all arrays must be on one device; {where} {device_label(d)}. "
                             "Move them to one device first")
    return first


def _cupy_scope(dev: Any) -> Any:
    import cupy

    dev_id = dev if isinstance(dev, int) else getattr(dev, "id", None)
    if dev_id is None:  # not a CUDA device: the code inside refuses it with its own message
        return _NOOP
    if cupy.cuda.runtime.getDevice() == dev_id:
        return _NOOP  # already current: the usual single-GPU case
    return cupy.cuda.Device(dev_id)  # a fresh object: a Device's enter/exit stack is per object


def on_device(*arrays: Any, names: tuple[str, ...] | None = None) -> Any:
    """Context manager running the block on the device of ``arrays`` (``None`` skipped).

    For CuPy arrays it enters ``cupy.cuda.Device`` of their device (refusing CuPy arrays spread
    over devices with the :func:`common_device` error); for every other library, and for no
    arrays, it is a shared no-op (their maths checks refuse mixed devices themselves). The
    library is read from the first array: arrays of several libraries are left to the
    namespace check of the code inside, which names them.
    """
    for a in arrays:
        if a is not None:
            break
    else:
        return _NOOP
    k = _kind(a)
    if k == _JAX:
        return jax_matmul_precision()
    if k != _CUPY:
        return _NOOP
    cupy_arrays = [b if _kind(b) == _CUPY else None for b in arrays]
    return _cupy_scope(common_device(*cupy_arrays, names=names))


def device_scope(dev: Device, *, backend: str | None = None) -> Any:
    """Context manager making device ``dev`` current for the block where that matters: a CuPy
    ``Device`` (or, with ``backend="cupy"``, a device id) is entered; any other device, and
    ``None`` (the backend's default), is a no-op. For code that knows the target device before
    it holds an array there (an estimator about to move host data to ``device=``)."""
    if dev is None:
        return _NOOP
    if type(dev).__module__.startswith("cupy"):
        return _cupy_scope(dev)
    if backend == "cupy" and status("cupy").available:  # else the caller refuses, with the reason
        return _cupy_scope(dev)
    return _NOOP


def _first_array_kind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    for a in args:
        k = _KIND.get(type(a))
        if k is None:
            k = _kind(a)
        if k != _OTHER:
            return k
        if isinstance(a, (tuple, dict)):  # a forward's cache (a NamedTuple), parameters by name
            for b in (a.values() if isinstance(a, dict) else a):
                k = _kind(b)
                if k != _OTHER:
                    return k
    for a in kwargs.values():
        k = _kind(a)
        if k != _OTHER:
            return k
    return _OTHER


def _arrays(args: tuple[Any, ...], kwargs: dict[str, Any], kind: int) -> list[Any]:
    """Every array of ``kind`` among the arguments, one level into tuples and dicts."""
    found = []
    for a in (*args, *kwargs.values()):
        if _kind(a) == kind:
            found.append(a)
        elif isinstance(a, (tuple, dict)):
            found.extend(b for b in (a.values() if isinstance(a, dict) else a) if _kind(b) == kind)
    return found


def _named_arrays(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  kind: int) -> tuple[list[Any], tuple[str, ...]]:
    """As :func:`_arrays`, with each array's argument name (``cache[0]`` inside a tuple)."""
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):  # a call the function itself will refuse, with its message
        bound = {f"argument {i}": a for i, a in enumerate(args)} | kwargs
    found, names = [], []
    for name, a in bound.items():
        if _kind(a) == kind:
            found.append(a)
            names.append(name)
        elif isinstance(a, (tuple, dict)):
            for j, b in (a.items() if isinstance(a, dict) else enumerate(a)):
                if _kind(b) == kind:
                    found.append(b)
                    names.append(f"{name}[{j!r}]")
    return found, tuple(names)


def call_device(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                kind: int = _CUPY) -> Any:
    """The one device of the ``kind`` arrays among a call's arguments (``None`` if none); on
    devices spread, the :func:`common_device` refusal naming the arguments (the signature is
    bound for the names only when refusing: binding it costs more than the call at the seed's
    shapes, docs/performance.md)."""
    try:
        return common_device(*_arrays(args, kwargs, kind))
    except ValueError:
        arrays, names = _named_arrays(func, args, kwargs, kind)
        common_device(*arrays, names=names)  # the same refusal, naming the arguments
        raise


def on_input_device(func: F) -> F:
    """Decorator: run ``func`` under :func:`on_device` of its array arguments (positional,
    keyword, and one level into tuple and dict arguments: a forward's cache, parameters or
    final-state gradients by name).

    On JAX arrays the call runs under :func:`jax_matmul_precision`. The library is taken from
    the first array argument; only CuPy and JAX arrays pay for more than one
    dictionary lookup per argument (their devices are compared and the device entered), so on
    NumPy the wrapper costs a function call and a type test.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # The functional call's first argument is its input array: one lookup settles NumPy.
        if args and _KIND.get(type(args[0])) == _PLAIN:
            return func(*args, **kwargs)
        kind = _first_array_kind(args, kwargs)
        if kind == _JAX:
            with jax_matmul_precision():
                return func(*args, **kwargs)
        if kind != _CUPY:
            return func(*args, **kwargs)
        with _cupy_scope(call_device(func, args, kwargs)):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
