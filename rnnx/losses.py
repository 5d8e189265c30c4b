"""Losses: value and gradient in one call, from any Array API namespace.

References
----------
- C. M. Bishop, *Pattern Recognition and Machine Learning* (2006), eq. (4.109): the gradient of
  softmax cross-entropy with respect to the logits is ``softmax(z) - onehot(y)``.
- The log-sum-exp shift ``z - max(z)`` (e.g. Goodfellow et al., *Deep Learning* (2016), sec. 4.1)
  keeps ``exp`` from overflowing; the loss is taken from the shifted log-softmax, never from
  ``log(softmax)``, so a confident wrong prediction gives a large finite loss, not ``inf``.

Every loss accepts an optional boolean ``mask`` over the leading axes of the prediction
(``(batch,)`` or ``(batch, time)``): masked-out samples or steps contribute neither to the value
nor to the gradient, and the mean is over the kept entries. This is what padded variable-length
sequences need.
"""

from __future__ import annotations

from typing import Any

from ._backend import device, on_input_device
from ._typing import Array
from .functional._validate import check_float, resolve

__all__ = ["log_softmax", "mse", "softmax", "softmax_cross_entropy"]


@on_input_device
def log_softmax(logits: Array, *, axis: int = -1) -> Array:
    """Numerically stable ``log(softmax(logits))`` along ``axis``; same namespace and device."""
    xp = resolve({"logits": logits})
    z = logits - xp.max(logits, axis=axis, keepdims=True)  # (..., C)
    return z - xp.log(xp.sum(xp.exp(z), axis=axis, keepdims=True))  # (..., C)


@on_input_device
def softmax(logits: Array, *, axis: int = -1) -> Array:
    """Numerically stable softmax along ``axis``; same namespace and device as ``logits``."""
    xp = resolve({"logits": logits})
    e = xp.exp(logits - xp.max(logits, axis=axis, keepdims=True))  # (..., C)
    return e / xp.sum(e, axis=axis, keepdims=True)  # (..., C)


def _mask_weights(mask: Any, lead: tuple[int, ...], like: Any, *, xp: Any) -> tuple[Any, Any]:
    """``(weights as like's dtype with shape lead, count)``; count is a 0-d array (no host sync)."""
    if mask is None:
        n = 1
        for s in lead:
            n *= s
        return None, n
    if tuple(mask.shape) != lead:
        raise ValueError(
            f"mask must be boolean with the prediction's leading shape {lead}; got shape "
            f"{tuple(mask.shape)}"
        )
    if mask.dtype != xp.bool:
        raise TypeError(f"mask must have dtype bool; got {mask.dtype}")
    w = xp.astype(mask, like.dtype)  # lead
    # An all-False mask gives loss 0 and zero gradient rather than 0/0.
    count = xp.maximum(xp.sum(w), xp.ones((), dtype=like.dtype, device=device(like)))
    return w, count


@on_input_device
def softmax_cross_entropy(logits: Array, labels: Array, *, mask: Array | None = None) -> tuple[Array, Array]:
    """Mean softmax cross-entropy of integer ``labels`` given unnormalised ``logits``.

    Parameters
    ----------
    logits : array (..., classes)
        ``(batch, classes)`` for one label per sequence, ``(batch, time, classes)`` for one per step.
    labels : integer array, shape ``logits.shape[:-1]``
        Class indices in ``[0, classes)``, same namespace and device as ``logits``.
    mask : bool array, shape ``logits.shape[:-1]``, optional
        Entries to keep; the mean is over the kept entries.

    Returns
    -------
    loss : 0-d array
        ``mean(-log softmax(logits)[labels])``.
    dlogits : array, shape of ``logits``
        ``(softmax(logits) - onehot(labels)) / count``, the fused gradient: no division by a
        probability, so it is exact even where a probability underflows to 0.

    Both results are in ``logits``' namespace, on its device, with its dtype.
    """
    xp = resolve({"logits": logits, "labels": labels, "mask": mask})
    check_float("logits", logits, xp=xp)
    lead = tuple(logits.shape[:-1])
    if tuple(labels.shape) != lead:
        raise ValueError(
            f"labels must have shape logits.shape[:-1] = {lead}; got shape {tuple(labels.shape)}"
        )
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels must be integer class indices; got dtype {labels.dtype}")
    classes = logits.shape[-1]
    w, count = _mask_weights(mask, lead, logits, xp=xp)
    cls = xp.arange(classes, dtype=labels.dtype, device=device(logits))  # (C,)
    onehot = xp.astype(labels[..., None] == cls, logits.dtype)  # (..., C)
    z = logits - xp.max(logits, axis=-1, keepdims=True)  # (..., C)
    e = xp.exp(z)  # (..., C)
    s = xp.sum(e, axis=-1, keepdims=True)  # (..., 1)
    nll = xp.log(s[..., 0]) - xp.sum(z * onehot, axis=-1)  # (...,)
    grad = e / s - onehot  # (..., C)
    if w is not None:
        nll = nll * w
        grad = grad * w[..., None]
    return xp.sum(nll) / count, grad / count


@on_input_device
def mse(pred: Array, target: Array, *, mask: Array | None = None) -> tuple[Array, Array]:
    """Mean squared error ``mean((pred - target)^2)`` and its gradient ``2 (pred - target) / n``.

    ``pred`` and ``target`` share a shape ``(batch, outputs)`` or ``(batch, time, outputs)`` (any
    shape works); ``mask``, if given, is boolean over ``pred.shape[:-1]`` and ``n`` counts every
    kept element (kept entries times outputs). Results are in ``pred``'s namespace, on its device.
    """
    xp = resolve({"pred": pred, "target": target, "mask": mask})
    check_float("pred", pred, xp=xp)
    check_float("target", target, xp=xp, like=("pred", pred))
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"target must have the shape of pred {tuple(pred.shape)}; got {tuple(target.shape)}"
        )
    diff = pred - target
    if mask is None:
        n = 1
        for s in pred.shape:
            n *= s
        return xp.sum(diff * diff) / n, diff * (2.0 / n)
    w, count = _mask_weights(mask, tuple(pred.shape[:-1]), pred, xp=xp)
    diff = diff * w[..., None]
    n = count * pred.shape[-1]
    return xp.sum(diff * diff) / n, diff * 2.0 / n
