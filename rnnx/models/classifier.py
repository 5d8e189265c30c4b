"""The sequence classifiers: :class:`RNNClassifier` (any registered cell) and
:class:`ScratchSimpleRNNClassifier` (the Elman network of the from-scratch exercise). The rules
on inputs that every estimator follows are in :mod:`rnnx.models.estimators`."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

from .._backend import device, from_host, host_namespace, namespace, to_numpy
from .._typing import Array, Device
from ..losses import softmax
from ._base import BaseRNN
from ._dask_inputs import is_dask_array
from ._dask_predict import predict_lazy, score_lazy
from ._device import on_model_device
from ._errors import DataConversionWarning
from ._validation import score_y

__all__ = ["RNNClassifier", "ScratchSimpleRNNClassifier"]


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
        Global gradient-norm bound (Pascanu et al. 2013); None or 0 turns clipping off.
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
    best_epoch_ : int or None
        With ``early_stopping`` and a validation split: the epoch of the lowest validation loss,
        whose weights the model keeps (``n_epochs_`` counts every epoch trained); else None.
    """

    _loss = "cross_entropy"

    # The signature and its defaults are this class's own (scikit-learn's pattern: the base
    # takes every hyper-parameter without defaults), so a misspelt keyword names this class.
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

    def _encode_y(self, y_host: Array, *, first: bool, classes: Array | None, Xm: Array,
                  valid: Array | None = None) -> Array:
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
    def partial_fit(self, X: Array, y: Array, classes: Array | None = None, *,
                    lengths: Array | None = None) -> RNNClassifier:
        """One epoch over ``(X, y)`` from the current weights (initialising on the first call,
        where ``classes`` lists every label the model will ever see); ``lengths`` as in
        :meth:`fit`. Returns ``self``."""
        return self._train(X, y, lengths, partial=True, classes=classes)

    def _head(self) -> dict[str, Any]:
        return {"kind": "proba",
                "classes": [c.item() if hasattr(c, "item") else c for c in self.classes_]}

    @on_model_device
    def predict_proba(self, X: Array, *, lengths: Array | None = None) -> Array:
        """Class probabilities ``(n_samples, n_classes)``, columns ordered as ``classes_``, in the
        namespace and on the device of ``X``. ``lengths``: as in :meth:`fit`."""
        if is_dask_array(X):  # a lazy dask array, chunked as X along samples
            return predict_lazy(self, X, "predict_proba", lengths)
        logits, is_array, X = self._forward(X, lengths)
        return self._to_caller(softmax(logits), X, is_array)

    @on_model_device
    def predict(self, X: Array, *, lengths: Array | None = None) -> Array:
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
    def score(self, X: Array, y: Array, *, lengths: Array | None = None) -> float:
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

    #: The cell this classifier always runs (``rnnx train`` picks this class for it).
    fixed_cell: ClassVar[str] = "rnn"

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
        device: Device = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(
            cell=self.fixed_cell, hidden_size=hidden_size, num_layers=num_layers,
            bidirectional=bidirectional, dropout=dropout, forget_bias=0.0,
            nonlinearity=nonlinearity, init=init,
            recurrent_init=recurrent_init, optimizer=optimizer, learning_rate=learning_rate,
            epochs=epochs, batch_size=batch_size, clip_norm=clip_norm,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, tol=tol, random_state=random_state,
            backend=backend, device=device, dtype=dtype,
        )

    @property
    def cell(self) -> str:
        return self.fixed_cell

    @cell.setter
    def cell(self, value: str) -> None:
        if value != self.fixed_cell:
            raise ValueError(f"ScratchSimpleRNNClassifier is the Elman (cell='rnn') classifier; "
                             f"got cell={value!r}. Use RNNClassifier for other cells")
