"""Data-parallel training on a dask.distributed cluster (the ``rnnx[dask]`` extra): what the
estimators' ``fit``/``partial_fit`` do when given dask arrays, through the same fit skeleton as
in memory (:meth:`rnnx.models._base.BaseRNN._train`) with :class:`DaskData` for the data and
:class:`DaskTrainer` for the epochs.

Training is synchronous data parallelism with the model and the optimizer on the driver. The
sample chunks of ``X`` (with their rows of the encoded ``y``) are persisted once on the workers
as *shards* (:mod:`rnnx.models._dask_worker` runs there); every step takes the global mini-batch
single-machine training would draw (the same seeded permutation,
:meth:`~rnnx.models._training.Trainer.batches`), each shard holding rows of it computes the
gradient *sum* over those rows with the network's own BPTT
(:meth:`~rnnx.models.network.SequenceNetwork.loss_and_grad`, whose loss is a mean: its
gradient times the shard's row count), the driver adds the sums in shard order, divides by the
batch size, clips and steps. Only the weights (sent once a step) and the gradients move.

Lengths (a step mask), the validation split (the same seeded permutation) with early stopping,
``partial_fit`` and dropout (each worker draws its rows of the batch's mask under the keys the
driver draws from the layer's generator) follow the in-memory rules exactly. A dead worker is
replaced by dask (lost shards are recomputed from their graph, a step hit by it is sent again);
a lost client or scheduler raises :class:`ClusterLostError` with the model at the end of the
last completed epoch.

The inputs are checked first by :mod:`rnnx.models._dask_inputs`; inference on dask arrays is
:mod:`rnnx.models._dask_predict`. Dask is not a backend namespace: the maths of a chunk runs in
the chunk's own namespace (its ``_meta``). Nothing here imports dask unless a dask array was
passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._backend import HostArray, backend_name, device, from_host, host_namespace, namespace, to_numpy
from .._typing import Array
from ..optim import clip_grad_norm
from ._dask_inputs import check_inputs, current_client, network_spec
from ._dask_worker import make_shard, shard_eval, shard_grad
from ._errors import ClusterLostError, TrainingDivergedError
from ._training import Trainer
from ._validation import float_dtype_name, host_lengths

if TYPE_CHECKING:
    from distributed import Client, Future

    from ._base import BaseRNN

__all__ = ["ClusterLostError", "DaskData", "DaskTrainer", "Shards"]


# -- on the driver -----------------------------------------------------------------------------

class Shards:
    """The data of one data-parallel fit: the persisted shard futures on ``client``, the first
    global row of every shard (and the total at the end), the workers' network ``spec``, and
    the global ``rows`` a pass reads (all of them, or the training or validation part of a
    split). ``shape[0]`` is their count, as :class:`Trainer` reads an array's."""

    def __init__(self, client: Client, futures: list[Future], starts: list[int], spec: tuple[Any, ...],
                 rows: HostArray) -> None:
        self.client, self.futures, self.starts, self.spec, self.rows = (client, futures, starts,
                                                                       spec, rows)
        self.shape = (int(rows.shape[0]),)

    def subset(self, idx: HostArray) -> Shards:
        return Shards(self.client, self.futures, self.starts, self.spec, self.rows[idx])

    def per_shard(self, batch: HostArray) -> list[tuple[int, HostArray, HostArray]]:
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

    def epoch(self, data: Shards, ym: None = None, steps: None = None) -> tuple[float, float | None]:
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
                (shard_grad, (data.futures[s], data.spec, rows, self._classifies,
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

    def evaluate(self, data: Shards, ym: None = None, steps: None = None) -> tuple[float, float | None]:
        parts = self._run(data.client, self.network.parameters(), [
            (shard_eval, (data.futures[s], data.spec, rows, self._classifies))
            for s, rows, _ in data.per_shard(data.rows)])
        lsum = sum(p[0] for p in parts)
        weight = max(sum(p[2] for p in parts), 1.0)
        acc = sum(p[1] for p in parts) / data.shape[0] if self._classifies else None
        return lsum / weight, acc

    @staticmethod
    def split(Xm: Shards, ym: None, steps: None, train: HostArray, val: HostArray) -> tuple[tuple, tuple]:
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

    def fit(self, data: Shards, ym: None = None, steps: None = None, **kw: Any) -> None:
        self.client = data.client  # guarded_epoch tells a lost cluster by it
        super().fit(data, None, None, **kw)

    def partial_fit(self, data: Shards, ym: None = None, steps: None = None) -> None:
        self.client = data.client
        super().partial_fit(data, None, None)


def _host_steps(lengths: Any, n: int, T: int) -> Any:
    """The dask ``lengths``, computed and checked on the driver (one entry per sample, or one
    bool per step: small next to X), as a host boolean step mask ``(n, T)``, or None."""
    if lengths is None:
        return None
    lh = host_lengths(to_numpy(lengths.compute()), n, T)
    return lh if lh.dtype.kind == "b" else host_namespace().arange(T)[None, :] < lh[:, None]


class DaskData:
    """The data of a fit on dask arrays (:meth:`BaseRNN._train`'s counterpart of
    :class:`~rnnx.models._base.InMemory`): the inputs refused before anything runs, the model
    placed on a first fit (dtype, shapes), ``y`` encoded on the driver by the single-machine
    code (so classes and scaling are exactly those of an in-memory fit), and the checked shards
    persisted on the current client, trained by :class:`DaskTrainer`."""

    trainer = DaskTrainer

    def __init__(self, est: BaseRNN, X: Array, y: Array, lengths: Array | None, *,
                 first: bool, classes: Array | None) -> None:
        from dask import delayed
        from distributed import wait

        est._check_hyper()
        check_inputs(est, X, y, lengths)
        client = current_client()
        meta = X._meta
        mxp = namespace(meta)
        T, F = int(X.shape[1]), (1 if X.ndim == 2 else int(X.shape[2]))
        if first:
            est._warn_inert_dropout(stacklevel=6)  # fit's device scope, fit, _train, here
            dt_name = est.dtype or float_dtype_name(mxp, meta, "X")
            est._backend_name, est._device, est._dtype_name = backend_name(mxp), None, dt_name
            est._fit_ndim = X.ndim
            est.n_features_in_ = int(X.shape[1] if X.ndim == 2 else X.shape[2])
        else:
            float_dtype_name(mxp, meta, "X")
            if backend_name(mxp) != est._backend_name:
                raise ValueError(f"the model trains on {est._backend_name} but the chunks of X "
                                 f"are {backend_name(mxp)} arrays: partial_fit on dask arrays "
                                 "trains in the chunks' own namespace, so it continues only a "
                                 "model of theirs")
            est._check_predict_X(mxp.zeros((1, *(int(s) for s in X.shape[1:])),
                                           dtype=getattr(mxp, est._dtype_name)))
        dt_name = est._dtype_name
        n = int(X.shape[0])
        y_host = to_numpy(y.compute())
        if y_host.ndim == 2 and y_host.shape[1] == 1 and est._loss == "cross_entropy":
            y_host = y_host.reshape(-1)
        steps = _host_steps(lengths, n, T)
        probe = mxp.zeros((0, T, F), dtype=getattr(mxp, dt_name))
        ym = to_numpy(est._encode_y(y_host, first=first, classes=classes, Xm=probe, valid=steps))
        starts = [0]
        for c in X.chunks[0]:
            starts.append(starts[-1] + int(c))
        shards = client.compute([
            delayed(make_shard)(xb, ym[starts[i]:starts[i + 1]],
                                None if steps is None else steps[starts[i]:starts[i + 1]],
                                dt_name, f"chunk {i} (rows {starts[i]}..{starts[i + 1] - 1})")
            for i, xb in enumerate(X.to_delayed().ravel())])
        wait(shards)
        bad = [f for f in shards if f.status == "error"]
        if bad:  # bad data: refused before any step
            exc = bad[0].exception()
            client.cancel(shards)
            raise exc
        self.shards = Shards(client, shards, starts, None, host_namespace().arange(n))
        self.args = (self.shards,)
        self.features = est._n_step_features()

    def bind(self, est: BaseRNN) -> None:
        """The workers' network shape, once the driver's network exists."""
        self.shards.spec = network_spec(est)

    def release(self) -> None:
        """Drop the shards from the cluster (nothing to do where the client is gone)."""
        client = self.shards.client
        if getattr(client, "status", None) == "running":
            with contextlib.suppress(Exception):
                client.cancel(self.shards.futures)
