"""Argument checks shared by the functional cells: every message names the argument, what was
expected and what was given. Nothing here broadcasts, casts or truncates."""

from __future__ import annotations

from typing import Any

from .._backend import device, device_label, has_one_device, known_namespace, namespace

# Recurrent maths is only defined here for these; float16 loses too much in the BPTT sums and
# integer/bool/complex inputs would need a cast the caller should choose.
FLOAT_DTYPE_NAMES = ("float32", "float64")


def dtype_name(xp: Any, dtype: Any) -> str:
    for name in ("float16", "float32", "float64", "complex64", "complex128", "bool",
                 "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
        if getattr(xp, name, None) is not None and dtype == getattr(xp, name):
            return name
    return str(dtype)


def resolve(arrays: dict[str, Any]) -> Any:
    """Namespace of the named arrays (``None`` skipped); a clear error if any is not an array,
    if they come from different libraries or if they sit on different devices."""
    present = {k: v for k, v in arrays.items() if v is not None}
    # All of one known array type (the usual call) is settled by one lookup; anything else
    # (Python lists and scalars, mixed libraries, a first call) is checked argument by argument.
    xp = known_namespace(list(present.values()))
    if xp is None:
        for name, a in present.items():
            if not hasattr(a, "shape") or not hasattr(a, "dtype"):
                raise TypeError(f"{name} must be an array; got {type(a).__name__}")
        try:
            xp = namespace(*present.values())
        except TypeError:
            libs = ", ".join(f"{k}: {type(v).__module__}.{type(v).__name__}"
                             for k, v in present.items())
            raise TypeError(
                f"all arrays must come from one array library (namespace); got {libs}"
            ) from None
    if has_one_device(xp):
        return xp
    first = dev0 = None
    for name, a in present.items():
        d = device(a)
        if d is None:  # a JAX tracer: jax.jit places it, there is nothing to compare
            continue
        if dev0 is None:
            first, dev0 = name, d
        elif d != dev0:
            raise ValueError(
                f"all arrays must be on one device; {first} is on {device_label(dev0)} but {name} "
                f"is on {device_label(d)}"
            )
    return xp


def check_float(name: str, a: Any, *, xp: Any, like: tuple[str, Any] | None = None) -> None:
    """``a`` must be float32/float64 and, if ``like=(other_name, other)`` is given, share its dtype."""
    if like is not None and a.dtype == like[1].dtype:
        return  # `like` was checked already; this path is per call, so it stays cheap
    if a.dtype == xp.float32 or a.dtype == xp.float64:
        got = "float32" if a.dtype == xp.float32 else "float64"
    else:
        got = dtype_name(xp, a.dtype)
    if got not in FLOAT_DTYPE_NAMES:
        raise TypeError(
            f"{name} must have a real floating dtype (float32 or float64); got {got}. "
            f"Cast it explicitly, e.g. xp.astype({name}, xp.float32)"
        )
    if like is not None:
        other_name, other = like
        if a.dtype != other.dtype:
            raise TypeError(
                f"{name} must have the same dtype as {other_name} ({dtype_name(xp, other.dtype)}); "
                f"got {got}. rnnx never promotes silently: cast one of them"
            )


def check_shape(name: str, a: Any, expected: tuple[int | None, ...], labels: str) -> None:
    """``a.shape`` must equal ``expected`` (``None`` = any size); ``labels`` names the axes."""
    if a.shape == expected:
        return  # the common case, a tenth of the general test below
    shape = tuple(a.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        want = ", ".join("?" if e is None else str(e) for e in expected)
        want += "," if len(expected) == 1 else ""
        raise ValueError(f"{name} must have shape {labels} = ({want}); got shape {shape}")


def check_sequence(name: str, x: Any, *, xp: Any) -> tuple[int, int, int]:
    """``x`` must be a float32/float64 ``(batch, time, features)`` array with ``batch >= 1`` and
    ``time >= 1``; returns its shape."""
    check_float(name, x, xp=xp)
    if x.ndim != 3:
        raise ValueError(
            f"{name} must be 3-D with shape (batch, time, features); got {x.ndim}-D shape "
            f"{tuple(x.shape)}"
        )
    batch, time, features = x.shape
    if batch < 1 or time < 1:
        raise ValueError(
            f"{name} must have at least one sample and one time step (batch >= 1, time >= 1); "
            f"got shape {tuple(x.shape)}"
        )
    return batch, time, features
