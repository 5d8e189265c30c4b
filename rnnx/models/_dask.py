"""Data-parallel training and lazy inference on a dask.distributed cluster (the ``rnnx[dask]``
extra): what the estimators' ``fit``/``predict``/``predict_proba`` do when given dask arrays.

Training is synchronous data parallelism with the model and the optimizer on the driver. The
sample chunks of ``X`` (with their rows of the encoded ``y``) are persisted once on the workers
as *shards*; every step takes the global mini-batch single-machine training would draw (the
same seeded permutation, :meth:`~rnnx.models._training.Trainer.batches`), each shard holding
rows of it computes the gradient *sum* over those rows with the network's own BPTT
(:meth:`~rnnx.models.network.SequenceNetwork.loss_and_grad`, whose loss is a mean: its
gradient times the shard's row count), the driver adds the sums in shard order, divides by the
batch size, clips and steps. Only the weights (sent once a step) and the gradients move.

Lengths (a step mask), the validation split (the same seeded permutation) with early stopping,
``partial_fit`` and dropout (:class:`_RowMasks`: each worker draws its rows of the batch's mask
under the keys the driver draws from the layer's generator) follow the in-memory rules exactly.
A dead worker is replaced by dask (lost shards are recomputed from their graph, a step hit by it
is sent again); a lost client or scheduler raises :class:`ClusterLostError` with the model at
the end of the last completed epoch.

Inference (:mod:`rnnx.models._dask_predict`) maps the fitted estimator over the sample chunks;
the inputs are checked first by :mod:`rnnx.models._dask_inputs`.

Dask is not a backend namespace: the maths of a chunk runs in the chunk's own namespace (its
``_meta``). Nothing here imports dask unless a dask array was passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from .._backend import backend_name, device, from_host, host_namespace, namespace, to_numpy
from ..functional.dropout import dropout_scale
from ..optim import clip_grad_norm
from ._dask_inputs import check_inputs, current_client, network_spec
from ._errors import ClusterLostError, TrainingDivergedError
from ._progress import EpochBar
from ._training import Trainer, train_mode
from ._validation import check_finite, check_int_exact, float_dtype_name, host_lengths
from .network import SequenceNetwork

__all__ = ["ClusterLostError", "fit", "partial_fit"]


# -- on the workers ----------------------------------------------------------------------------

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


def _make_shard(Xb: Any, yb: Any, sb: Any, dtype_name: str, where: str) -> tuple[Any, Any, Any]:
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


def _shard_grad(shard: tuple[Any, Any, Any], weights: dict[str, Any], spec: tuple[Any, ...],
                rows: Any, classifies: bool, drop: Any) -> tuple[dict[str, Any], float, float,
                                                                  float]:
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


def _shard_eval(shard: tuple[Any, Any, Any], weights: dict[str, Any], spec: tuple[Any, ...],
                rows: Any, classifies: bool) -> tuple[float, float, float]:
    """``(loss sum, correct count, weight)`` of the shard's ``rows`` without dropout (the
    validation split), as :meth:`Trainer.evaluate` scores them."""
    net, xb, yb, sb = _prepared(shard, weights, spec, rows)
    loss, acc = Trainer(net, None, None, {}, batch_size=1, clip_norm=None,
                        learning_rate=0.0).evaluate(xb, yb, sb)
    r = int(rows.shape[0])
    w = _weight(net, sb, r)
    return loss * w, (acc * r if classifies else 0.0), w


# -- on the driver -----------------------------------------------------------------------------

class Shards:
    """The data of one data-parallel fit: the persisted shard futures on ``client``, the first
    global row of every shard (and the total at the end), the workers' network ``spec``, and
    the global ``rows`` a pass reads (all of them, or the training or validation part of a
    split). ``shape[0]`` is their count, as :class:`Trainer` reads an array's."""

    def __init__(self, client: Any, futures: list[Any], starts: list[int], spec: tuple[Any, ...],
                 rows: Any) -> None:
        self.client, self.futures, self.starts, self.spec, self.rows = (client, futures, starts,
                                                                       spec, rows)
        self.shape = (int(rows.shape[0]),)

    def subset(self, idx: Any) -> Shards:
        return Shards(self.client, self.futures, self.starts, self.spec, self.rows[idx])

    def per_shard(self, batch: Any) -> list[tuple[int, Any, Any]]:
        """``(shard, its local rows, their positions in batch)`` for every shard holding rows
        of ``batch`` (global rows), in shard order."""
        hnp = host_namespace()  # host indices: the driver's bookkeeping
        out = []
        for s in range(len(self.futures)):
            a, b = self.starts[s], self.starts[s + 1]
            pos = hnp.nonzero((batch >= a) & (batch < b))[0]
            if pos.shape[0]:
                out.append((s, batch[pos] - a, pos))
        return out


#: How often one step is sent before its failure ends the fit (see :meth:`DaskTrainer._run`).
STEP_TRIES = 5


def _retryable(exc: BaseException) -> bool:
    """A failure of one step that a dead worker explains (dask replaces it; sending the step
    again succeeds): a closed connection to it, or tasks cancelled for lost dependencies."""
    return isinstance(exc, OSError) or type(exc).__name__ in ("CommClosedError",
                                                              "FutureCancelledError")


def _cluster_lost(exc: BaseException, client: Any) -> bool:
    """Whether ``exc`` means the client or scheduler is gone (connecting again helps). Not
    ``KilledWorker``: a task that took its workers down three times (a chunk too large for a
    worker's memory, say) fails the same way on any cluster."""
    return (getattr(client, "status", "running") != "running"
            or isinstance(exc, (OSError, asyncio.CancelledError, asyncio.TimeoutError))
            or type(exc).__name__ in ("CommClosedError", "FutureCancelledError",
                                      "CancelledError"))


class DaskTrainer(Trainer):
    """:class:`Trainer` whose epochs run on :class:`Shards` (``ym`` and ``steps`` are unused:
    the shards hold them)."""

    def _run(self, client: Any, params: dict[str, Any],
             tasks: list[tuple[Callable, tuple[Any, ...]]]) -> list[Any]:
        """Send ``params`` once (host arrays, a fresh key: never one being released) and
        run ``fn(shard, weights, *args)`` for each ``(fn, (shard, *args))``; the results in
        task order. Dask reruns the tasks of a lost worker by itself (and recomputes lost
        shards from their graph); if the upload met a worker that had just died, or the
        weights were lost with their holders ("lost dependencies"), the step is sent again
        (up to :data:`STEP_TRIES` times, a second apart, while the client runs): nothing has
        been applied before every result is in."""
        host = {k: to_numpy(v) for k, v in params.items()}
        for attempt in range(1, STEP_TRIES + 1):
            w = futs = None
            try:
                # One upload to one worker; the others fetch it from there (peer to peer).
                # Not broadcast=True: the scheduler's replication can wait forever on a worker
                # that died in the middle of it.
                [w] = client.scatter([host], hash=False)
                futs = [client.submit(fn, shard, w, *args, pure=False)
                        for fn, (shard, *args) in tasks]
                return client.gather(futs)
            except Exception as exc:
                if attempt == STEP_TRIES or client.status != "running" or not _retryable(exc):
                    raise
                time.sleep(1.0)  # the scheduler notices the dead worker, its nanny restarts it
            finally:
                del w, futs
        raise AssertionError("unreachable")  # pragma: no cover

    def _dropout_keys(self) -> list[tuple[int, ...]] | None:
        """The keys one machine's training forward would draw for this step, drawn from the
        driver's layer generator in the same order (one per stacked-layer boundary)."""
        rec = self.network.recurrent
        if not getattr(rec, "dropout", 0.0) or rec.num_layers < 2:
            return None
        return [rec.draw_dropout_keys() for _ in range(rec.num_layers - 1)]

    def epoch(self, data: Any, ym: Any = None, steps: Any = None) -> tuple[float, float | None]:
        client = data.client
        n = data.shape[0]
        perm = self.rng.permutation(n)  # the permutation Trainer.epoch draws
        net = self.network
        loss_sum = correct = 0.0
        for a, b in self.batches(n):
            batch = data.rows[perm[a:b]]  # global rows, in mini-batch order
            keys = self._dropout_keys()
            params = net.parameters()
            xp, dev = namespace(*params.values()), device(next(iter(params.values())))
            parts = self._run(client, params, [
                (_shard_grad, (data.futures[s], data.spec, rows, self._classifies,
                               None if keys is None else (keys, pos, b - a)))
                for s, rows, pos in data.per_shard(batch)])  # in shard order: a fixed sum order
            total, lsum, weight = None, 0.0, 0.0
            for sums, ls, c, wt in parts:
                g = {k: from_host(v, xp=xp, device=dev) for k, v in sums.items()}
                total = g if total is None else {k: total[k] + g[k] for k in total}
                lsum += ls
                weight += wt
                correct += c
            weight = max(weight, 1.0)  # no valid step in the batch: zero gradient, as in memory
            grads = {k: v / weight for k, v in total.items()}
            if self.clip_norm is not None:
                grads, _ = clip_grad_norm(grads, self.clip_norm)
            # Only now, with every gradient in, does the step change anything.
            self.optimizer.step(params, grads)
            net.load_parameters(params)
            loss_sum += lsum / weight * (b - a)
        return loss_sum / n, (correct / n if self._classifies else None)

    def evaluate(self, data: Any, ym: Any = None, steps: Any = None) -> tuple[float, float | None]:
        parts = self._run(data.client, self.network.parameters(), [
            (_shard_eval, (data.futures[s], data.spec, rows, self._classifies))
            for s, rows, _ in data.per_shard(data.rows)])
        lsum = sum(p[0] for p in parts)
        weight = max(sum(p[2] for p in parts), 1.0)
        acc = sum(p[1] for p in parts) / data.shape[0] if self._classifies else None
        return lsum / weight, acc

    @staticmethod
    def split(Xm: Any, ym: Any, steps: Any, train: Any, val: Any) -> tuple[tuple, tuple]:
        return (Xm.subset(train), None, None), (Xm.subset(val), None, None)

    @contextlib.contextmanager
    def guarded_epoch(self, epoch: int, method: str = "fit") -> Any:
        """:meth:`Trainer.guarded_epoch`, and: any other failure inside the epoch (a lost
        scheduler or client, a worker error) also puts the model back to the end of the last
        completed epoch before it leaves; a lost cluster raises :class:`ClusterLostError`."""
        snap = self.snapshot()
        try:
            with super().guarded_epoch(epoch, method):
                yield
        except (TrainingDivergedError, KeyboardInterrupt):
            raise
        except (Exception, asyncio.CancelledError) as exc:  # CancelledError: a BaseException
            self.restore(snap)
            kept = (f"the weights, optimizer state and history of the {self.n_epochs} completed "
                    "epoch(s)" if self.n_epochs else "its initial weights")
            if _cluster_lost(exc, self.client):
                raise ClusterLostError(
                    f"{self.name}.{method} on dask arrays lost its dask cluster in epoch {epoch} "
                    f"({type(exc).__name__}: {exc}). The model keeps {kept}; no step of epoch "
                    f"{epoch} was kept. Connect a client again and call {method} (partial_fit "
                    "continues from these weights)") from exc
            exc.add_note(f"rnnx: {self.name}.{method} on dask arrays failed in epoch {epoch}; "
                         f"the model keeps {kept}")
            raise

    def fit_shards(self, data: Shards, *, epochs: int, validation_fraction: float | None,
                   early_stopping: bool, n_iter_no_change: int, tol: float,
                   on_epoch: Callable[[int, dict], Any] | None = None) -> None:
        self.client = data.client
        self.fit(data, None, None, epochs=epochs, validation_fraction=validation_fraction,
                 early_stopping=early_stopping, n_iter_no_change=n_iter_no_change, tol=tol,
                 on_epoch=on_epoch)

    def partial_fit_shards(self, data: Shards) -> None:
        self.client = data.client
        self.partial_fit(data, None, None)


def _host_steps(lengths: Any, n: int, T: int) -> Any:
    """The dask ``lengths``, computed and checked on the driver (one entry per sample, or one
    bool per step: small next to X), as a host boolean step mask ``(n, T)``, or None."""
    if lengths is None:
        return None
    lh = host_lengths(to_numpy(lengths.compute()), n, T)
    return lh if lh.dtype.kind == "b" else host_namespace().arange(T)[None, :] < lh[:, None]


def _setup(est: Any, client: Any, X: Any, y: Any, lengths: Any, *, first: bool,
           classes: Any = None) -> Shards:
    """Place the model (dtype, shapes) on a first fit, encode ``y`` and persist the checked
    shards; returns them as :class:`Shards` over all rows."""
    from dask import delayed
    from distributed import wait

    meta = X._meta
    mxp = namespace(meta)
    T, F = int(X.shape[1]), (1 if X.ndim == 2 else int(X.shape[2]))
    if first:
        for attr in ("network_", "history_"):
            est.__dict__.pop(attr, None)
        est._warn_inert_dropout()
        dt_name = est.dtype or float_dtype_name(mxp, meta, "X")
        est._backend_name, est._device, est._dtype_name = backend_name(mxp), None, dt_name
        est._fit_ndim = X.ndim
        est.n_features_in_ = int(X.shape[1] if X.ndim == 2 else X.shape[2])
    else:
        float_dtype_name(mxp, meta, "X")
        if backend_name(mxp) != est._backend_name:
            raise ValueError(f"the model trains on {est._backend_name} but the chunks of X are "
                             f"{backend_name(mxp)} arrays: partial_fit on dask arrays trains in "
                             "the chunks' own namespace, so it continues only a model of theirs")
        est._check_predict_X(mxp.zeros((1, *(int(s) for s in X.shape[1:])),
                                       dtype=getattr(mxp, est._dtype_name)))
    dt_name = est._dtype_name
    dt = getattr(mxp, dt_name)
    # The targets and lengths (one entry per sample, not the sequences) are checked and encoded
    # on the driver by the single-machine code, so classes and scaling are exactly those of an
    # in-memory fit.
    n = int(X.shape[0])
    y_host = to_numpy(y.compute())
    if y_host.ndim == 2 and y_host.shape[1] == 1 and est._loss == "cross_entropy":
        y_host = y_host.reshape(-1)
    steps = _host_steps(lengths, n, T)
    probe = mxp.zeros((0, T, F), dtype=dt)
    ym = to_numpy(est._encode_y(y_host, first=first, classes=classes, Xm=probe, valid=steps))
    starts = [0]
    for c in X.chunks[0]:
        starts.append(starts[-1] + int(c))
    blocks = X.to_delayed().ravel()
    shards = client.compute([
        delayed(_make_shard)(xb, ym[starts[i]:starts[i + 1]],
                             None if steps is None else steps[starts[i]:starts[i + 1]], dt_name,
                             f"chunk {i} (rows {starts[i]}..{starts[i + 1] - 1})")
        for i, xb in enumerate(blocks)])
    wait(shards)
    bad = [f for f in shards if f.status == "error"]
    if bad:  # bad data: refused before any step
        exc = bad[0].exception()
        client.cancel(shards)
        raise exc
    return Shards(client, shards, starts, None, host_namespace().arange(n))


def _with_client(est: Any, X: Any, y: Any, lengths: Any) -> Any:
    est._check_hyper()
    check_inputs(est, X, y, lengths)
    return current_client()


def fit(est: Any, X: Any, y: Any, *, lengths: Any = None,
        callback: Callable[[int, dict], Any] | None = None, progress: bool | None = None) -> Any:
    """:meth:`BaseRNN.fit` on dask arrays (see the module docstring)."""
    from .._backend import host_rng

    client = _with_client(est, X, y, lengths)
    saved = dict(est.__dict__)
    try:
        data = _setup(est, client, X, y, lengths, first=True)
    except BaseException:  # bad data or labels: the estimator is as it was, nothing trained
        est.__dict__.clear()
        est.__dict__.update(saved)
        raise
    rng = est.random_state if hasattr(est.random_state, "permutation") \
        else host_rng(est.random_state)
    est._new_network(est._n_step_features(), est._n_outputs, rng)
    est._rng = rng
    data.spec = network_spec(est)
    trainer = est._trainer(DaskTrainer)
    bar = None if progress is False else EpochBar(est.epochs, enabled=progress)

    def on_epoch(epoch: int, history: dict) -> None:
        est.n_epochs_ = trainer.n_epochs
        if bar is not None:
            bar(epoch, history)
        if callback is not None:
            callback(epoch, history)

    try:
        trainer.fit_shards(data, epochs=est.epochs, validation_fraction=est.validation_fraction,
                           early_stopping=est.early_stopping,
                           n_iter_no_change=est.n_iter_no_change, tol=est.tol, on_epoch=on_epoch)
    finally:
        if bar is not None:
            bar.close()
        est.n_epochs_ = trainer.n_epochs
        _release(client, data.futures)
    return est


def partial_fit(est: Any, X: Any, y: Any, classes: Any = None, lengths: Any = None) -> Any:
    """:meth:`partial_fit` on dask arrays: one data-parallel epoch from the current weights
    (initialising on the first call), equal to the in-memory ``partial_fit``."""
    from .._backend import host_rng

    client = _with_client(est, X, y, lengths)
    first = not hasattr(est, "network_")
    saved = dict(est.__dict__)
    try:
        data = _setup(est, client, X, y, lengths, first=first, classes=classes)
    except BaseException:
        est.__dict__.clear()
        est.__dict__.update(saved)
        raise
    if first:
        est._rng = host_rng(est.random_state) if not hasattr(est.random_state, "permutation") \
            else est.random_state
        est._new_network(est._n_step_features(), est._n_outputs, est._rng)
    data.spec = network_spec(est)
    trainer = est._trainer(DaskTrainer)
    try:
        trainer.partial_fit_shards(data)
    finally:
        est.n_epochs_ = trainer.n_epochs
        _release(client, data.futures)
    return est


def _release(client: Any, futures: list[Any]) -> None:
    """Drop the shards from the cluster (nothing to do where the client is gone)."""
    if getattr(client, "status", None) == "running":
        with contextlib.suppress(Exception):
            client.cancel(futures)
