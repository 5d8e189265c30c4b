"""The training loop of the estimators, apart from them: a :class:`Trainer` works on a
:class:`~rnnx.models.network.SequenceNetwork`, an optimizer, a shuffling generator and the
data, already checked and on the model's device.

It runs epochs of shuffled mini-batches, an optional validation split with early stopping, and
guards every epoch: a non-finite loss or weights raise :class:`TrainingDivergedError`, and both
that and Ctrl-C put the network, the optimizer and the generator back to the end of the last
completed epoch before the exception leaves.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from typing import Any

from .._backend import (
    HostGenerator,
    device,
    epoch_executor,
    executor,
    float_errors_checked_by_caller,
    from_host,
    host_namespace,
    namespace,
    to_numpy,
)
from .._typing import Array
from ..optim import Optimizer
from ._errors import TrainingDivergedError
from .network import SequenceNetwork

__all__ = ["CompiledEpoch", "CompiledForward", "Trainer", "eval_forward", "train_mode"]


def train_mode(network: SequenceNetwork, mode: bool) -> None:
    """Dropout on (training) or off (prediction)."""
    network.recurrent.train(mode)


def eval_forward(network: SequenceNetwork, Xm: Array, steps: Array | None) -> Array:
    """Outputs of ``network`` in evaluation mode (no dropout), the mode restored after. Where
    the backend compiles (JAX) the whole forward is one compiled call per shape
    (:class:`CompiledForward`)."""
    if executor(namespace(Xm)).name == "scanned":
        return _compiled(network, ("forward",), lambda: CompiledForward(network))(Xm, steps)
    was = network.recurrent.training
    train_mode(network, False)
    try:
        return network.forward(Xm, steps=steps)
    finally:
        train_mode(network, was)


# -- compiled steps (JAX) ----------------------------------------------------------------------
#
# Where the backend compiles (rnnx._backend.executor: JAX), the estimators' training step and
# their prediction forward are pure functions of arrays, compiled once per shape. The network's
# own code is traced as it is, on a shallow copy (so that no traced value is left in the
# network's layers): its parameters, the optimizer's state and step count, the batch and the
# dropout keys are the function's arguments, its new parameters and optimizer state the
# results. Every batch of an epoch has one shape: the last, shorter one is padded to the batch
# size with samples the loss's mask leaves out.


def _compiled(network: Any, key: tuple, make: Callable[[], Any]) -> Any:
    """The compiled step ``key`` of ``network``, made on first use and kept with it (a
    ``partial_fit`` after ``fit`` reuses it)."""
    table = network.__dict__.setdefault("_compiled", {})
    if key not in table:
        table[key] = make()
    return table[key]


def _shell(network: Any) -> Any:
    """A copy of ``network`` whose layers and parameter dicts are its own (the arrays are
    shared), for tracing: what the trace writes into it never reaches ``network``."""
    net = copy.copy(network)
    net.__dict__.pop("_compiled", None)
    net.recurrent = copy.copy(network.recurrent)
    net.dense = copy.copy(network.dense)
    net.recurrent.params = dict(network.recurrent.params)
    net.dense.params = dict(network.dense.params)
    return net


def _keyed_dropout(layer: Any, keys: Any) -> None:
    """Make ``layer`` (a traced copy) take its dropout keys from the rows of ``keys`` ``(k,
    DROPOUT_KEY_WORDS)``, in the order it would draw them from its host generator."""
    from ..functional.dropout import dropout_scale

    rows = iter(range(keys.shape[0]))

    def scale(shape: tuple[int, ...], *, xp: Any, dtype: Any, device: Any) -> Any:
        return dropout_scale(shape, layer.dropout, keys[next(rows), ...], xp=xp, dtype=dtype,
                             device=device)

    layer._dropout_scale = scale


def _host_dtype(a: Any) -> str:
    """The host dtype name of float array ``a`` (``"float32"`` or ``"float64"``)."""
    return "float32" if a.dtype == namespace(a).float32 else "float64"


def _all_finite(params: dict) -> Any:
    """Whether every parameter is finite: a 0-d bool array on their device."""
    xp = namespace(*params.values())
    return xp.all(xp.stack([xp.all(xp.isfinite(p)) for p in params.values()]))


class CompiledForward:
    """``network.forward`` in evaluation mode as one compiled call per input shape."""

    def __init__(self, network: Any) -> None:
        self.network = network
        self.xp = namespace(*network.parameters().values())
        self.fn = executor(self.xp).compile(self._pure)

    def _pure(self, params: dict, x: Any, steps: Any) -> Any:
        net = _shell(self.network)
        net.load_parameters(params)
        train_mode(net, False)
        return net.forward(x, steps=steps)

    def __call__(self, x: Any, steps: Any) -> Any:
        params = self.network.parameters()
        x, steps = executor(self.xp).placed_like((x, steps), next(iter(params.values())))
        return self.fn(params, x, steps)


class CompiledEpoch:
    """One epoch of ``network.train_step`` with ``optimizer`` over shuffled mini-batches as one
    compiled call: a ``scan`` over the batches of the same training step (forward, loss,
    hand-derived backward, clipping, update), traced once. The batches come stacked ``(batches,
    batch_size, ...)``, the last one padded with samples the loss's mask leaves out (``keep``),
    so that every batch has one shape; the dropout keys, drawn on the host in the order the
    eager steps draw them, and the optimizer's step count are arguments, not constants: a new
    epoch is a new call, not a new compilation."""

    def __init__(self, network: Any, optimizer: Any, *, clip_norm: float | None,
                 runner: Any = None) -> None:
        self.network, self.optimizer, self.clip_norm = network, optimizer, clip_norm
        self.xp = namespace(*network.parameters().values())
        # What runs the epoch: JAX's compiler, or torch CUDA's graph capture (a runner with
        # compile/scan/placed_like: rnnx._backend.epoch_executor).
        self.executor = runner if runner is not None else executor(self.xp)
        self.fn = self.executor.compile(self._epoch)

    def _step(self, params: dict, state: dict, scalars: dict, x: Any, y: Any, steps: Any,
              keep: Any, keys: Any) -> tuple[Any, ...]:
        """One training step as a function of arrays: ``(params, state, loss, out)`` after
        it. ``scalars`` are the optimizer's factors of this step (its bias corrections)."""
        net = _shell(self.network)
        net.load_parameters(params)
        train_mode(net, True)
        if keys is not None:
            _keyed_dropout(net.recurrent, keys)
        opt = copy.copy(self.optimizer)
        opt.state, opt.fixed_scalars = {k: dict(v) for k, v in state.items()}, scalars
        mask = keep
        if net.sequence_output:
            mask = self.xp.broadcast_to(keep[:, None], tuple(y.shape[:2]))  # (B, T)
        loss, out = net.train_step(x, y, opt, clip_norm=self.clip_norm, mask=mask, steps=steps)
        return net.parameters(), opt.state, loss, out

    def _epoch(self, params: dict, state: dict, scalars: dict, data: tuple, idx: Any,
               keys: Any) -> tuple[Any, ...]:
        xp = self.xp
        classifies = self.network.loss_name == "cross_entropy"
        n = data[0].shape[0]
        batches, size = idx.shape
        keep = xp.reshape(xp.arange(batches * size, device=device(idx)) < n, (batches, size))

        def stacked(a: Any) -> Any:  # the shuffled (and padded) epoch, (batches, size, ...)
            if a is None:
                return None
            a = xp.take(a, xp.reshape(idx, (batches * size,)), axis=0)
            return xp.reshape(a, (batches, size, *a.shape[1:]))

        def body(carry: tuple, batch: tuple) -> tuple[tuple, tuple]:
            p, st = carry
            x, y, steps, kept, k, sc = batch
            p, st, loss, out = self._step(p, st, sc, x, y, steps, kept, k)
            w = xp.astype(kept, loss.dtype)  # (B,): the real samples
            total = loss * xp.sum(w)  # the batch's loss summed over its real samples
            correct = xp.zeros((), dtype=loss.dtype, device=device(loss))
            if classifies:
                hit = xp.astype(xp.argmax(out, axis=-1) == y, loss.dtype)  # (B,) or (B, T)
                correct = xp.sum(hit * (w if hit.ndim == 1 else w[:, None]))
            return (p, st), (total, correct)

        xs = (*(stacked(a) for a in data), keep, keys, scalars)
        (params, state), (totals, correct) = self.executor.scan(body, (params, state), xs)
        finite = xp.astype(_all_finite(params), totals.dtype)
        return params, state, xp.stack([xp.sum(totals), xp.sum(correct), finite])  # (3,)

    def _zeros(self, params: dict) -> dict:
        """The optimizer's state before its first step, zeros for each of its
        :attr:`~rnnx.optim.Optimizer.slots`, moved from the host (no computation to compile)
        and placed as the parameters are, as the state a step returns is: a difference in
        placement would be a second compilation."""
        hnp = host_namespace()
        state = {k: {name: from_host(hnp.zeros(tuple(p.shape), dtype=_host_dtype(p)),
                                     xp=self.xp, device=device(p))
                     for name in self.optimizer.slots} for k, p in params.items()}
        return self.executor.placed_like(state, next(iter(params.values())))

    def _keys(self, batches: int) -> Any:
        """The dropout keys of ``batches`` training forwards ``(batches, boundaries,
        DROPOUT_KEY_WORDS)`` int32, from the layer's host generator in the order the eager
        steps draw them (one draw per stacked-layer boundary per forward), or ``None``."""
        rec = self.network.recurrent
        n = rec.num_layers - 1 if getattr(rec, "dropout", 0.0) > 0.0 else 0
        if not n:
            return None
        keys = [[rec.draw_dropout_keys() for _ in range(n)] for _ in range(batches)]
        return from_host(keys, xp=self.xp, device=rec.device, dtype=self.xp.int32)

    def __call__(self, Xm: Any, ym: Any, steps: Any, perm: Any, batch_size: int) -> Any:
        """Train on ``(Xm, ym)`` (and ``steps``: lengths or step masks) in the host order
        ``perm`` (a permutation of the rows), in batches of ``batch_size``; returns ``[sum of
        the batches' losses times their sizes, correct predictions, 1.0 if every new parameter
        is finite else 0.0]`` ``(3,)`` on the device (one read gives all three)."""
        xp, opt, net = self.xp, self.optimizer, self.network
        n = Xm.shape[0]
        batches = -(-n // batch_size)
        # The last batch padded with rows from the start (finite; the loss's mask drops them).
        order = [int(i) for i in perm] + [int(i) for i in perm[: batches * batch_size - n]]
        dev = device(Xm)
        idx = from_host([order[b * batch_size:(b + 1) * batch_size] for b in range(batches)],
                        xp=xp, device=dev, dtype=xp.int32)  # (batches, B)
        data, keys = (Xm, ym, steps), self._keys(batches)
        params = net.parameters()
        # The optimizer's per-step factors, on the host in double as its eager steps compute
        # them, then in the parameters' dtype: arguments, so the step count is no constant.
        per_step = [opt.scalars(opt.t + 1 + b) for b in range(batches)]
        dtype = next(iter(params.values())).dtype
        scalars = {k: from_host([sc[k] for sc in per_step], xp=xp, device=dev, dtype=dtype)
                   for k in per_step[0]}
        if not opt.state:
            # The optimizer makes its state on its first step: make it here (zeros of each
            # parameter's shape and dtype), so that the loop's carry, and every call, has one
            # structure.
            opt.state = self._zeros(params)
        # Every argument placed as the parameters are: data placed otherwise (uncommitted, as
        # a fit's is and a partial_fit's is not) would be another compilation.
        data, idx, keys, scalars = self.executor.placed_like(
            (data, idx, keys, scalars), next(iter(params.values())))
        params, state, summary = self.fn(params, opt.state, scalars, data, idx, keys)
        net.load_parameters(params)
        opt.state, opt.t = state, opt.t + batches
        return summary


class Trainer:
    """Trains ``network`` with ``optimizer``, shuffling with ``rng`` (a NumPy ``Generator``;
    both ``None`` for a trainer that only evaluates).

    ``history`` (the estimator's ``history_``: ``loss``, and ``accuracy`` for a cross-entropy
    network) is appended to in place, one entry per completed epoch; ``n_epochs`` counts the
    completed epochs, starting from the given number. ``batch_size`` and ``clip_norm`` shape each
    step; ``learning_rate`` and ``name`` (the estimator's class) only go into messages.
    """

    def __init__(self, network: SequenceNetwork, optimizer: Optimizer | None,
                 rng: HostGenerator | None, history: dict[str, list[float]], *, batch_size: int,
                 clip_norm: float | None, learning_rate: float, n_epochs: int = 0,
                 name: str = "model") -> None:
        self.network, self.optimizer, self.rng, self.history = network, optimizer, rng, history
        self.batch_size, self.clip_norm, self.learning_rate = batch_size, clip_norm, learning_rate
        self.n_epochs, self.name = n_epochs, name
        #: After :meth:`fit`: the epoch whose weights early stopping restored (None if none).
        self.restored_epoch: int | None = None

    @property
    def _classifies(self) -> bool:
        return self.network.loss_name == "cross_entropy"

    # -- one epoch -------------------------------------------------------------------------

    def batches(self, n: int) -> list[tuple[int, int]]:
        bs = min(self.batch_size, n)
        return [(s, min(s + bs, n)) for s in range(0, n, bs)]

    def epoch(self, Xm: Array, ym: Array, steps: Array | None = None) -> tuple[float, float | None]:
        """One pass over ``(Xm, ym)`` (and their ``steps``: lengths or step mask) in shuffled
        mini-batches; returns host ``(mean loss, accuracy or None)`` measured on each batch
        before its update (one sync per epoch)."""
        xp = namespace(Xm)
        n = Xm.shape[0]
        train_mode(self.network, True)
        runner = epoch_executor(xp, device(Xm))
        if runner is not None:  # JAX: one compiled call; torch CUDA: one captured step replayed
            net, opt = self.network, self.optimizer
            epoch = _compiled(net, ("epoch", id(opt), self.clip_norm, runner.name),
                              lambda: CompiledEpoch(net, opt, clip_norm=self.clip_norm,
                                                    runner=runner))
            summary = epoch(Xm, ym, steps, self.rng.permutation(n), min(self.batch_size, n))
            loss_sum, correct, finite = (float(v) for v in to_numpy(summary))  # one sync
            self._finite = (list(net.parameters().values()), finite == 1.0)  # check_diverged's
            return loss_sum / n, (correct / n if self._classifies else None)
        perm = from_host(self.rng.permutation(n), xp=xp, device=device(Xm))
        Xs, ys = xp.take(Xm, perm, axis=0), xp.take(ym, perm, axis=0)
        Ss = None if steps is None else xp.take(steps, perm, axis=0)
        loss_sum = correct = None
        for a, b in self.batches(n):
            loss, out = self.network.train_step(
                Xs[a:b, ...], ys[a:b, ...], self.optimizer, clip_norm=self.clip_norm,
                steps=None if Ss is None else Ss[a:b, ...])
            loss_sum = loss * (b - a) if loss_sum is None else loss_sum + loss * (b - a)
            if self._classifies:
                c = xp.sum(xp.astype(xp.argmax(out, axis=-1) == ys[a:b, ...], out.dtype))
                correct = c if correct is None else correct + c
        loss_v = float(to_numpy(loss_sum)) / n
        acc = None if correct is None else float(to_numpy(correct)) / n
        return loss_v, acc

    def evaluate(self, Xm: Array, ym: Array, steps: Array | None = None
                 ) -> tuple[float, float | None]:
        """Host ``(loss, accuracy or None)`` of the network on ``(Xm, ym)``, without dropout."""
        from ..functional._mask import as_step_mask
        from ..losses import mse, softmax_cross_entropy

        out = eval_forward(self.network, Xm, steps)
        if self._classifies:
            xp = namespace(out)
            loss, _ = softmax_cross_entropy(out, ym)
            acc = xp.mean(xp.astype(xp.argmax(out, axis=-1) == ym, out.dtype))
            return float(to_numpy(loss)), float(to_numpy(acc))
        mask = None
        if steps is not None and self.network.sequence_output:
            mask = as_step_mask(steps, x=Xm, xp=namespace(Xm))  # (N, T): padding leaves the loss
        loss, _ = mse(out, ym, mask=mask)
        return float(to_numpy(loss)), None

    def record(self, loss: float, acc: float | None) -> None:
        self.history["loss"].append(loss)
        if acc is not None:
            self.history["accuracy"].append(acc)
        self.n_epochs += 1

    # -- the loops ---------------------------------------------------------------------------

    def fit(self, Xm: Array, ym: Array, steps: Array | None = None, *, epochs: int,
            validation_fraction: float | None, early_stopping: bool, n_iter_no_change: int,
            tol: float, on_epoch: Callable[[int, dict], Any] | None = None) -> None:
        """Up to ``epochs`` epochs over ``(Xm, ym)``. ``validation_fraction`` (0.1 by default
        with ``early_stopping``) holds out a random share scored after every epoch
        (``history["val_*"]``). With ``early_stopping``, stop when the watched loss (validation
        loss with a split, else training loss) has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and with a split restore the best weights. ``on_epoch(epoch,
        history)`` is called after every completed epoch."""
        vf = validation_fraction
        if vf is None and early_stopping:
            vf = 0.1
        Xv = yv = Sv = None
        n = Xm.shape[0]
        n_val = math.ceil(vf * n) if vf else 0
        if n_val and n - n_val >= 1:
            perm = self.rng.permutation(n)
            (Xm, ym, steps), (Xv, yv, Sv) = self.split(Xm, ym, steps, perm[n_val:], perm[:n_val])
            self.history["val_loss"] = []
            if self._classifies:
                self.history["val_accuracy"] = []
        best, best_params, best_epoch, stale = math.inf, None, 0, 0
        self.restored_epoch = None
        for epoch in range(1, epochs + 1):
            with self.guarded_epoch(epoch):
                loss, acc = self.epoch(Xm, ym, steps)
                self.check_diverged(epoch, loss)
                vloss = vacc = None
                if Xv is not None:
                    vloss, vacc = self.evaluate(Xv, yv, Sv)
            # The epoch is complete from here on: record it, then tell the callback.
            self.record(loss, acc)
            watched = loss
            if Xv is not None:
                self.history["val_loss"].append(vloss)
                if vacc is not None:
                    self.history["val_accuracy"].append(vacc)
                watched = vloss
            if on_epoch is not None:
                on_epoch(epoch, self.history)
            if watched < best - tol:
                best, stale, best_epoch = watched, 0, self.n_epochs
                best_params = dict(self.network.parameters()) if Xv is not None else None
            else:
                stale += 1
            if early_stopping and stale >= n_iter_no_change:
                break
        if early_stopping and best_params is not None:
            # Arrays are never updated in place, so the saved references are the best weights.
            self.network.load_parameters(best_params)
            self.restored_epoch = best_epoch

    @staticmethod
    def split(Xm: Array, ym: Array, steps: Array | None, train: Array, val: Array
              ) -> tuple[tuple, tuple]:
        """``((X, y, steps) of the host row indices train, the same of val)``, rows in the
        order given."""
        xp = namespace(Xm)
        idx_t = from_host(train, xp=xp, device=device(Xm))
        idx_v = from_host(val, xp=xp, device=device(Xm))
        Sv = St = None
        if steps is not None:
            Sv, St = xp.take(steps, idx_v, axis=0), xp.take(steps, idx_t, axis=0)
        return ((xp.take(Xm, idx_t, axis=0), xp.take(ym, idx_t, axis=0), St),
                (xp.take(Xm, idx_v, axis=0), xp.take(ym, idx_v, axis=0), Sv))

    def partial_fit(self, Xm: Array, ym: Array, steps: Array | None = None) -> None:
        """One guarded epoch over ``(Xm, ym)`` from the current weights, then recorded."""
        with self.guarded_epoch(self.n_epochs + 1, "partial_fit"):
            loss, acc = self.epoch(Xm, ym, steps)
            self.check_diverged(self.n_epochs + 1, loss)
        self.record(loss, acc)

    # -- nothing is lost: divergence and Ctrl-C ---------------------------------------------

    def snapshot(self) -> tuple[Any, ...]:
        """References to the weights and optimizer state, and the shuffling generator's state.
        Optimizers and training steps replace arrays instead of writing into them, so holding
        the references is enough (no copies)."""
        opt, rng = self.optimizer, self.rng
        return (dict(self.network.parameters()), {k: dict(v) for k, v in opt.state.items()},
                opt.t, None if rng is None else rng.bit_generator.state)

    def restore(self, snap: tuple[Any, ...]) -> None:
        params, state, t, rng_state = snap
        self.network.load_parameters(params)
        self.optimizer.state, self.optimizer.t = state, t
        if rng_state is not None:
            self.rng.bit_generator.state = rng_state

    @contextlib.contextmanager
    def guarded_epoch(self, epoch: int, method: str = "fit") -> Any:
        """Run one epoch; if it diverges or is interrupted (Ctrl-C), put the model back to the
        end of the previous epoch before the exception leaves ``fit``/``partial_fit``."""
        snap = self.snapshot()
        try:
            with float_errors_checked_by_caller():
                yield
        except TrainingDivergedError:
            self.restore(snap)
            raise
        except KeyboardInterrupt as exc:
            self.restore(snap)
            exc.add_note(f"rnnx: {self.name}.{method} interrupted in epoch {epoch}; the model "
                         f"keeps the weights and history of the {self.n_epochs} completed "
                         "epoch(s)")
            raise

    def check_diverged(self, epoch: int, loss: float) -> None:
        """Raise :class:`TrainingDivergedError` if the epoch's loss or any weight is not finite
        (one host sync: the weights are checked on their device)."""
        params = self.network.parameters()
        xp = namespace(*params.values())
        known = getattr(self, "_finite", None)
        if known is not None and all(a is b for a, b in zip(known[0], params.values())):
            finite = known[1]  # the compiled epoch checked these very arrays
        else:
            finite = bool(to_numpy(_compiled(self.network, ("finite",),
                                             lambda: executor(xp).compile(_all_finite))(params)))
        ok = math.isfinite(loss) and finite
        if ok:
            return
        what = f"the mean training loss is {loss}" if not math.isfinite(loss) else \
            f"the weights became non-finite (loss {loss:.4g})"
        clip = "turn on gradient clipping (it is off now; try clip_norm=1.0)" \
            if self.clip_norm is None else f"clip harder (clip_norm={self.clip_norm} now)"
        kept = "its initial weights" if self.n_epochs == 0 else \
            f"the weights after epoch {self.n_epochs}, the last finite one"
        raise TrainingDivergedError(
            f"training diverged in epoch {epoch}: {what}. The model keeps {kept}. Lower "
            f"learning_rate ({self.learning_rate} now) or {clip}", epoch=epoch, loss=loss)
