"""``rnnx train``'s held-out part: scored after every epoch (the bar's and ``--log-epochs``'s
figures, the curves of ``--plot``), summarised at the end, and judged against knowing nothing
(:mod:`rnnx.cli._verdict`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models._progress import compact
from ._verdict import classifier_verdict, regressor_verdict

__all__ = ["HeldOut"]


class HeldOut:
    """The held-out part, scored after every epoch (the progress bar's extra figures, the
    curves of ``--plot``) and at the end. One unit per curve: a regressor trains on standardised
    targets, so its training loss is mapped back to the targets' units (x scale**2): MSE, like
    the held-out figure."""

    def __init__(self, model: Any, X: np.ndarray, y: np.ndarray, regression: bool) -> None:
        self.model, self.X, self.y, self.regression = model, X, y, regression
        self.loss: list[float] = []
        self.accuracy: list[float] = []

    def __call__(self, history: dict) -> dict[str, str]:
        if self.regression:
            self.loss.append(self._mse())
            return {"loss": compact(self.raw_loss(history["loss"][-1:])[0]),
                    "held-out MSE": compact(self.loss[-1])}
        proba = np.asarray(self.model.predict_proba(self.X), dtype=np.float64)
        idx = np.searchsorted(self.model.classes_, self.y)
        self.loss.append(
            float(-np.mean(np.log(np.clip(proba[np.arange(idx.size), idx], 1e-300, None)))))
        self.accuracy.append(float(np.mean(proba.argmax(1) == idx)))
        return {"held-out acc": f"{self.accuracy[-1]:.4f}"}

    def _mse(self) -> float:
        pred = np.asarray(self.model.predict(self.X), dtype=np.float64)
        return float(np.mean((pred - self.y) ** 2))

    def raw_loss(self, losses: list[float]) -> list[float]:
        """A regressor's per-epoch training losses in the targets' units: it trains on
        standardised targets, so its MSE is the raw one divided by scale**2 (averaged over
        outputs)."""
        if not self.regression:
            return list(losses)
        scale = self.model.output_head().scale  # (outputs,)
        factor = float(np.mean(np.asarray(scale, dtype=np.float64) ** 2))
        return [v * factor for v in losses]

    def verdict(self, train_loss: float, y_train: np.ndarray, hyper: dict[str, Any]
                ) -> str | None:
        """The warning if the model did no better than knowing nothing (:mod:`._verdict`):
        ``train_loss`` is the kept epoch's training loss as the estimator measured it."""
        if self.regression:
            return regressor_verdict(train_loss, self.y, np.asarray(self.model.predict(self.X)),
                                     hyper)
        accuracy = float(self.model.score(self.X, self.y))
        return classifier_verdict(train_loss, y_train, self.y, accuracy, hyper)

    def history(self) -> dict[str, list[float]]:
        out = {"test_loss": self.loss, "test_accuracy": self.accuracy}
        return {k: v for k, v in out.items() if v}

    def summary(self) -> str:
        if self.regression:
            return (f"held-out MSE: {compact(self._mse())}  (R^2 "
                    f"{self.model.score(self.X, self.y):.4f}; predicting the mean: MSE "
                    f"{compact(float(np.var(self.y)))})")
        return (f"held-out accuracy: {self.model.score(self.X, self.y):.4f} ({self.y.size} "
                "sequences)")
