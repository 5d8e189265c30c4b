"""What runs on the dask workers in data-parallel training (:mod:`rnnx.models._dask` drives
it): a sample chunk made into a checked *shard* (:func:`make_shard`), and the gradient sums
(:func:`shard_grad`) or validation sums (:func:`shard_eval`) of the shard's rows of one global
mini-batch under the weights the driver sent. Each worker thread keeps one network per shape
and loads the weights into it."""

from __future__ import annotations

import threading
from typing import Any

from .._backend import HostArray, device, from_host, namespace, to_numpy
from .._typing import Array
from ..functional.dropout import dropout_scale
from ._training import Trainer, train_mode
from ._validation import check_finite, check_int_exact, float_dtype_name
from .network import SequenceNetwork

__all__ = ["make_shard", "shard_eval", "shard_grad"]

_NETWORKS: dict[tuple[Any, int], SequenceNetwork] = {}


def _network(spec: tuple[Any, ...]) -> SequenceNetwork:
    """This thread's network of ``spec``, built once (tasks on one worker may run in threads)."""
    key = (spec, threading.get_ident())
    net = _NETWORKS.get(key)
    if net is None:
        if len(_NETWORKS) >= 16:  # a long-lived worker serving many fits: keep few networks
            _NETWORKS.clear()
        features, hidden, outputs, loss, seq_out, backend, dtype, opts = spec
        net = SequenceNetwork(features, hidden, outputs, loss=loss, sequence_output=seq_out,
                              seed=0, backend=backend, dtype=dtype, **dict(opts))
        _NETWORKS[key] = net
    return net


def make_shard(Xb: Array, yb: HostArray, sb: HostArray | None, dtype_name: str, where: str
               ) -> tuple[Array, Array, Array | None]:
    """One sample chunk as the model reads it: 3-D, checked, in the model dtype, with its rows
    of the encoded targets (and of the boolean step mask, or None) on its own namespace and
    device. ``where`` names the chunk in errors (``"chunk 1 (rows 40..79)"``)."""
    xp = namespace(Xb)
    name = f"X {where}"
    float_dtype_name(xp, Xb, name)  # a chunk whose data are not the array's dtype
    if Xb.ndim == 2:
        Xb = xp.reshape(Xb, (Xb.shape[0], Xb.shape[1], 1))  # (n, T, 1)
    check_int_exact(Xb, name, dtype_name)
    dt = getattr(xp, dtype_name)
    Xb = Xb if Xb.dtype == dt else xp.astype(Xb, dt)
    check_finite(Xb, name)
    dev = device(Xb)
    return Xb, from_host(yb, xp=xp, device=dev), None if sb is None else from_host(sb, xp=xp,
                                                                                     device=dev)


class _RowMasks:
    """A worker layer's ``_dropout_scale``: for the next stacked-layer boundary, the rows
    ``positions`` of the mask the whole mini-batch of ``batch`` rows gets under the driver's
    keys (so every row is dropped as one machine would drop it)."""

    def __init__(self, keys: list[tuple[int, ...]], positions: Any, batch: int, rate: float):
        self.keys, self.positions, self.batch, self.rate = list(keys), positions, batch, rate

    def __call__(self, shape: tuple[int, ...], *, xp: Any, dtype: Any, device: Any) -> Any:
        rows = from_host(self.positions, xp=xp, device=device)
        return dropout_scale((self.batch, *shape[1:]), self.rate, self.keys.pop(0), xp=xp,
                             dtype=dtype, device=device, rows=rows)  # (r, T, D*H)


def _prepared(shard: tuple[Any, Any, Any], weights: dict[str, Any], spec: tuple[Any, ...],
              rows: Any) -> tuple[SequenceNetwork, Any, Any, Any]:
    Xs, ys, Ss = shard
    xp, dev = namespace(Xs), device(Xs)
    net = _network(spec)
    net.load_parameters({k: from_host(v, xp=xp, device=dev, dtype=Xs.dtype)
                         for k, v in weights.items()})
    idx = from_host(rows, xp=xp, device=dev)
    xb, yb = xp.take(Xs, idx, axis=0), xp.take(ys, idx, axis=0)  # (r, T, F), (r, ...)
    sb = None if Ss is None else xp.take(Ss, idx, axis=0)  # (r, T) bool
    return net, xb, yb, sb


def _weight(net: SequenceNetwork, sb: Any, r: int) -> float:
    """What the rows' mean loss averages over, in rows: ``r``, or the valid steps of a
    many-to-many network with lengths (the loss is a mean over those)."""
    if sb is None or not net.sequence_output:
        return float(r)
    xp = namespace(sb)
    return float(to_numpy(xp.sum(xp.astype(sb, xp.float64 if hasattr(xp, "float64")
                                           else xp.float32))))


def shard_grad(shard: tuple[Any, Any, Any], weights: dict[str, Any], spec: tuple[Any, ...],
               rows: HostArray, classifies: bool,
               drop: tuple[list[tuple[int, ...]], HostArray, int] | None
               ) -> tuple[dict[str, Any], float, float, float]:
    """``(gradient sums, loss sum, correct count, weight)`` of the shard's ``rows`` (host local
    indices, in mini-batch order) under ``weights`` (host arrays): the gradient and the loss are
    the rows' mean times their weight (:func:`_weight`). ``drop``: None, or ``(keys of each
    layer boundary, the rows' positions in the mini-batch, its size)``."""
    net, xb, yb, sb = _prepared(shard, weights, spec, rows)
    xp = namespace(xb)
    train_mode(net, True)
    if drop is None:
        net.recurrent.__dict__.pop("_dropout_scale", None)
    else:
        keys, positions, batch = drop
        net.recurrent._dropout_scale = _RowMasks(keys, positions, batch, net.recurrent.dropout)
    try:
        loss, out = net.loss_and_grad(xb, yb, steps=sb)
    finally:
        net.recurrent.__dict__.pop("_dropout_scale", None)
    w = _weight(net, sb, int(rows.shape[0]))
    # loss_and_grad's loss is a mean over the rows' entries (r x outputs [x steps], or the valid
    # steps x outputs), so its gradient times w is the sum in units of one row (one valid
    # step); the driver's division of the summed sums by the batch's weight is one machine's
    # mean.
    sums = {k: to_numpy(g * w) for k, g in net.gradients().items()}
    correct = 0.0
    if classifies:
        correct = float(to_numpy(xp.sum(xp.astype(xp.argmax(out, axis=-1) == yb, out.dtype))))
    return sums, float(to_numpy(loss)) * w, correct, w


def shard_eval(shard: tuple[Any, Any, Any], weights: dict[str, Any], spec: tuple[Any, ...],
                rows: HostArray, classifies: bool) -> tuple[float, float, float]:
    """``(loss sum, correct count, weight)`` of the shard's ``rows`` without dropout (the
    validation split), as :meth:`Trainer.evaluate` scores them."""
    net, xb, yb, sb = _prepared(shard, weights, spec, rows)
    loss, acc = Trainer(net, None, None, {}, batch_size=1, clip_norm=None,
                        learning_rate=0.0).evaluate(xb, yb, sb)
    r = int(rows.shape[0])
    w = _weight(net, sb, r)
    return loss * w, (acc * r if classifies else 0.0), w
