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
import math
from collections.abc import Callable
from typing import Any

from .._backend import HostGenerator, device, float_errors_checked_by_caller, from_host, namespace, to_numpy
from .._typing import Array
from ..optim import Optimizer
from ._errors import TrainingDivergedError
from .network import SequenceNetwork

__all__ = ["Trainer", "eval_forward", "train_mode"]


def train_mode(network: SequenceNetwork, mode: bool) -> None:
    """Dropout on (training) or off (prediction)."""
    network.recurrent.train(mode)


def eval_forward(network: SequenceNetwork, Xm: Array, steps: Array | None) -> Array:
    """Outputs of ``network`` in evaluation mode (no dropout), the mode restored after."""
    was = network.recurrent.training
    train_mode(network, False)
    try:
        return network.forward(Xm, steps=steps)
    finally:
        train_mode(network, was)


class Trainer:
    """Trains ``network`` with ``optimizer``, shuffling with ``rng`` (a NumPy ``HostGenerator``;
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
        perm = from_host(self.rng.permutation(n), xp=xp, device=device(Xm))
        Xs, ys = xp.take(Xm, perm, axis=0), xp.take(ym, perm, axis=0)
        Ss = None if steps is None else xp.take(steps, perm, axis=0)
        loss_sum = correct = None
        train_mode(self.network, True)
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
        xp = namespace(*self.network.parameters().values())
        finite = [xp.all(xp.isfinite(p)) for p in self.network.parameters().values()]
        ok = math.isfinite(loss) and bool(to_numpy(xp.all(xp.stack(finite))))
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
