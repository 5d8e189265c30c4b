"""The linear scan ``h_t = a_t * h_{t-1} + b_t`` over a whole sequence at once, and its adjoint.

A cell whose gates read ``x_t`` only (minGRU, minLSTM: :mod:`rnnx.functional.min_gru`,
:mod:`rnnx.functional.min_lstm`) is this recurrence with ``a_t``, ``b_t`` known for every step
before it starts, so no step waits for a matrix product and the whole sequence can be computed
in a few dozen array calls instead of two a step.

References
----------
- G. E. Blelloch, "Prefix sums and their applications", CMU-CS-90-190 (1990), sec. 1.4: first
  order linear recurrences as a scan of the pairs ``(a_t, b_t)``.
- F. A. Heinsen, "Efficient parallelization of a ubiquitous sequential computation",
  arXiv:2311.06281 (2023), eq. (2): the log-space form (see "Why not log space" below).
- L. Feng et al., "Were RNNs all we needed?", arXiv:2410.01201 (2024), sec. 3 and app. B: the
  minimal RNNs as such scans, trained in parallel over time.

Shapes: ``a``, ``b``, ``h`` are ``(batch, time, hidden)``, the initial state ``h0`` is
``(batch, hidden)``; step ``t`` reads ``h_{t-1}`` (``h_{-1} = h0``).

Forward, unrolled::

    h_t = P(-1, t) h0 + sum_{k <= t} P(k, t) b_k,        P(k, t) = a_{k+1} a_{k+2} ... a_t

Adjoint. Let ``dhs_t`` be the gradient of the loss with respect to the output ``h_t`` taken
directly, ``dh_n`` that of the final state, and ``G_t`` the total gradient reaching ``h_t``
(directly and through every later step). ``h_t`` enters only its own output and step ``t+1``,
with factor ``a_{t+1}``, so::

    G_t = dhs_t + a_{t+1} G_{t+1}          (t = T-1 .. 0;  a_T := 1, G_T := dh_n)
    dL/db_t = G_t      dL/da_t = G_t h_{t-1}      dL/dh0 = a_0 G_0

The backward is a scan of the same form run backwards in time, with the coefficients shifted
by one step (the transpose of the forward's bidiagonal system ``h_t - a_t h_{t-1} = b_t``):
:func:`scan_adjoint` computes it with the same chunked evaluation.

Padding. A masked-out step is ``a_t = 1, b_t = 0``: the state passes through unchanged, and the
gradients of that step's ``a_t`` and ``b_t`` are zero (they are constants there), while ``G``
passes through with factor 1.

Evaluation: two passes over chunks. Time is cut into ``C`` chunks of ``L`` steps (``L`` near
``sqrt(T)``; the last chunk padded with ``a = 1, b = 0`` where ``L`` does not divide ``T``):

1. every chunk at once, position by position: ``y_c``, the chunk's scan from a zero state, and
   ``p_c``, the running product of its ``a`` (``3L`` array calls on ``(batch, C, hidden)``);
2. chunk by chunk, the carry: ``s_{c+1} = p_c s_c + y_c`` from ``s_0 = h0`` (``2C`` calls on
   ``(batch, hidden)``): ``s_c`` is the state before chunk ``c``;
3. every chunk at once again, the recurrence itself from ``s_c`` (``2L`` calls).

That is about ``5 sqrt(T)`` calls (500 at ``T = 10^4``) where the loop makes ``2T``, each on
``C`` times more elements. No logarithm, exponential or division is taken, so nothing
overflows for any ``a`` in ``[0, 1]`` (``a = 0`` resets, ``a = 1`` carries) and any sign of
``b`` and ``h0``.

Rounding. Pass 3 is the sequential recurrence restarted at each chunk from ``s_c``, and
``s_c`` is the same recurrence over chunk ends; with ``u`` the unit roundoff every computed
``h_t`` carries the two roundings of each step it passed through, damped by the same products
``P``. Treating them as independent (the probabilistic model of
:mod:`rnnx.testing._checks`) they add up to about::

    |error of h_t| <~ lambda * u * sqrt(K * N_t) * max|h|,   N_t = sum_k P(k, t)^2

with ``K`` the roundings a step adds (2 here, more where ``a`` and ``b`` carry their own) and
``N_t`` the scan's *memory*, itself the scan of ``a^2`` with ``b = 1``: ``N_t <= t + 1``, equal
only when every ``a = 1``, and about ``1 / (1 - a^2)`` for a constant ``a < 1``. The adjoint
has the same bound with the memory taken backwards. :mod:`rnnx.testing._scan` turns this into
the tests' tolerances.

Why not log space. Heinsen's form, as the minGRU paper uses it, computes
``log h_t = A_t + logcumsumexp_k(log b_k - A_k)`` with ``A_t = sum_{j <= t} log a_j``. It needs
``b_t > 0`` and ``h0 > 0``, and ``h_t`` is the exponential of a difference of two numbers of
size ``|A_t|``, about ``0.7 T`` for gates near 0.5: at ``T = 10^4`` float32 spaces numbers
of that size ``4.9e-4`` apart, so every ``h_t`` carries a relative error of that order.
Measured (``benchmarks/scan_forms.py``, results in ``benchmarks/results/scan-forms.md``;
float32 against the float64 loop, relative to the largest state, (8, 10^4, 64)): ``3.9e-4``
with minGRU gates ``sigmoid(N(0, 1))``, ``3.9e-3`` with strongly resetting ones, where this
evaluation gives ``9.9e-8`` and ``7.9e-8``, the loop's own error; and it took 8-10 times as
long (torch's ``logcumsumexp``; the Array API has neither it nor a cumulative maximum to build
it from). Cumulative products with a division (``h_t = P_t (s + sum_k b_k / P_k)`` in each
chunk) avoid the logarithms but overflow as soon as a chunk's product underflows: with chunks
of 100 steps, inf in half the states already for gates ``sigmoid(N(0, 1))``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._backend import device, on_input_device, writeable
from ._mask import as_step_mask
from ._validate import check_float, check_shape, dtype_name, resolve

__all__ = ["ScanGrads", "chunk_length", "linear_scan", "linear_scan_backward", "scan",
           "scan_adjoint"]


class ScanGrads(NamedTuple):
    """Gradients of :func:`linear_scan` with the shapes of its arguments."""

    da: Any  # (batch, time, hidden)
    db: Any  # (batch, time, hidden)
    dh0: Any  # (batch, hidden)


def chunk_length(time: int) -> int:
    """The chunk length ``L`` for a scan of ``time`` steps: a divisor of ``time`` in
    ``[ceil(sqrt(time)), 2 ceil(sqrt(time))]`` if there is one (no padding), else
    ``ceil(sqrt(time))``. Near ``sqrt(time)`` the ``5 L`` calls of the position passes and the
    ``2 time / L`` of the carry balance."""
    root = math.isqrt(max(time - 1, 0)) + 1  # ceil(sqrt(time)) for time >= 1
    for length in range(root, min(2 * root, time) + 1):
        if time % length == 0:
            return length
    return root


def _chunks(a: Any, b: Any, *, xp: Any) -> tuple[Any, Any, int, int]:
    """``a``, ``b`` ``(batch, time, hidden)`` as ``(batch, C, L, hidden)`` (views where the
    library allows), padded at the end with ``a = 1, b = 0`` steps where ``L`` does not divide
    ``time``. Returns ``(a4, b4, C, L)``."""
    batch, time, hidden = a.shape
    length = chunk_length(time)
    count = -(-time // length)
    pad = count * length - time
    if pad:
        dev = device(a)
        a = xp.concat([a, xp.ones((batch, pad, hidden), dtype=a.dtype, device=dev)], axis=1)
        b = xp.concat([b, xp.zeros((batch, pad, hidden), dtype=b.dtype, device=dev)], axis=1)
    shape = (batch, count, length, hidden)
    return xp.reshape(a, shape), xp.reshape(b, shape), count, length


def _collect(xp: Any, like: Any, shape: tuple[int, ...]) -> tuple[Any, list | None]:
    """A buffer ``shape`` to fill position by position (``out[:, :, j, :] = h``), or, for an
    immutable library (JAX), ``None`` and a list to stack."""
    if writeable(like):
        return xp.empty(shape, dtype=like.dtype, device=device(like)), None
    return None, []


def scan(a: Any, b: Any, h0: Any = None, *, xp: Any) -> Any:
    """``h_t = a_t * h_{t-1} + b_t`` for every step, ``h_{-1} = h0`` (zeros if ``None``).

    ``a``, ``b`` ``(batch, time, hidden)`` of one namespace, dtype and device (the caller
    checked); masked steps already set to ``a = 1, b = 0``. Returns a new ``(batch, time,
    hidden)`` array on their device; the inputs are not written. The evaluation and its
    rounding are in the module docstring."""
    batch, time, hidden = a.shape
    a4, b4, count, length = _chunks(a, b, xp=xp)
    dev = device(a)
    if count == 1:
        starts = (xp.zeros((batch, 1, hidden), dtype=a.dtype, device=dev) if h0 is None
                  else xp.reshape(h0, (batch, 1, hidden)))  # (B, 1, H)
    else:
        # Pass 1 over chunks 0 .. C-2 (the last one's end is never carried): zero-start scan
        # y and running product p of each chunk, all chunks at once.
        a_in, b_in = a4[:, : count - 1, ...], b4[:, : count - 1, ...]  # (B, C-1, L, H)
        y = xp.asarray(b_in[:, :, 0, :], copy=True)  # (B, C-1, H)
        p = xp.asarray(a_in[:, :, 0, :], copy=True)  # (B, C-1, H)
        for j in range(1, length):
            a_j = a_in[:, :, j, :]  # (B, C-1, H)
            y *= a_j  # own arrays: in place (an immutable JAX array rebinds, same values)
            y += b_in[:, :, j, :]
            p *= a_j
        # Pass 2, the carry: the state before each chunk.
        s = xp.zeros((batch, hidden), dtype=a.dtype, device=dev) if h0 is None else h0
        before = [s]
        for c in range(count - 1):
            s = p[:, c, :] * s + y[:, c, :]  # (B, H)
            before.append(s)
        starts = xp.stack(before, axis=1)  # (B, C, H)
    # Pass 3: the recurrence itself from each chunk's start state, all chunks at once.
    h = xp.asarray(starts, copy=True)  # (B, C, H): own, updated in place
    out, parts = _collect(xp, a, (batch, count, length, hidden))
    for j in range(length):
        h *= a4[:, :, j, :]
        h += b4[:, :, j, :]
        if parts is None:
            out[:, :, j, :] = h
        else:
            parts.append(h)
    if parts is not None:
        out = xp.stack(parts, axis=2)  # (B, C, L, H)
    out = xp.reshape(out, (batch, count * length, hidden))  # (B, C*L, H)
    return out if count * length == time else out[:, :time, :]


def scan_adjoint(a: Any, g: Any, g_n: Any = None, *, xp: Any) -> Any:
    """The adjoint of :func:`scan`: ``G_t = g_t + a_{t+1} G_{t+1}`` from the last step to the
    first, with ``a_T := 1`` and ``G_T := g_n`` (zeros if ``None``).

    ``a`` is the forward's ``(batch, time, hidden)`` (masked steps at 1), ``g`` the direct
    gradients of the outputs, ``g_n`` that of the final state ``(batch, hidden)``. Returns the
    total gradients ``G`` reaching every ``h_t``, a new ``(batch, time, hidden)`` array; then
    ``dL/db = G``, ``dL/da_t = G_t h_{t-1}`` and ``dL/dh0 = a_0 G_0``. The same three passes
    as :func:`scan`, right to left: within chunk ``c`` position ``j`` takes ``a`` of position
    ``j + 1``; the last position takes the next chunk's first, through the carry."""
    batch, time, hidden = a.shape
    a4, g4, count, length = _chunks(a, g, xp=xp)
    dev = device(a)
    zero = xp.zeros((batch, hidden), dtype=a.dtype, device=dev) if g_n is None else None
    if count == 1:
        incoming = xp.reshape(zero if g_n is None else g_n, (batch, 1, hidden))  # (B, 1, H)
    else:
        # Pass 1 over chunks 1 .. C-1 (chunk 0 carries nothing further back): each chunk's
        # zero-start adjoint at its first position and the product of a_{1..L-1} within it.
        a_in, g_in = a4[:, 1:, ...], g4[:, 1:, ...]  # (B, C-1, L, H)
        y = xp.asarray(g_in[:, :, length - 1, :], copy=True)  # (B, C-1, H)
        p = xp.ones((batch, count - 1, hidden), dtype=a.dtype, device=dev)  # (B, C-1, H)
        for j in range(length - 2, -1, -1):
            a_next = a_in[:, :, j + 1, :]  # (B, C-1, H)
            y *= a_next
            y += g_in[:, :, j, :]
            p *= a_next
        # Pass 2, the carry, right to left: what enters each chunk's last position from the
        # next chunk, a_{(c+1)L} G_{(c+1)L}; the last chunk gets g_n (a_T = 1).
        q = zero if g_n is None else g_n
        after = [q]
        for c in range(count - 2, -1, -1):
            s = p[:, c, :] * q + y[:, c, :]  # (B, H): G at the first position of chunk c+1
            q = a4[:, c + 1, 0, :] * s  # (B, H)
            after.append(q)
        incoming = xp.stack(after[::-1], axis=1)  # (B, C, H)
    # Pass 3: the adjoint itself, from each chunk's incoming gradient, all chunks at once.
    h = xp.asarray(incoming, copy=True)  # (B, C, H)
    out, parts = _collect(xp, a, (batch, count, length, hidden))
    for j in range(length - 1, -1, -1):
        if j < length - 1:
            h *= a4[:, :, j + 1, :]
        h += g4[:, :, j, :]
        if parts is None:
            out[:, :, j, :] = h
        else:
            parts.append(h)
    if parts is not None:
        out = xp.stack(parts[::-1], axis=2)  # (B, C, L, H)
    out = xp.reshape(out, (batch, count * length, hidden))  # (B, C*L, H)
    return out if count * length == time else out[:, :time, :]


def _check(xp: Any, a: Any, b: Any, h0: Any, b_name: str = "b") -> None:
    """``a`` a float ``(batch, time, hidden)`` array with ``batch, time >= 1``; ``b`` (named
    ``b_name`` in messages) and ``h0`` ``(batch, hidden)`` of its shape and dtype."""
    if getattr(a, "ndim", None) != 3:
        raise ValueError(f"a must be 3-D with shape (batch, time, hidden); got shape "
                         f"{tuple(getattr(a, 'shape', ()))}")
    batch, time, hidden = a.shape
    if batch < 1 or time < 1:
        raise ValueError(f"a must have at least one sample and one time step; got shape "
                         f"{tuple(a.shape)}")
    check_float("a", a, xp=xp)
    check_shape(b_name, b, (batch, time, hidden), "(batch, time, hidden)")
    check_float(b_name, b, xp=xp, like=("a", a))
    if h0 is not None:
        check_shape("h0", h0, (batch, hidden), "(batch, hidden)")
        check_float("h0", h0, xp=xp, like=("a", a))


def _masked(xp: Any, m: Any, a: Any, b: Any) -> tuple[Any, Any]:
    """``a``, ``b`` with the padded steps set to ``a = 1``, ``b = 0`` (new arrays)."""
    dev = device(a)
    keep = m[:, :, None]  # (B, T, 1)
    one = xp.ones((), dtype=a.dtype, device=dev)
    zero = xp.zeros((), dtype=a.dtype, device=dev)
    return xp.where(keep, a, one), xp.where(keep, b, zero)


@on_input_device
def linear_scan(a: Any, b: Any, h0: Any = None, *, mask: Any = None) -> Any:
    """``h_t = a_t * h_{t-1} + b_t`` over every step of a sequence at once.

    Parameters
    ----------
    a, b : array (batch, time, hidden)
        Coefficients and inputs, float32 or float64, one namespace and device. Any real
        values; for ``a`` in ``[0, 1]`` nothing overflows and the rounding is that of the
        sequential loop (see the module docstring).
    h0 : array (batch, hidden), optional
        The state before the first step; zeros (on the inputs' device) if omitted.
    mask : optional
        Boolean ``(batch, time)`` step mask or integer ``(batch,)`` lengths
        (:mod:`rnnx.functional._mask`): a padded step is ``a_t = 1, b_t = 0``, so the state is
        carried through it.

    Returns
    -------
    hs : array (batch, time, hidden)
        Every state (carried through padded steps), a new array in the inputs' namespace, on
        their device, of their dtype.
    """
    xp = resolve({"a": a, "b": b, "h0": h0})
    _check(xp, a, b, h0)
    m = as_step_mask(mask, x=b, xp=xp)
    if m is not None:
        a, b = _masked(xp, m, a, b)
    return scan(a, b, h0, xp=xp)


@on_input_device
def linear_scan_backward(dhs: Any, a: Any, hs: Any, h0: Any = None, dh_n: Any = None, *,
                         mask: Any = None) -> ScanGrads:
    """Gradients of :func:`linear_scan` (derivation in the module docstring).

    Parameters
    ----------
    dhs : array (batch, time, hidden) or None
        Gradient of the returned states.
    a : array (batch, time, hidden)
        The forward's coefficients (unmasked, as passed to :func:`linear_scan`).
    hs : array (batch, time, hidden)
        The forward's result.
    h0 : array (batch, hidden), optional
        The forward's initial state (``None`` for zeros).
    dh_n : array (batch, hidden), optional
        Gradient of the final state ``hs[:, -1]`` (added to ``dhs``'s last step).
    mask : optional
        The forward's mask: the padded steps' ``da``, ``db`` are zero.

    Returns
    -------
    ScanGrads
        ``(da, db, dh0)``, new arrays in the inputs' namespace and device; ``dh0`` is returned
        even when the forward started from zeros.
    """
    xp = resolve({"dhs": dhs, "a": a, "hs": hs, "h0": h0, "dh_n": dh_n})
    _check(xp, a, hs, h0, "hs")
    batch, time, hidden = a.shape
    if dhs is None and dh_n is None:
        raise ValueError("nothing to backpropagate: dhs is None and no dh_n given")
    for name, g, shape, labels in (("dhs", dhs, (batch, time, hidden), "(batch, time, hidden)"),
                                   ("dh_n", dh_n, (batch, hidden), "(batch, hidden)")):
        if g is not None:
            check_shape(name, g, shape, labels)
            if g.dtype != a.dtype:
                raise TypeError(f"{name} must have the forward's dtype "
                                f"{dtype_name(xp, a.dtype)}; got {dtype_name(xp, g.dtype)}")
    m = as_step_mask(mask, x=a, xp=xp)
    dev = device(a)
    if dhs is None:
        dhs = xp.zeros((batch, time, hidden), dtype=a.dtype, device=dev)
    a_eff = a if m is None else xp.where(m[:, :, None], a, xp.ones((), dtype=a.dtype, device=dev))
    G = scan_adjoint(a_eff, dhs, dh_n, xp=xp)  # (B, T, H)
    h_init = xp.zeros((batch, 1, hidden), dtype=a.dtype, device=dev) if h0 is None \
        else xp.reshape(h0, (batch, 1, hidden))
    h_prev = xp.concat([h_init, hs[:, : time - 1, :]], axis=1)  # (B, T, H)
    da = G * h_prev  # (B, T, H)
    db = G
    if m is not None:
        zero = xp.zeros((), dtype=a.dtype, device=dev)
        da = xp.where(m[:, :, None], da, zero)
        db = xp.where(m[:, :, None], G, zero)
    return ScanGrads(da, db, a_eff[:, 0, :] * G[:, 0, :])
