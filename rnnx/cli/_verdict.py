"""Did ``rnnx train`` learn? After training, the figures are compared with what knowing nothing
scores: a classifier's training loss with the loss of predicting the class frequencies (their
entropy) and its held-out accuracy with always answering the most frequent training class; a
regressor's training loss with predicting the mean (1 on its standardised targets) and its
held-out squared errors with those of predicting the held-out mean. A held-out figure counts as
better only when it is so by 3 standard errors (a run that learned nothing passes by chance
once in 700), so a warning is never a coin toss. A run that does no better gets one warning
line on stderr, in figures, naming what to try, and ``rnnx train`` exits with
:data:`NOT_LEARNED`; its results are still printed, saved and plotted, to look into."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..models._progress import compact

__all__ = ["NOT_LEARNED", "classifier_verdict", "regressor_verdict"]

#: The exit status of a run that trained to the end but did not learn (2 is a bad argument or
#: file, or a divergence, which saves nothing; 130 an interrupt).
NOT_LEARNED = 3
#: A training loss this many times that of knowing nothing: the steps overshoot.
_EXPLODED = 10.0
#: Standard errors by which a held-out figure must beat knowing nothing (one-sided 99.87 %).
_SIGMAS = 3.0


def classifier_verdict(train_loss: float, y_train: np.ndarray, y_held: np.ndarray,
                       accuracy: float, hyper: dict[str, Any]) -> str | None:
    """The warning for a classifier that did not learn, or None. ``train_loss`` is the mean
    cross-entropy of the epoch the model keeps; ``accuracy`` its held-out accuracy on
    ``y_held``. Chance is always answering the most frequent training class; its accuracy
    ``p0`` on ``n`` held-out labels has a standard error ``sqrt(p0 (1 - p0) / n)``."""
    classes, counts = np.unique(y_train, return_counts=True)
    freq = counts / counts.sum()
    chance_loss = float(-(freq * np.log(freq)).sum())
    majority = classes[np.argmax(counts)]
    p0 = float(np.mean(y_held == majority))
    bar = p0 + _SIGMAS * math.sqrt(p0 * (1 - p0) / y_held.size)
    loss_ok, acc_ok = train_loss < chance_loss, accuracy > bar
    if loss_ok and acc_ok:
        return None
    base = f"{compact(chance_loss)}, the loss of predicting the class frequencies"
    if train_loss >= _EXPLODED * chance_loss:
        return (f"training failed: the final training loss {compact(train_loss)} is far above "
                f"{base}: the steps overshoot. {_overshoot(hyper)}")
    held = (f"the held-out accuracy {accuracy:.4f} is not {_SIGMAS:g} standard errors above "
            f"chance ({p0:.4f}, always answering class {majority}; the bar: {bar:.4f})")
    if acc_ok:
        return (f"the model did not learn: the final training loss {compact(train_loss)} is not "
                f"below {base}. {_try(hyper)}")
    if train_loss < 0.5 * chance_loss:
        return (f"the model did not generalise: the training loss fell to "
                f"{compact(train_loss)} (knowing nothing: {compact(chance_loss)}), but {held}. "
                "It fits the training sequences by a rule that does not carry over: try "
                f"--early-stopping, fewer --epochs ({hyper['epochs']} now) or another --cell "
                f"({hyper['cell']} now)")
    return (f"the model did not learn: {held}; the final training loss is "
            f"{compact(train_loss)} against {base}. {_try(hyper)}")


def regressor_verdict(train_loss: float, y_held: np.ndarray, pred: np.ndarray,
                      hyper: dict[str, Any]) -> str | None:
    """The warning for a regressor that did not learn, or None. ``train_loss`` is the mean
    training loss of the kept epoch on the standardised targets (predicting the mean scores
    1); ``pred`` the held-out predictions of ``y_held``. Each held-out sample's squared error
    is paired with that of the held-out mean: the model must beat it on average by 3 standard
    errors of the paired differences."""
    y = np.asarray(y_held, dtype=np.float64).reshape(y_held.shape[0], -1)
    p = np.asarray(pred, dtype=np.float64).reshape(y.shape)
    diff = ((p - y) ** 2 - (y - y.mean(axis=0)) ** 2).mean(axis=1)  # (n,)
    mse, var = float(np.mean((p - y) ** 2)), float(np.mean(y.var(axis=0)))
    better = -diff.mean() > _SIGMAS * diff.std(ddof=1) / math.sqrt(diff.size)
    if train_loss < 1.0 and better:
        return None
    if train_loss >= _EXPLODED:
        return (f"training failed: the final training loss {compact(train_loss)} (standardised "
                "targets) is far above 1, the loss of predicting the mean: the steps overshoot. "
                f"{_overshoot(hyper)}")
    return (f"the model did not learn: its held-out MSE {compact(mse)} is not below "
            f"{compact(var)}, that of predicting the mean, by {_SIGMAS:g} standard errors "
            f"(R^2 {1 - mse / var:.4f}). {_try(hyper)}")


def _overshoot(hyper: dict[str, Any]) -> str:
    lr, clip = hyper["learning_rate"], hyper["clip_norm"]
    how = ("turn on clipping (--clip 0 turns it off now; try --clip 1)" if not clip
           else f"clip harder (--clip {clip:g} now; try --clip {clip / 5:g})")
    return f"Try a lower --lr ({lr:g} now; try --lr {lr / 10:g}) or {how}"


def _try(hyper: dict[str, Any]) -> str:
    gated = "" if hyper["cell"] != "rnn" else (
        ", or a gated cell, which carries information over long sequences (--cell gru or "
        "--cell lstm)")
    return (f"Try more --epochs ({hyper['epochs']} now), another --lr "
            f"({hyper['learning_rate']:g} now){gated}; --plot FILE draws the curves")
