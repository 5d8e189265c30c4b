"""The sequence regressor :class:`RNNRegressor`. The rules on inputs that every estimator
follows are in :mod:`rnnx.models.estimators`."""

from __future__ import annotations

from typing import Any

from .._backend import device, from_host, host_namespace, namespace, to_numpy
from .._typing import Array, Device
from ._base import BaseRNN
from ._dask_inputs import is_dask_array
from ._dask_predict import predict_lazy, score_lazy
from ._device import on_model_device
from ._validation import host_lengths, score_y

__all__ = ["RNNRegressor"]


class RNNRegressor(BaseRNN):
    """Sequence regressor: recurrent layer -> dense -> mean squared error.

    Parameters are those of :class:`RNNClassifier`, plus ``sequence_output``: False (default)
    predicts one value (or vector) per sequence from the final state, ``y`` being
    ``(n_samples,)`` or ``(n_samples, outputs)``; True predicts at every step (many-to-many),
    ``y`` being ``(n_samples, time)`` or ``(n_samples, time, outputs)``. Targets are standardised
    internally (mean 0, variance 1 per output) and predictions mapped back. Predictions are in the
    namespace and on the device of ``X``, shaped like ``y``. The input dtype rule, divergence
    (:class:`TrainingDivergedError`) and Ctrl-C behave as for :class:`RNNClassifier`.
    """

    _loss = "mse"

    def __init__(
        self,
        *,
        cell: str = "rnn",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        forget_bias: float = 0.0,
        nonlinearity: str = "tanh",
        init: str = "xavier",
        recurrent_init: str = "orthogonal",
        optimizer: str = "adam",
        learning_rate: float = 0.005,
        epochs: int = 40,
        batch_size: int = 32,
        clip_norm: float | None = 5.0,
        early_stopping: bool = False,
        validation_fraction: float | None = None,
        n_iter_no_change: int = 5,
        tol: float = 1e-4,
        random_state: int | None = None,
        backend: str | None = None,
        device: Device = None,
        dtype: str | None = None,
        sequence_output: bool = False,
    ) -> None:
        super().__init__(
            cell=cell, hidden_size=hidden_size, num_layers=num_layers,
            bidirectional=bidirectional, dropout=dropout, forget_bias=forget_bias,
            nonlinearity=nonlinearity, init=init,
            recurrent_init=recurrent_init, optimizer=optimizer, learning_rate=learning_rate,
            epochs=epochs, batch_size=batch_size, clip_norm=clip_norm,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, tol=tol, random_state=random_state,
            backend=backend, device=device, dtype=dtype,
        )
        self.sequence_output = sequence_output

    def _sequence_output(self) -> bool:
        return bool(self.sequence_output)

    def _encode_y(self, y_host: Array, *, first: bool, classes: Array | None, Xm: Array,
                  valid: Array | None = None) -> Array:
        hnp = host_namespace()
        try:
            y = hnp.asarray(y_host, dtype=hnp.float64)
        except (TypeError, ValueError):
            raise ValueError(f"Unknown label type: y must be numeric regression targets; got "
                             f"dtype {y_host.dtype}") from None
        if not bool(hnp.all(hnp.isfinite(y))):
            raise ValueError(f"Input y contains NaN or inf ({int(hnp.sum(~hnp.isfinite(y)))} "
                             f"non-finite of {y.size} values); expected finite targets")
        lead = 2 if self.sequence_output else 1
        if y.ndim not in (lead, lead + 1):
            what = "(n_samples, time[, outputs])" if lead == 2 else "(n_samples[, outputs])"
            raise ValueError(f"y must have shape {what}; got shape {y.shape}")
        if self.sequence_output and y.shape[1] != Xm.shape[1]:
            raise ValueError(f"with sequence_output=True, y must have X's {Xm.shape[1]} time steps; "
                             f"got y of shape {y.shape}")
        y_nd = y if y.ndim == lead + 1 else y[..., None]
        if first:
            self._y_ndim = y.ndim
            flat = hnp.reshape(y_nd, (-1, y_nd.shape[-1]))  # (N[*T], O)
            if valid is not None and self.sequence_output:
                # Padded steps' targets are not data: they must not move the scaling.
                flat = flat[hnp.reshape(valid, (-1,))]  # (valid steps, O)
                if flat.shape[0] == 0:
                    raise ValueError("lengths leave no valid step in X: there is no target to "
                                     "learn from (every length is 0 / the mask is all False)")
            mean = hnp.mean(flat, axis=0)
            scale = hnp.std(flat, axis=0)
            scale = hnp.where(scale > 0, scale, 1.0)  # a constant target: no scaling
            self._y_mean, self._y_scale = mean, scale
            self._n_outputs = int(y_nd.shape[-1])
        elif y_nd.shape[-1] != self._n_outputs:
            raise ValueError(f"y must have {self._n_outputs} output(s) per sample, as when first "
                             f"fitted; got shape {y.shape}")
        z = (y_nd - self._y_mean) / self._y_scale
        xp = namespace(Xm)
        return from_host(z, xp=xp, device=device(Xm), dtype=Xm.dtype)

    @on_model_device
    def partial_fit(self, X: Array, y: Array, *, lengths: Array | None = None) -> RNNRegressor:
        """One epoch over ``(X, y)`` from the current weights (initialising on the first call);
        ``lengths`` as in :meth:`fit`. Returns ``self``."""
        return self._train(X, y, lengths, partial=True)

    def _head(self) -> dict[str, Any]:
        lead = 2 if self.sequence_output else 1
        return {"kind": "regression", "mean": self._y_mean, "scale": self._y_scale,
                "squeeze": self._y_ndim == lead}

    @on_model_device
    def predict(self, X: Array, *, lengths: Array | None = None) -> Array:
        """Predictions shaped like the training ``y`` (``(n_samples,)``, ``(n_samples, outputs)``
        or with a time axis for ``sequence_output``), in ``X``'s namespace, on its device.
        ``lengths``: as in :meth:`fit` (with ``sequence_output``, padded steps predict the
        targets' mean and mean nothing)."""
        if is_dask_array(X):  # a lazy dask array, chunked as X along samples
            return predict_lazy(self, X, "predict", lengths)
        out, is_array, X = self._forward(X, lengths)
        xp = namespace(out)
        mean = from_host(self._y_mean, xp=xp, device=device(out), dtype=out.dtype)
        scale = from_host(self._y_scale, xp=xp, device=device(out), dtype=out.dtype)
        pred = out * scale + mean  # (N, O) or (N, T, O)
        lead = 2 if self.sequence_output else 1
        if self._y_ndim == lead:
            pred = pred[..., 0]
        return self._to_caller(pred, X, is_array)

    @on_model_device
    def score(self, X: Array, y: Array, *, lengths: Array | None = None) -> float:
        """Coefficient of determination R² of :meth:`predict` (averaged over outputs).
        ``lengths``: as in :meth:`fit`; with ``sequence_output`` only valid steps count. Dask
        ``X`` and ``y``: scored on the cluster (:func:`rnnx.models._dask_predict.score_lazy`)."""
        if is_dask_array(X) or is_dask_array(y):
            return score_lazy(self, X, y, lengths)
        pred = to_numpy(self.predict(X, lengths=lengths)).astype("float64")
        y_host = score_y(X, y, pred.shape[0])
        try:
            y_host = y_host.astype("float64")
        except (TypeError, ValueError):
            raise ValueError(f"y must be numeric regression targets; got dtype {y_host.dtype}") \
                from None
        if not bool(host_namespace().all(host_namespace().isfinite(y_host))):
            raise ValueError("Input y contains NaN or inf; expected finite values")
        if y_host.size != pred.size:
            raise ValueError(f"y must have the shape of the predictions {pred.shape}; got shape "
                             f"{y_host.shape}")
        y_host = y_host.reshape(pred.shape)
        flat_p = pred.reshape(pred.shape[0] * (pred.shape[1] if self.sequence_output else 1), -1)
        flat_y = y_host.reshape(flat_p.shape)
        if lengths is not None and self.sequence_output:
            keep = host_lengths(lengths, pred.shape[0], pred.shape[1])
            if keep.dtype.kind != "b":
                keep = host_namespace().arange(pred.shape[1])[None, :] < keep[:, None]  # (N, T)
            keep = keep.reshape(-1)  # (N*T,)
            flat_p, flat_y = flat_p[keep], flat_y[keep]
        ss_res = ((flat_y - flat_p) ** 2).sum(axis=0)
        ss_tot = ((flat_y - flat_y.mean(axis=0)) ** 2).sum(axis=0)
        r2 = 1.0 - ss_res / ss_tot.clip(min=1e-300)
        return float(r2.mean())

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import RegressorTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags()
        tags.target_tags.multi_output = True
        return tags
