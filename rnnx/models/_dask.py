"""Data-parallel training and lazy inference on a dask.distributed cluster (the ``rnnx[dask]``
extra): what the estimators' ``fit``/``predict``/``predict_proba`` do when given dask arrays.

Training is synchronous data parallelism with the model and the optimizer on the driver. The
sample chunks of ``X`` (with their rows of the encoded ``y``) are persisted once on the workers
as *shards*; every step takes the global mini-batch single-machine training would draw (the
same seeded permutation, :meth:`~rnnx.models._training.Trainer.batches`), each shard holding
rows of it computes the gradient *sum* over those rows with the network's own BPTT
(:meth:`~rnnx.models.network.SequenceNetwork.loss_and_grad`, whose loss is a mean: its
gradient times the shard's row count), the driver adds the sums in shard order, divides by the
batch size, clips and steps. Only the weights (broadcast once a step) and the gradients move.

Inference maps the fitted estimator, sent once as one graph key, over the sample chunks:
the results are lazy dask arrays, so data larger than memory can be scored.

Dask is not a backend namespace: the maths of a chunk runs in the chunk's own namespace (its
``_meta``). Nothing here imports dask unless a dask array was passed (:func:`is_dask_array`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from .._backend import backend_name, device, from_host, namespace, to_numpy
from ..optim import clip_grad_norm
from ._progress import EpochBar
from ._training import Trainer
from ._validation import check_finite, check_int_exact, float_dtype_name
from .network import SequenceNetwork

__all__ = ["fit", "is_dask_array", "not_yet", "predict_lazy"]


def is_dask_array(a: Any) -> bool:
    """Whether ``a`` is a dask collection (never imports dask)."""
    return type(a).__module__.startswith("dask.")


def not_yet(what: str) -> NotImplementedError:
    return NotImplementedError(f"{what} is not supported yet with dask arrays: compute the data "
                               "into memory (X.compute()) to use it, or leave it at its default")


def _client() -> Any:
    try:
        import distributed
    except ImportError:  # pragma: no cover - the extra is missing
        raise ImportError("training on dask arrays needs dask.distributed: install the "
                          "'rnnx[dask]' extra") from None
    try:
        return distributed.default_client()
    except ValueError:
        raise RuntimeError("fit on dask arrays trains on the current dask.distributed client, and "
                           "there is none: start one first, e.g. client = distributed.Client() "
                           "(or Client(cluster) for a LocalCluster)") from None


def _sample_chunked(a: Any, name: str) -> None:
    """``a`` is chunked along samples only, with known chunk sizes."""
    if any(c != c for c in a.chunks[0]):  # NaN: unknown sizes
        raise ValueError(f"{name} has unknown chunk sizes along samples; call "
                         f"{name}.compute_chunk_sizes() first")
    split = [ax for ax in range(1, a.ndim) if len(a.chunks[ax]) > 1]
    if split:
        spec = ", ".join(f"{ax}: -1" for ax in range(1, a.ndim))
        raise ValueError(f"{name} must be chunked along samples (axis 0) only, with the other "
                         f"axes in one chunk each; {name} has chunks {a.chunks}, split along axis "
                         f"{split}. Rechunk it: {name}.rechunk({{{spec}}})")


def _check_inputs(est: Any, X: Any, y: Any) -> None:
    """Refuse, before anything runs, what this slice cannot train exactly."""
    for name, a in (("X", X), ("y", y)):
        if not is_dask_array(a):
            other = "y" if name == "X" else "X"
            raise TypeError(f"{other} is a dask array but {name} is "
                            f"{type(a).__module__}.{type(a).__qualname__}: pass both as dask "
                            f"arrays chunked alike along samples, e.g. "
                            f"dask.array.from_array({name}, chunks=({other}.chunks[0],))")
        if not hasattr(a, "chunks"):
            raise TypeError(f"{name} must be a dask array; got {type(a).__qualname__}")
    if est.validation_fraction is not None or est.early_stopping:
        raise not_yet("validation_fraction / early_stopping")
    if est.dropout:
        raise not_yet("dropout")  # the workers' masks would differ from one machine's
    if est.backend is not None or est.device is not None:
        raise not_yet("backend= / device= (the chunks' own namespace trains)")
    if X.ndim not in (2, 3):
        raise ValueError(f"Expected 2D (n_samples, time) or 3D (n_samples, time, features) X, got "
                         f"{X.ndim}D array of shape {tuple(X.shape)} instead")
    if y.ndim == 0 or y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y have inconsistent numbers of samples: X has {X.shape[0]}, y "
                         f"has {y.shape[0] if y.ndim else 'a scalar'}")
    if X.shape[0] == 0 or any(s == 0 for s in X.shape[1:]):
        raise ValueError(f"X must have at least 1 sample, step and feature; got shape {X.shape}")
    _sample_chunked(X, "X")
    _sample_chunked(y, "y")
    if y.chunks[0] != X.chunks[0]:
        raise ValueError(f"X and y must have the same chunks along samples; X has "
                         f"{X.chunks[0]}, y has {y.chunks[0]}. Rechunk y: "
                         "y.rechunk({0: X.chunks[0]})")


# -- on the workers ----------------------------------------------------------------------------

_NETWORKS: dict[tuple[Any, int], SequenceNetwork] = {}


def _spec(est: Any) -> tuple[Any, ...]:
    """What builds a network shaped like ``est.network_`` (its weights are loaded after)."""
    opts = tuple(sorted(est._network_options().items()))
    return (int(est._n_step_features()), int(est.hidden_size), int(est._n_outputs),
            est._loss, bool(est._sequence_output()), est._backend_name, est._dtype_name, opts)


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


def _make_shard(Xb: Any, yb: Any, dtype_name: str) -> tuple[Any, Any]:
    """One sample chunk as the model reads it: 3-D, checked, in the model dtype, with its rows
    of the encoded targets on its own namespace and device."""
    xp = namespace(Xb)
    if Xb.ndim == 2:
        Xb = xp.reshape(Xb, (Xb.shape[0], Xb.shape[1], 1))  # (n, T, 1)
    check_int_exact(Xb, "X", dtype_name)
    dt = getattr(xp, dtype_name)
    Xb = Xb if Xb.dtype == dt else xp.astype(Xb, dt)
    check_finite(Xb, "X")
    return Xb, from_host(yb, xp=xp, device=device(Xb))


def _shard_grad(shard: tuple[Any, Any], weights: dict[str, Any], spec: tuple[Any, ...],
                rows: Any, classifies: bool) -> tuple[dict[str, Any], float, float]:
    """``(gradient sums over rows, loss sum, correct count)`` of the shard's ``rows`` (host
    local indices, in mini-batch order) under ``weights`` (host arrays)."""
    Xs, ys = shard
    xp, dev = namespace(Xs), device(Xs)
    net = _network(spec)
    net.load_parameters({k: from_host(v, xp=xp, device=dev, dtype=Xs.dtype)
                         for k, v in weights.items()})
    idx = from_host(rows, xp=xp, device=dev)
    xb, yb = xp.take(Xs, idx, axis=0), xp.take(ys, idx, axis=0)  # (r, T, F), (r, ...)
    loss, out = net.loss_and_grad(xb, yb)
    r = rows.shape[0]
    # loss_and_grad's loss is a mean over the r rows (for MSE over their r x outputs [x steps]
    # entries: r times one row's count), so its gradient times r is the sum over the rows;
    # the driver's division of the summed sums by the batch size is one machine's mean.
    sums = {k: to_numpy(g * r) for k, g in net.gradients().items()}
    correct = 0.0
    if classifies:
        correct = float(to_numpy(xp.sum(xp.astype(xp.argmax(out, axis=-1) == yb, out.dtype))))
    return sums, float(to_numpy(loss)) * r, correct


# -- on the driver -----------------------------------------------------------------------------

class DaskTrainer(Trainer):
    """:class:`Trainer` whose epochs run on shards: ``data`` is ``(client, shards, starts,
    spec)``, ``starts`` the first global row of every shard (and the total at the end)."""

    def epoch(self, data: Any, ym: Any = None, steps: Any = None) -> tuple[float, float | None]:
        client, shards, starts, spec = data
        n = starts[-1]
        perm = self.rng.permutation(n)  # the permutation Trainer.epoch draws
        net = self.network
        loss_sum = correct = 0.0
        for a, b in self.batches(n):
            batch = perm[a:b]
            params = net.parameters()
            xp, dev = namespace(*params.values()), device(next(iter(params.values())))
            [w] = client.scatter([{k: to_numpy(v) for k, v in params.items()}], broadcast=True)
            futs = []
            for s, shard in enumerate(shards):
                rows = batch[(batch >= starts[s]) & (batch < starts[s + 1])] - starts[s]
                if rows.shape[0]:
                    futs.append(client.submit(_shard_grad, shard, w, spec, rows,
                                              self._classifies, pure=False))
            parts = client.gather(futs)  # in shard order: the sum is deterministic
            del w
            total = None
            for sums, lsum, c in parts:
                g = {k: from_host(v, xp=xp, device=dev) for k, v in sums.items()}
                total = g if total is None else {k: total[k] + g[k] for k in total}
                loss_sum += lsum
                correct += c
            grads = {k: v / (b - a) for k, v in total.items()}
            if self.clip_norm is not None:
                grads, _ = clip_grad_norm(grads, self.clip_norm)
            self.optimizer.step(params, grads)
            net.load_parameters(params)
        return loss_sum / n, (correct / n if self._classifies else None)

    def fit_shards(self, data: Any, *, epochs: int,
                   on_epoch: Callable[[int, dict], Any] | None = None) -> None:
        for epoch in range(1, epochs + 1):
            with self.guarded_epoch(epoch):
                loss, acc = self.epoch(data)
                self.check_diverged(epoch, loss)
            self.record(loss, acc)
            if on_epoch is not None:
                on_epoch(epoch, self.history)


def _setup(est: Any, client: Any, X: Any, y: Any) -> tuple[list[Any], list[int]]:
    """Place the model (dtype, shapes), encode ``y`` and persist the checked shards; returns
    ``(shard futures, first global row of each shard and the total)``."""
    from dask import delayed
    from distributed import wait

    for attr in ("network_", "history_"):
        est.__dict__.pop(attr, None)
    meta = X._meta
    mxp = namespace(meta)
    dt_name = est.dtype or float_dtype_name(mxp, meta, "X")
    est._backend_name, est._device, est._dtype_name = backend_name(mxp), None, dt_name
    est._fit_ndim = X.ndim
    est.n_features_in_ = int(X.shape[1] if X.ndim == 2 else X.shape[2])
    T, F = int(X.shape[1]), (1 if X.ndim == 2 else int(X.shape[2]))
    dt = getattr(mxp, dt_name)
    # The targets (one entry per sample, not the sequences) are encoded on the driver by the
    # single-machine code, so classes and scaling are exactly those of an in-memory fit.
    y_host = to_numpy(y.compute())
    if y_host.ndim == 2 and y_host.shape[1] == 1 and est._loss == "cross_entropy":
        y_host = y_host.reshape(-1)
    probe = mxp.zeros((0, T, F), dtype=dt)
    ym = to_numpy(est._encode_y(y_host, first=True, classes=None, Xm=probe))
    starts = [0]
    for c in X.chunks[0]:
        starts.append(starts[-1] + int(c))
    blocks = X.to_delayed().ravel()
    shards = client.compute([delayed(_make_shard)(xb, ym[starts[i]:starts[i + 1]], dt_name)
                             for i, xb in enumerate(blocks)])
    wait(shards)
    bad = [f for f in shards if f.status == "error"]
    if bad:  # bad data: refused before any step
        exc = bad[0].exception()
        client.cancel(shards)
        raise exc
    return shards, starts


def fit(est: Any, X: Any, y: Any, *, lengths: Any = None,
        callback: Callable[[int, dict], Any] | None = None, progress: bool | None = None) -> Any:
    """:meth:`BaseRNN.fit` on dask arrays (see the module docstring)."""
    from .._backend import host_rng

    if lengths is not None:
        raise not_yet("lengths")
    est._check_hyper()
    _check_inputs(est, X, y)
    client = _client()
    saved = dict(est.__dict__)
    try:
        shards, starts = _setup(est, client, X, y)
    except BaseException:  # bad data or labels: the estimator is as it was, nothing trained
        est.__dict__.clear()
        est.__dict__.update(saved)
        raise
    rng = est.random_state if hasattr(est.random_state, "permutation") \
        else host_rng(est.random_state)
    est._new_network(est._n_step_features(), est._n_outputs, rng)
    est._rng = rng
    spec = _spec(est)
    trainer = DaskTrainer(est.network_, est._optim, rng, est.history_, batch_size=est.batch_size,
                          clip_norm=est.clip_norm, learning_rate=est.learning_rate,
                          name=type(est).__name__)
    bar = None if progress is False else EpochBar(est.epochs, enabled=progress)

    def on_epoch(epoch: int, history: dict) -> None:
        est.n_epochs_ = trainer.n_epochs
        if bar is not None:
            bar(epoch, history)
        if callback is not None:
            callback(epoch, history)

    try:
        trainer.fit_shards((client, shards, starts, spec), epochs=est.epochs, on_epoch=on_epoch)
    finally:
        if bar is not None:
            bar.close()
        est.n_epochs_ = trainer.n_epochs
        client.cancel(shards)
    return est


# -- lazy inference ----------------------------------------------------------------------------

def _lean(est: Any) -> Any:
    """A copy of the fitted ``est`` to send to the workers: its weights in a fresh network (no
    caches of the last batch), without optimizer state or shuffling generator."""
    lean = copy.copy(est)
    for attr in ("_optim", "_rng", "history_"):
        lean.__dict__.pop(attr, None)
    net = SequenceNetwork(*_spec(est)[:3], loss=est._loss, sequence_output=est._sequence_output(),
                          seed=0, backend=est._backend_name, device=est._device,
                          dtype=est._dtype_name, **est._network_options())
    net.load_parameters(est.network_.parameters())
    lean.network_ = net
    return lean


def _predict_block(block: Any, lean: Any, method: str) -> Any:
    return getattr(lean, method)(block)


def predict_lazy(est: Any, X: Any, method: str, lengths: Any = None) -> Any:
    """``est.<method>(X)`` for a dask ``X``: a lazy dask array chunked as ``X`` along samples."""
    from dask import delayed

    est._check_fitted()
    if lengths is not None:
        raise not_yet("lengths")
    if not hasattr(X, "chunks"):
        raise TypeError(f"X must be a dask array; got {type(X).__qualname__}")
    est._check_predict_X(X)
    _sample_chunked(X, "X")
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
    kw: dict[str, Any] = {}
    if k < X.ndim:
        kw["drop_axis"] = list(range(k, X.ndim))
    elif k > X.ndim:
        kw["new_axis"] = list(range(X.ndim, k))
    if method == "predict" and est._loss == "cross_entropy" and est.classes_.dtype.kind not in "biuf":
        meta = est.classes_[:0]  # labels that cannot live in the chunks' namespace
    else:
        meta = meta_xp.zeros((0,) * k, dtype=dtype)
    lean = delayed(_lean(est), pure=True)  # one key: sent once to each worker that scores
    return X.map_blocks(_predict_block, lean, method, chunks=(X.chunks[0], *((s,) for s in tail)),
                        dtype=dtype, meta=meta, **kw)
