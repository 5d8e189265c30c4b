"""Dropout masks drawn on the arrays' device, bit for bit the same on every backend.

The Array API has no random numbers, and drawing a mask on the host costs a host-to-device copy
per batch (a synchronisation on a GPU). Here the mask is a *counter-based* draw: element ``i`` of
the mask is a keyed hash of ``i``, computed with integer operations every namespace performs
exactly. The host supplies only the key (a few Python ints from the layer's seeded NumPy
generator, passed as scalars in the operations, which a GPU library hands to its kernels as
arguments); nothing is copied to or from the device.

The hash is an eight-round Feistel network on the two 16-bit halves of ``i``, so distinct
elements of one draw get distinct 32-bit words; its round function
``F(R, k) = ((R xor k) * C >> 8) and 0xFFFF`` keeps every intermediate below ``2**31``, so it
runs in int32 (JAX without x64 has no int64) and never relies on overflow, which the standard
leaves unspecified. The top 31 bits of the word are compared with ``rate * 2**31``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DROPOUT_KEY_WORDS", "dropout_scale"]

#: Round keys per draw (one per Feistel round), each in ``[0, 2**16)``.
DROPOUT_KEY_WORDS = 8

# Odd and below 2**15, so that (16-bit value) * C < 2**31 fits int32.
_C = 0x5BD1


def _keyed_words(idx: Any, keys: Any) -> Any:
    """int32 words in ``[0, 2**31)``, shaped like ``idx``: the Feistel hash of the int32 element
    indices ``idx`` under ``keys`` (ints, or an int32 array of them)."""
    left, right = idx >> 16, idx & 0xFFFF
    for r in range(DROPOUT_KEY_WORDS):
        left, right = right, left ^ ((((right ^ keys[r]) * _C) >> 8) & 0xFFFF)
    return ((left & 0x7FFF) << 16) | right


def dropout_scale(shape: tuple[int, ...], rate: float, keys: tuple[int, ...], *, xp: Any,
                  dtype: Any, device: Any, rows: Any = None) -> Any:
    """Inverted-dropout multipliers of ``shape`` (e.g. ``(batch, time, features)``): each element
    is ``0`` with probability ``rate`` and ``1 / (1 - rate)`` otherwise, in ``dtype`` on
    ``device`` of namespace ``xp``.

    ``keys`` are :data:`DROPOUT_KEY_WORDS` ints in ``[0, 2**16)`` (draw them from a seeded host
    generator: the same keys give the same mask on every backend and device), or the same as an
    int32 array ``(DROPOUT_KEY_WORDS,)`` of ``xp`` on ``device`` (a compiled training step takes
    them as an argument, so that new keys do not mean a new compilation; their values are not
    checked). ``rate`` is in ``[0, 1)``. The mask has at most ``2**31`` elements (int32
    counters).

    ``rows`` (integer indices along axis 0, an array of ``xp`` on ``device``, or a host
    sequence) returns only those rows of the mask of ``shape``, ``(len(rows), *shape[1:])``,
    bit for bit the rows of the whole mask: a worker holding some rows of a mini-batch draws
    their part of the mask the whole batch would get (data-parallel training, docs/dask.md).
    Host indices outside ``[0, shape[0])`` are refused; device arrays are taken as given (a
    check would read them back to the host).
    """
    if hasattr(keys, "shape") and hasattr(keys, "dtype"):  # an array (torch tensors have no
        # __array_namespace__)
        if tuple(keys.shape) != (DROPOUT_KEY_WORDS,) or keys.dtype != xp.int32:
            raise ValueError(f"keys given as an array must be int32 of shape "
                             f"({DROPOUT_KEY_WORDS},); got {keys.dtype} {tuple(keys.shape)}")
    elif len(keys) != DROPOUT_KEY_WORDS or not all(isinstance(k, int) and 0 <= k < 1 << 16
                                                   for k in keys):
        raise ValueError(f"keys must be {DROPOUT_KEY_WORDS} ints in [0, 2**16); got {keys!r}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be a probability in [0, 1); got {rate!r}")
    n = 1
    for s in shape:
        n *= int(s)
    if n > 1 << 31:
        raise ValueError(f"a dropout mask has at most 2**31 elements (int32 counters); shape "
                         f"{tuple(shape)} has {n}")
    if rows is None:
        idx = xp.arange(n, dtype=xp.int32, device=device)  # (n,)
        out_shape = tuple(shape)
    else:
        per = n // int(shape[0]) if int(shape[0]) else 0  # elements of one row
        if not hasattr(rows, "__array_namespace__"):  # host indices: checked here, for free
            bad = [int(i) for i in rows if not 0 <= int(i) < int(shape[0])]
            if bad:
                raise ValueError(f"rows must be indices in [0, {int(shape[0])}) of shape "
                                 f"{tuple(shape)}'s first axis; got {bad[:5]}")
        r = xp.asarray(rows, dtype=xp.int32, device=device)  # (R,)
        idx = r[:, None] * per + xp.arange(per, dtype=xp.int32, device=device)[None, :]  # (R, per)
        out_shape = (int(r.shape[0]), *(int(s) for s in shape[1:]))
    keep = _keyed_words(idx, keys) >= round(rate * (1 << 31))
    scale = xp.astype(keep, dtype) * (1.0 / (1.0 - rate))
    return xp.reshape(scale, out_shape)
