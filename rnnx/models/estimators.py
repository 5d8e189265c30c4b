"""scikit-learn style estimators around :class:`~rnnx.models.network.SequenceNetwork`.

scikit-learn is not imported here: the estimator contract (``get_params``/``set_params``, a
constructor that only stores its arguments, ``fit`` returning ``self``, fitted attributes ending
in ``_``) is implemented directly, and ``__sklearn_tags__`` imports scikit-learn's tag classes
only when scikit-learn itself asks for them.

Everything follows ``X``
------------------------
``X`` from any Array API namespace (NumPy, PyTorch, CuPy, array-api-strict) trains in that
namespace, on its device; the fitted parameters stay there, and ``predict``/``predict_proba``
return results in the namespace and on the device of the ``X`` they are given. ``backend=`` (and
``device=``) move the data to a chosen backend instead, e.g. NumPy data trained with CuPy;
results still come back in the caller's namespace. Inputs that are not arrays (lists, pandas
frames) are read as NumPy arrays.

Input dtypes (the casting rule)
------------------------------
float32 and float64 ``X`` train in their own dtype (unless ``dtype=`` says otherwise). Integer
and bool ``X`` are cast explicitly to the model dtype (float64 by default) -- but only where the
cast is exact: integers beyond +-2**24 (float32) or +-2**53 (float64) are refused with a
``ValueError``. Complex ``X`` is refused (``ValueError``: there is no real model of it), and so
are float16/bfloat16 (``TypeError``: rnnx computes in float32/float64 and does not upcast
half precision behind the caller's back; ``X.astype(float32)`` is exact) and non-numeric
(string) arrays. At prediction time ``X`` is cast to the model's dtype. NaN or inf in ``X``
or ``y`` is refused. When ``X`` and ``y`` are both arrays they must come from one library and
sit on one device (a Python list ``y`` is always accepted).

Variable lengths
----------------
``fit``, ``partial_fit``, ``predict``, ``predict_proba`` and ``score`` take ``lengths=``: integer
lengths ``(n_samples,)`` (right padding) or a boolean step mask ``(n_samples, time)`` (padding on
either side), from any library or device (checked on the host, then moved to the model's device).
Padded steps never reach the state or the loss; mini-batches and the validation split take the
same rows of ``lengths`` as of ``X``.

Dask arrays
-----------
With the ``rnnx[dask]`` extra, ``fit`` takes dask ``X`` and ``y`` chunked alike along samples
only and trains data-parallel on the current ``dask.distributed`` client, equal to the
in-memory fit up to the order of floating-point sums; ``predict``/``predict_proba`` on a dask
``X`` return lazy dask arrays and ``score`` reduces on the cluster (:mod:`rnnx.models._dask`,
:mod:`rnnx.models._dask_predict`, docs/dask.md). ``lengths`` (a dask array chunked like ``X``),
a validation split, early stopping, dropout and ``partial_fit`` work there as in memory, with
equal results.

Shapes
------
``X`` is ``(n_samples, time, features)``; a 2-D ``X`` is a batch of univariate sequences
``(n_samples, time)``. ``n_features_in_`` follows scikit-learn: the number of columns of a 2-D
``X`` (so its time steps) or the per-step features of a 3-D ``X``. A model fitted on 2-D data
predicts on 2-D data with the same number of columns; one fitted on 3-D data accepts any
sequence length with the same number of features.
"""

from __future__ import annotations

import warnings
from typing import Any

from .._backend import device, from_host, host_namespace, namespace, to_numpy
from ..losses import softmax
from ._base import BaseRNN
from ._dask_inputs import is_dask_array
from ._dask_predict import predict_lazy, score_lazy
from ._device import on_model_device
from ._errors import ClusterLostError, DataConversionWarning, NotFittedError, TrainingDivergedError
from ._validation import host_lengths, score_y

__all__ = ["ClusterLostError", "DataConversionWarning", "NotFittedError", "RNNClassifier", "RNNRegressor",
           "ScratchSimpleRNNClassifier", "TrainingDivergedError"]


class RNNClassifier(BaseRNN):
    """Sequence classifier: recurrent layer -> last hidden state -> dense -> softmax.

    Parameters
    ----------
    cell : str
        Recurrent cell (a key of :data:`rnnx.functional.registry.CELLS`: ``"rnn"`` is Elman,
        ``"lstm"``, ``"gru"``, ``"gru_reset_before"`` the reset-before GRU, ``"ln_lstm"`` the
        layer-normalised LSTM).
    hidden_size : int
        Size of the recurrent state.
    nonlinearity : {"tanh", "relu"}
        Elman activation (other cells take only ``"tanh"``).
    init, recurrent_init : str
        Initialisers (:mod:`rnnx.init`) of the input and recurrent weights.
    optimizer : {"sgd", "momentum", "adagrad", "rmsprop", "adam"}
    learning_rate : float
    epochs : int
        Passes over the training data in :meth:`fit`.
    batch_size : int
    clip_norm : float or None
        Global gradient-norm bound (Pascanu et al. 2013); None turns clipping off.
    early_stopping : bool
        Stop when the watched loss (validation loss if there is a split, else training loss)
        has not improved by ``tol`` for ``n_iter_no_change`` epochs; with a split, the best
        weights are restored.
    validation_fraction : float or None
        Held-out share of the training data scored after every epoch (``history_["val_*"]``);
        0.1 by default when ``early_stopping`` is on.
    n_iter_no_change : int
    tol : float
    random_state : int or None
        Seeds the initial weights (bit-identical on every backend), the shuffling and the split.
    backend, device : str, device, optional
        Train there instead of where ``X`` lives.
    dtype : {"float32", "float64"} or None
        None keeps a float ``X``'s dtype (float64 for integer and bool ``X``, which are cast
        only where the cast is exact); complex and float16 ``X`` are refused (see the module
        docstring, "Input dtypes").

    Attributes
    ----------
    classes_ : numpy array (n_classes,)
    n_features_in_ : int
    network_ : SequenceNetwork
        Its parameters live on the training backend and device.
    history_ : dict of lists
        ``loss`` and ``accuracy`` per epoch (measured on the mini-batches while training), and
        ``val_loss``/``val_accuracy`` with a validation split.
    n_epochs_ : int
    """

    _loss = "cross_entropy"

    # Spelled out (not inherited) so that a misspelt keyword names this class, not the
    # private base: "RNNClassifier.__init__() got an unexpected keyword argument ...".
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
        device: Any = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(
            cell=cell, hidden_size=hidden_size, num_layers=num_layers,
            bidirectional=bidirectional, dropout=dropout, forget_bias=forget_bias,
            nonlinearity=nonlinearity, init=init, recurrent_init=recurrent_init,
            optimizer=optimizer, learning_rate=learning_rate, epochs=epochs,
            batch_size=batch_size, clip_norm=clip_norm, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change, tol=tol,
            random_state=random_state, backend=backend, device=device, dtype=dtype,
        )

    def _encode_y(self, y_host: Any, *, first: bool, classes: Any, Xm: Any,
                  valid: Any = None) -> Any:
        hnp = host_namespace()
        if y_host.ndim == 2 and y_host.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                          "change the shape of y to (n_samples,), for example using ravel().",
                          DataConversionWarning, stacklevel=4)
            y_host = hnp.reshape(y_host, (-1,))
        if y_host.ndim != 1:
            raise ValueError(f"y must be 1-D class labels (n_samples,); got shape {y_host.shape}")
        if y_host.dtype.kind == "f":
            if not bool(hnp.all(hnp.isfinite(y_host))):
                raise ValueError("Input y contains NaN or inf; expected finite class labels")
            if bool(hnp.any(y_host != hnp.round(y_host))):
                raise ValueError("Unknown label type: 'continuous' (y holds non-integer floats); "
                                 "use RNNRegressor for regression targets")
        if first:
            labels = classes if classes is not None else y_host
            self.classes_ = hnp.unique_values(hnp.asarray(labels))
            if classes is None and self.classes_.shape[0] < 2:
                raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in "
                                 f"y; got 1 class: {self.classes_.tolist()}")
            self._n_outputs = int(self.classes_.shape[0])
        idx = hnp.searchsorted(self.classes_, y_host)
        idx_c = hnp.clip(idx, 0, self.classes_.shape[0] - 1)
        if bool(hnp.any(self.classes_[idx_c] != y_host)):
            bad = hnp.unique_values(y_host[self.classes_[idx_c] != y_host])
            raise ValueError(f"y holds label(s) {bad.tolist()[:5]} not in classes_ "
                             f"{self.classes_.tolist()}" + ("" if first else
                                                            " (set by the first partial_fit)"))
        xp = namespace(Xm)
        return from_host(hnp.astype(idx_c, hnp.int64), xp=xp, device=device(Xm))

    @on_model_device
    def partial_fit(self, X: Any, y: Any, classes: Any = None, *,
                    lengths: Any = None) -> RNNClassifier:
        """One epoch over ``(X, y)`` from the current weights (initialising on the first call,
        where ``classes`` lists every label the model will ever see); ``lengths`` as in
        :meth:`fit`. Returns ``self``."""
        return self._partial_fit(X, y, classes, lengths)

    @on_model_device
    def predict_proba(self, X: Any, *, lengths: Any = None) -> Any:
        """Class probabilities ``(n_samples, n_classes)``, columns ordered as ``classes_``, in the
        namespace and on the device of ``X``. ``lengths``: as in :meth:`fit`."""
        if is_dask_array(X):  # a lazy dask array, chunked as X along samples
            return predict_lazy(self, X, "predict_proba", lengths)
        logits, is_array, X = self._forward(X, lengths)
        return self._to_caller(softmax(logits), X, is_array)

    @on_model_device
    def predict(self, X: Any, *, lengths: Any = None) -> Any:
        """Labels ``(n_samples,)`` from ``classes_``: in ``X``'s namespace and on its device when
        the labels are numbers, a NumPy array otherwise (strings cannot live on a device).
        ``lengths``: as in :meth:`fit`."""
        if is_dask_array(X):  # a lazy dask array, chunked as X along samples
            return predict_lazy(self, X, "predict", lengths)
        logits, is_array, X = self._forward(X, lengths)
        xp = namespace(logits)
        idx = to_numpy(xp.argmax(logits, axis=-1))
        labels = self.classes_[idx]
        if not is_array or labels.dtype.kind not in "biuf":
            return labels
        return from_host(labels, xp=namespace(X), device=device(X))

    @on_model_device
    def score(self, X: Any, y: Any, *, lengths: Any = None) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)`` (a Python float). Labels outside
        ``classes_`` are refused (``ValueError``): the model could never predict them.
        ``lengths``: as in :meth:`fit`. Dask ``X`` and ``y``: scored on the cluster, lazily
        chunk by chunk (:func:`rnnx.models._dask_predict.score_lazy`)."""
        if is_dask_array(X) or is_dask_array(y):
            return score_lazy(self, X, y, lengths)
        pred = to_numpy(self.predict(X, lengths=lengths))
        y_host = score_y(X, y, pred.shape[0])
        if y_host.ndim == 2 and y_host.shape[1] == 1:
            y_host = y_host.reshape(-1)
        if y_host.ndim != 1:
            raise ValueError(f"y must be 1-D class labels (n_samples,); got shape {y_host.shape}")
        hnp = host_namespace()
        kinds = (y_host.dtype.kind, self.classes_.dtype.kind)
        comparable = kinds[0] == kinds[1] or set(kinds) <= set("biuf") or set(kinds) <= set("OUS")
        unseen = hnp.unique_values(y_host[~hnp.isin(y_host, self.classes_)] if comparable
                                   else y_host)
        if unseen.shape[0]:
            raise ValueError(f"y holds label(s) {unseen.tolist()[:5]} not in classes_ "
                             f"{self.classes_.tolist()}: the model can never predict them, so "
                             "the accuracy would be meaningless")
        return float((pred == y_host).mean())

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        return tags


class ScratchSimpleRNNClassifier(RNNClassifier):
    """The Elman-network classifier of the from-scratch RNN exercise, trained with hand-derived
    BPTT on any backend.

    ``h_t = tanh(x_t W_x + h_{t-1} W_h + b)`` over the sequence, then ``softmax(h_T W + c)``,
    trained on cross-entropy with mini-batch Adam and gradient clipping. It is
    :class:`RNNClassifier` with ``cell="rnn"`` fixed; every other parameter is the same::

        >>> from rnnx.datasets import load_digits_sequences
        >>> from rnnx.models import ScratchSimpleRNNClassifier
        >>> X, y = load_digits_sequences()              # (1797, 8, 8), 10 classes
        >>> clf = ScratchSimpleRNNClassifier(random_state=0).fit(X[:1400], y[:1400])
        >>> clf.score(X[1400:], y[1400:])  # doctest: +SKIP
    """

    _cell_fixed = "rnn"

    def __init__(
        self,
        *,
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
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
        device: Any = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(
            hidden_size=hidden_size, num_layers=num_layers, bidirectional=bidirectional,
            dropout=dropout, nonlinearity=nonlinearity, init=init,
            recurrent_init=recurrent_init, optimizer=optimizer, learning_rate=learning_rate,
            epochs=epochs, batch_size=batch_size, clip_norm=clip_norm,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, tol=tol, random_state=random_state,
            backend=backend, device=device, dtype=dtype,
        )

    @property
    def cell(self) -> str:
        return "rnn"

    @cell.setter
    def cell(self, value: str) -> None:
        if value != "rnn":
            raise ValueError(f"ScratchSimpleRNNClassifier is the Elman (cell='rnn') classifier; "
                             f"got cell={value!r}. Use RNNClassifier for other cells")


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
        device: Any = None,
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

    def _encode_y(self, y_host: Any, *, first: bool, classes: Any, Xm: Any,
                  valid: Any = None) -> Any:
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
    def partial_fit(self, X: Any, y: Any, *, lengths: Any = None) -> RNNRegressor:
        """One epoch over ``(X, y)`` from the current weights (initialising on the first call);
        ``lengths`` as in :meth:`fit`. Returns ``self``."""
        return self._partial_fit(X, y, None, lengths)

    @on_model_device
    def predict(self, X: Any, *, lengths: Any = None) -> Any:
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
    def score(self, X: Any, y: Any, *, lengths: Any = None) -> float:
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
