"""Host-side checks of the estimators' inputs: these look at user data (``X``, ``y``,
``lengths``) before any maths runs, and raise the errors a caller sees for bad data.

The rules they apply (dtypes, exact integer casts, one library and device, shapes, finite
values, lengths) are those of the :mod:`rnnx.models.estimators` module docstring.
"""

from __future__ import annotations

import math
from typing import Any

from .._backend import device, host_namespace, namespace, to_numpy
from .._typing import Array, Namespace
from ..functional._validate import dtype_name

__all__ = ["EXACT_INT", "check_finite", "check_int_exact", "float_dtype_name", "host_lengths",
           "is_sparse", "read_array", "same_library", "score_y", "sequences"]


def is_sparse(a: object) -> bool:
    return type(a).__module__.startswith("scipy.sparse") or hasattr(a, "tocsr")


def read_array(a: object, name: str) -> tuple[Array, bool]:
    """``(array, is_api_array)``: Array API arrays are returned as they are; anything else is
    read as a NumPy array (the caller then gets NumPy results)."""
    if is_sparse(a):
        raise TypeError(f"sparse {name} is not supported: pass a dense array (e.g. {name}.toarray())")
    if a is None:
        raise ValueError(f"{name} must be an array; got None")
    hnp = host_namespace()
    if name == "X" and getattr(getattr(a, "dtype", None), "kind", None) == "O":
        # NumPy object arrays of numbers are read as float64, as scikit-learn does; any other
        # element raises a TypeError naming its type.
        return hnp.asarray(a, dtype=hnp.float64), False
    try:
        namespace(a)
        return a, True
    except TypeError:
        pass
    arr = hnp.asarray(a)
    if arr.dtype.kind == "O":
        arr = hnp.asarray(a, dtype=hnp.float64)  # TypeError names the bad element's type
    return arr, False


# The estimators' casting rule (module docstring, "Input dtypes"): the largest integer
# magnitude each model dtype holds exactly (2**mantissa bits).
EXACT_INT = {"float32": 2**24, "float64": 2**53}


def float_dtype_name(xp: Namespace, a: Array, name: str) -> str:
    """The float dtype ``a`` trains in by default: its own for float32/float64, float64 for
    integer and bool data. Complex, half precision and non-numeric data are refused."""
    got = dtype_name(xp, a.dtype)
    if got in ("float32", "float64"):
        return got
    if got == "bool" or got.startswith(("int", "uint")):
        return "float64"
    if got.startswith("complex"):
        raise ValueError(f"Complex data not supported: {name} has dtype {got}; rnnx estimators "
                         f"take real float32/float64 (or integer/bool) {name}. Pass the real and "
                         "imaginary parts as separate features")
    if got in ("float16", "bfloat16") or "float16" in got:
        raise TypeError(f"{name} has dtype {got}; rnnx estimators compute in float32 or float64 "
                        f"and do not upcast half precision silently: pass {name}.astype(float32) "
                        "(exact)")
    raise TypeError(f"{name} must hold numbers (float32, float64, integer or bool); got dtype "
                    f"{got}")


def check_int_exact(X: Array, name: str, dt_name: str) -> None:
    """Integer ``X`` is cast to the model dtype only where that cast is exact."""
    xp = namespace(X)
    got = dtype_name(xp, X.dtype)
    if got == "bool" or not got.startswith(("int", "uint")):
        return
    limit = EXACT_INT[dt_name]
    big = int(to_numpy(xp.max(xp.abs(X)))) if got.startswith("int") else int(to_numpy(xp.max(X)))
    if big > limit:
        raise ValueError(f"{name} holds integer {big}, beyond +-{limit} (2**{limit.bit_length() - 1}), "
                         f"the range {dt_name} represents exactly; casting {got} {name} to "
                         f"{dt_name} would change values: scale {name} or cast it yourself")


def same_library(arrays: dict[str, Any]) -> None:
    """Array API arguments of one estimator call must share one library and one device (the
    functional core's rule: nothing is moved or converted behind the caller's back)."""
    if len(arrays) < 2:
        return
    names = list(arrays)
    try:
        namespace(*arrays.values())
    except TypeError:
        libs = ", ".join(f"{k}: {type(v).__module__}.{type(v).__qualname__}"
                         for k, v in arrays.items())
        raise TypeError(f"{' and '.join(names)} must come from one array library (namespace); "
                        f"got {libs}. Convert one of them (or pass y as a list)") from None
    devs = {k: device(v) for k, v in arrays.items()}
    first = names[0]
    for k in names[1:]:
        if devs[k] != devs[first]:
            raise ValueError(f"{first} and {k} must be on one device; {first} is on "
                             f"{devs[first]} but {k} is on {devs[k]}")


def sequences(X: Array, name: str = "X") -> Array:
    """Check ``X``'s shape and return it 3-D ``(n_samples, time, features)``."""
    xp = namespace(X)
    if X.ndim not in (2, 3):
        raise ValueError(
            f"Expected 2D (n_samples, time) or 3D (n_samples, time, features) {name}, got "
            f"{X.ndim}D array of shape {tuple(X.shape)} instead. Reshape your data: a single "
            "univariate sequence is X.reshape(1, -1)"
        )
    if X.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum "
                         "of 1 is required.")
    if any(s == 0 for s in X.shape[1:]):
        raise ValueError(f"0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is required.")
    if X.ndim == 2:
        return xp.reshape(X, (X.shape[0], X.shape[1], 1))  # (N, T, 1)
    return X


def check_finite(X: Array, name: str) -> None:
    xp = namespace(X)
    bad_at = ~xp.isfinite(X)
    if bool(to_numpy(xp.any(bad_at))):
        # Counted in X's own float dtype (exact up to 2**24 values in float32), so no 64-bit
        # integer is needed where a namespace has none (JAX without x64).
        bad = int(to_numpy(xp.sum(xp.astype(bad_at, X.dtype))))
        raise ValueError(f"Input {name} contains NaN or inf ({bad} non-finite of "
                         f"{math.prod(X.shape)} values); expected finite values: remove or "
                         "impute them first")


def host_lengths(lengths: Array, n: int, time: int) -> Any:
    """``lengths`` checked on the host: integer lengths ``(n_samples,)`` in ``[0, time]`` (right
    padding) or a boolean step mask ``(n_samples, time)`` (padding on either side). Returns a
    NumPy array (int64 or bool)."""
    hnp = host_namespace()
    want = (f"integer lengths (n_samples,) = ({n},) or a boolean mask (n_samples, time) = "
            f"({n}, {time})")
    if is_sparse(lengths):
        raise TypeError("sparse lengths are not supported: pass a dense array")
    try:
        namespace(lengths)
        lh = to_numpy(lengths)
    except TypeError:
        lh = hnp.asarray(lengths)
    if lh.dtype.kind == "b":
        if lh.shape != (n, time):
            raise ValueError(f"lengths must be {want}; got a boolean array of shape {lh.shape}")
        return lh
    if lh.dtype.kind not in "iu":
        raise TypeError(f"lengths must be {want}; got dtype {lh.dtype} (shape {lh.shape}): "
                        "pass integers, e.g. lengths.astype(int)")
    if lh.shape != (n,):
        raise ValueError(f"lengths must be {want}; got integer lengths of shape {lh.shape}")
    if n and (int(lh.min()) < 0 or int(lh.max()) > time):
        bad = int(lh.min()) if int(lh.min()) < 0 else int(lh.max())
        raise ValueError(f"lengths must lie in [0, time] = [0, {time}] (X has {time} steps); got "
                         f"a length of {bad}")
    return hnp.astype(lh, hnp.int64)


def score_y(X: Array, y: Array, n: int) -> Any:
    """``y`` of a ``score`` call on the host, checked against ``X`` (same library and device
    when both are arrays, one entry per sample, finite if numeric)."""
    X, x_is_array = read_array(X, "X")
    y, y_is_array = read_array(y, "y")
    if x_is_array and y_is_array:
        same_library({"X": X, "y": y})
    y_host = to_numpy(y)
    if y_host.ndim == 0 or y_host.shape[0] != n:
        got = "a scalar" if y_host.ndim == 0 else f"{y_host.shape[0]} (shape {y_host.shape})"
        raise ValueError(f"X and y have inconsistent numbers of samples: X has {n}, y has {got}")
    if y_host.dtype.kind in "fc" and not bool(host_namespace().all(
            host_namespace().isfinite(y_host))):
        raise ValueError("Input y contains NaN or inf; expected finite values")
    return y_host
