"""Lazy inference on dask arrays: the fitted estimator, sent once as one graph key, mapped
over the sample chunks (:func:`predict_lazy`), and the score reduced on the cluster
(:func:`score_lazy`), so data larger than memory can be scored."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .._backend import namespace
from ._dask_inputs import (
    check_lengths,
    check_y_like_X,
    is_dask_array,
    network_spec,
    not_dask,
    sample_chunked,
)
from .network import SequenceNetwork

if TYPE_CHECKING:
    from dask.array import Array as DaskArray

    from ._base import BaseRNN

__all__ = ["predict_lazy", "score_lazy"]


def _lean(est: Any) -> Any:
    """A copy of the fitted ``est`` to send to the workers: its weights in a fresh network (no
    caches of the last batch), without optimizer state or shuffling generator."""
    lean = copy.copy(est)
    for attr in ("_optim", "_rng", "history_"):
        lean.__dict__.pop(attr, None)
    net = SequenceNetwork(*network_spec(est)[:3], loss=est._loss, sequence_output=est._sequence_output(),
                          seed=0, backend=est._backend_name, device=est._device,
                          dtype=est._dtype_name, **est._network_options())
    net.load_parameters(est.network_.parameters())
    lean.network_ = net
    return lean


def _predict_block(block: Any, lean: Any, method: str, lengths: Any = None) -> Any:
    return getattr(lean, method)(block, lengths=lengths)


def predict_lazy(est: BaseRNN, X: DaskArray, method: str, lengths: DaskArray | None = None) -> DaskArray:
    """``est.<method>(X, lengths=lengths)`` for a dask ``X`` ``(n_samples, time, features)``
    (``lengths``: None or a dask array chunked as ``X`` along samples): a lazy dask array chunked
    as ``X`` along samples, in the chunks' namespace."""
    from dask import delayed

    est._check_fitted()
    if not hasattr(X, "chunks"):
        raise TypeError(f"X must be a dask array; got {type(X).__qualname__}")
    est._check_predict_X(X)
    sample_chunked(X, "X")
    check_lengths(X, lengths)
    meta_xp = namespace(X._meta)
    if method == "predict_proba":
        tail, dtype = (int(est._n_outputs),), getattr(meta_xp, est._dtype_name)
    elif est._loss == "cross_entropy":
        tail, dtype = (), est.classes_.dtype
    else:
        lead = 2 if est.sequence_output else 1
        tail = ((int(X.shape[1]),) if est.sequence_output else ()) + \
            ((int(est._n_outputs),) if est._y_ndim == lead + 1 else ())
        dtype = getattr(meta_xp, est._dtype_name)
    k = 1 + len(tail)
    if method == "predict" and est._loss == "cross_entropy" and est.classes_.dtype.kind not in "biuf":
        meta = est.classes_[:0]  # labels that cannot live in the chunks' namespace
    else:
        meta = meta_xp.zeros((0,) * k, dtype=dtype)
    lean = delayed(_lean(est), pure=True)  # one key: sent once to each worker that scores
    if lengths is not None:  # one task per chunk of X with its chunk of lengths
        import dask.array as da

        parts = [da.from_delayed(delayed(_predict_block)(xb, lean, method, lb),
                                 shape=(int(c), *tail), dtype=dtype, meta=meta)
                 for xb, lb, c in zip(X.to_delayed().ravel(), lengths.to_delayed().ravel(),
                                      X.chunks[0], strict=True)]
        return da.concatenate(parts, axis=0)
    kw: dict[str, Any] = {}
    if k < X.ndim:
        kw["drop_axis"] = list(range(k, X.ndim))
    elif k > X.ndim:
        kw["new_axis"] = list(range(X.ndim, k))
    return X.map_blocks(_predict_block, lean, method, chunks=(X.chunks[0], *((s,) for s in tail)),
                        dtype=dtype, meta=meta, **kw)


def score_lazy(est: BaseRNN, X: DaskArray, y: DaskArray, lengths: DaskArray | None = None) -> float:
    """``est.score(X, y, lengths=lengths)`` for dask ``X`` and ``y`` (and ``lengths``) chunked
    alike along samples: the predictions and the sums the score needs are reduced on the
    cluster (one ``compute``), only a few numbers reach the driver. A Python float, equal to the
    in-memory score."""
    import dask
    import dask.array as da

    if not is_dask_array(y):
        raise not_dask("y", y, "X")
    if not is_dask_array(X):
        raise not_dask("X", X, "y")
    check_y_like_X(X, y)
    pred = est.predict(X, lengths=lengths)  # lazy, checks X and lengths
    if est._loss == "cross_entropy":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.reshape(-1)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D class labels (n_samples,); got shape {y.shape}")
        unseen = y[~da.isin(y, est.classes_)]
        correct, bad = dask.compute((pred == y).sum(), da.unique(unseen))
        if bad.shape[0]:
            raise ValueError(f"y holds label(s) {bad.tolist()[:5]} not in classes_ "
                             f"{est.classes_.tolist()}: the model can never predict them, so "
                             "the accuracy would be meaningless")
        return float(correct) / int(X.shape[0])
    if y.size != pred.size:
        raise ValueError(f"y must have the shape of the predictions {pred.shape}; got shape "
                         f"{y.shape}")
    p = pred.astype("float64").reshape(pred.shape[0], -1)  # (N, K): per sample [, step], output
    t = y.astype("float64").reshape(p.shape)
    n_out = int(est._n_outputs)
    steps = int(X.shape[1]) if est.sequence_output else 1
    p = p.reshape(p.shape[0], steps, n_out)  # (N, S, O)
    t = t.reshape(p.shape)
    if lengths is not None and est.sequence_output:
        keep = lengths if lengths.dtype == bool else \
            da.arange(steps, chunks=steps)[None, :] < lengths[:, None]  # (N, S)
        w = keep.astype("float64")[:, :, None]  # (N, S, 1)
    else:
        w = da.ones((p.shape[0], steps, 1), chunks=(p.chunks[0], steps, 1))
    mean = (w * t).sum(axis=(0, 1)) / w.sum()  # (O,): over the valid entries
    ss_res, ss_tot, finite = dask.compute(  # one pass over the cluster's chunks
        (w * (t - p) ** 2).sum(axis=(0, 1)), (w * (t - mean) ** 2).sum(axis=(0, 1)),
        da.isfinite(y).all())
    if not finite:
        raise ValueError("Input y contains NaN or inf; expected finite values")
    r2 = 1.0 - ss_res / ss_tot.clip(min=1e-300)
    return float(r2.mean())
