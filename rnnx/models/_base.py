"""The estimators' common base, :class:`BaseRNN`: it stores the hyper-parameters (the public
classes spell them and their defaults, :mod:`rnnx.models.estimators`), places the model
(backend, device, dtype: :class:`~rnnx.models._placement.Placement`), prepares ``(X, y,
lengths)`` and trains through the one fit skeleton (:meth:`BaseRNN._train`), whose data are in
memory (:class:`InMemory`) or dask arrays (:class:`rnnx.models._dask.DaskData`).

The public estimators and the user-facing rules on inputs are in
:mod:`rnnx.models.estimators`.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._backend import HostGenerator, host_rng, to_numpy
from .._typing import Array, Device
from ..optim import make_optimizer
from ._constraints import PARAMETER_CONSTRAINTS, check_cell_options, validate
from ._dask_inputs import is_dask_array
from ._device import on_model_device
from ._errors import not_fitted_error_class
from ._params import Params
from ._placement import Placement
from ._progress import EpochBar
from ._training import Trainer, eval_forward
from ._validation import check_finite, read_array, same_library, sequences
from .network import SequenceNetwork

__all__ = ["BaseRNN", "InMemory", "OutputHead"]


@dataclass(frozen=True)
class OutputHead:
    """How a fitted estimator turns its network's outputs into predictions (what an exporter
    writes after the network, :func:`rnnx.interop.to_onnx`; :meth:`BaseRNN.output_head`).

    ``kind`` is ``"proba"`` (a classifier: softmax over ``classes``) or ``"regression"`` (the
    outputs times ``scale`` plus ``mean``, host arrays ``(outputs,)``, with the output axis
    dropped when ``squeeze``: ``y`` was fitted without one); ``univariate``: fitted on 2-D
    ``X`` ``(n_samples, time)``."""

    network: SequenceNetwork
    kind: str
    univariate: bool
    classes: list | None = None
    mean: Array | None = None
    scale: Array | None = None
    squeeze: bool = False


class InMemory:
    """The data of a fit on in-memory arrays: ``(Xm, ym, steps)`` checked and on the model's
    device, trained by :class:`Trainer` (the dask counterpart: ``_dask.DaskData``)."""

    trainer = Trainer

    def __init__(self, est: BaseRNN, X: Array, y: Array, lengths: Array | None, *,
                 first: bool, classes: Array | None) -> None:
        self.args = est._prepare(X, y, first=first, classes=classes, lengths=lengths)[:3]
        self.features = int(self.args[0].shape[2])

    def bind(self, est: BaseRNN) -> None:
        """Nothing to do once the network exists (the dask data send its shape to workers)."""

    def release(self) -> None:
        """Nothing to release (the dask data drop their shards from the cluster)."""


class BaseRNN(Placement, Params):
    """Hyper-parameters (stored, never checked, by the constructor: scikit-learn's contract),
    placement, input preparation and the fit skeleton of :class:`RNNClassifier` and
    :class:`RNNRegressor`. Its constructor has no defaults: each public class spells its
    signature and defaults once."""

    _loss = "cross_entropy"

    def __init__(self, *, cell: str, hidden_size: int, num_layers: int, bidirectional: bool,
                 dropout: float, forget_bias: float, nonlinearity: str, init: str,
                 recurrent_init: str, optimizer: str, learning_rate: float, epochs: int,
                 batch_size: int, clip_norm: float | None, early_stopping: bool,
                 validation_fraction: float | None, n_iter_no_change: int, tol: float,
                 random_state: int | None, backend: str | None, device: Device,
                 dtype: str | None) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.forget_bias = forget_bias
        self.nonlinearity = nonlinearity
        self.init = init
        self.recurrent_init = recurrent_init
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.backend = backend
        self.device = device
        self.dtype = dtype

    # -- parameter checks (at fit time: the constructor only stores) -----------------------

    def _check_hyper(self) -> None:
        """Check the hyper-parameters against :data:`PARAMETER_CONSTRAINTS`, then the options
        that depend on the cell (``ValueError`` naming the parameter and the value)."""
        validate({name: getattr(self, name) for name in PARAMETER_CONSTRAINTS},
                 PARAMETER_CONSTRAINTS)
        check_cell_options(self.cell, {"forget_bias": self.forget_bias,
                                       "nonlinearity": self.nonlinearity})

    def _warn_inert_dropout(self, stacklevel: int) -> None:
        """Warn, as torch does, when ``dropout`` cannot act: it drops between stacked layers, so
        with one layer it changes nothing. ``stacklevel`` counts the frames up to the caller of
        ``fit``/``partial_fit``."""
        if self.dropout and self.num_layers == 1:
            warnings.warn(f"dropout={self.dropout!r} adds dropout after all but the last "
                          "recurrent layer, so non-zero dropout expects num_layers greater than "
                          "1; with num_layers=1 it changes nothing", UserWarning,
                          stacklevel=stacklevel)

    def _network_options(self) -> dict[str, Any]:
        """The recurrent layer's options, as :class:`SequenceNetwork` takes them (``fit`` and
        :func:`rnnx.models.load_model` build the network from these alone)."""
        opts = dict(cell=self.cell, nonlinearity=self.nonlinearity,
                    init=self.init, recurrent_init=self.recurrent_init,
                    num_layers=self.num_layers, bidirectional=self.bidirectional,
                    dropout=float(self.dropout))
        if self.forget_bias:
            opts["forget_bias"] = float(self.forget_bias)
        return opts

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            sk = sys.modules.get("sklearn.exceptions")
            raise not_fitted_error_class(getattr(sk, "NotFittedError", None))(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    # -- what other modules may read -------------------------------------------------------

    def output_head(self) -> OutputHead:
        """How this fitted estimator turns its network's outputs into predictions
        (:class:`OutputHead`; :func:`rnnx.interop.to_onnx` writes it after the network)."""
        self._check_fitted()
        return OutputHead(network=self.network_, univariate=int(self._fit_ndim) == 2,
                          **self._head())

    def _head(self) -> dict[str, Any]:
        raise NotImplementedError  # each estimator says how its outputs become predictions

    def encode(self, X: Array, y: Array, *, lengths: Array | None = None
               ) -> tuple[Array, Array, Array | None]:
        """``(X, y, lengths)`` as this fitted estimator's network trains on them: ``X``
        ``(n_samples, time, features)`` on the model's backend and device in its dtype, ``y``
        encoded (class indices, or standardised targets), ``lengths`` as a boolean step mask
        ``(n_samples, time)`` there (or None). Checked as ``partial_fit`` checks them."""
        self._check_fitted()
        return self._prepare(X, y, first=False, lengths=lengths)[:3]

    # -- training ---------------------------------------------------------------------------

    def _new_network(self, features: int, outputs: int, rng: HostGenerator) -> None:
        self.network_ = SequenceNetwork(
            features, self.hidden_size, outputs, loss=self._loss,
            sequence_output=self._sequence_output(), seed=int(rng.integers(0, 2**63 - 1)),
            backend=self._backend_name, device=self._device, dtype=self._dtype_name,
            **self._network_options(),
        )
        self._optim = make_optimizer(self.optimizer, self.learning_rate)
        self.history_: dict[str, list[float]] = {"loss": []}
        if self._loss == "cross_entropy":
            self.history_["accuracy"] = []
        self.n_epochs_ = 0

    def _sequence_output(self) -> bool:
        return False

    def _prepare(self, X: Array, y: Array, *, first: bool, classes: Array | None = None,
                 lengths: Array | None = None) -> tuple[Array, Array, Array | None, bool]:
        self._check_hyper()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None")
        X, is_array = read_array(X, "X")
        y, y_is_array = read_array(y, "y")
        if is_array and y_is_array:
            same_library({"X": X, "y": y})
        if first:
            # from the caller: fit/partial_fit's device scope, fit, _train, InMemory, here
            self._warn_inert_dropout(stacklevel=7)
            sequences(X)  # shape errors before any transfer
            Xm = sequences(self._place_fit_X(X))
            self._fit_ndim = X.ndim
            self.n_features_in_ = int(X.shape[1] if X.ndim == 2 else X.shape[2])
        else:
            self._check_predict_X(X)
            Xm = sequences(self._to_model(X))
        check_finite(Xm, "X")
        y_host = to_numpy(y)
        if y_host.ndim == 0:
            raise ValueError(f"y must have one entry per sample of X ({Xm.shape[0]}); got a "
                             "scalar")
        if y_host.shape[0] != Xm.shape[0]:
            raise ValueError(f"X and y have inconsistent numbers of samples: X has {Xm.shape[0]}, "
                             f"y has {y_host.shape[0]}")
        steps = self._model_steps(lengths, Xm)
        ym = self._encode_y(y_host, first=first, classes=classes, Xm=Xm,
                            valid=self._host_step_mask(lengths, Xm))
        return Xm, ym, steps, is_array

    @on_model_device
    def fit(self, X: Array, y: Array, *, lengths: Array | None = None,
            callback: Callable[[int, dict], Any] | None = None,
            progress: bool | None = None) -> Any:
        """Train from freshly initialised weights for ``epochs`` passes (fewer with early
        stopping).

        Parameters
        ----------
        X : array (n_samples, time, features) or (n_samples, time)
            Any Array API namespace; training runs there (or on ``backend``/``device``). A
            dask array (with a dask ``y``, and dask ``lengths`` chunked alike) trains
            data-parallel on the current dask.distributed client, each step the in-memory
            fit's up to the order of floating-point sums (:mod:`rnnx.models._dask`; over many
            epochs training amplifies that rounding: docs/dask.md); the fitted parameters are
            on the driver, in the
            namespace of the chunks (NumPy for NumPy chunks).
        y : array (n_samples,)
            Class labels (classifier) or targets (regressor; see its docstring for shapes).
        lengths : array, optional
            Variable-length sequences: integer lengths ``(n_samples,)`` (right padding: steps
            ``0 .. length-1`` are real) or a boolean step mask ``(n_samples, time)`` (padding on
            either side), from any library or a list. Padded steps never reach the state, the
            outputs or the loss; their values in ``X`` must still be finite.
        callback : callable ``(epoch, history) -> None``, optional
            Called after every epoch (the command line's progress bar uses it); ``epoch``
            counts from 1 and ``history`` is :attr:`history_`.
        progress : bool or None, default None
            A tqdm progress bar on stderr, one tick an epoch, showing the loss (and accuracy,
            and the validation figures with a split) -- the bar ``rnnx train`` shows, through
            the same callback (:class:`rnnx.models._progress.EpochBar`). ``None``: on only
            when stderr is a terminal (off in logs, CI and tests).

        Returns ``self``. Sets ``network_`` (parameters on the training device), ``history_``
        (per epoch ``loss``, ``accuracy`` for classifiers, and ``val_*`` with a validation
        split), ``n_epochs_``, ``best_epoch_`` (with ``early_stopping`` and a validation split:
        the epoch of the lowest validation loss, whose weights the model keeps; else None),
        ``n_features_in_`` and, for classifiers, ``classes_``.

        Raises
        ------
        TrainingDivergedError
            (a ``FloatingPointError``) when an epoch ends with a non-finite loss or non-finite
            weights. Its message names the epoch and suggests a lower ``learning_rate`` or
            clipping; before it is raised the model is put back to the weights, optimizer state
            and history of the last finite epoch (the initial weights if it was the first), so
            it still predicts and ``partial_fit`` can continue with other settings.
        KeyboardInterrupt
            Ctrl-C during an epoch: the model is put back to the end of the last completed
            epoch (weights, optimizer state, shuffling generator, ``history_``,
            ``n_epochs_``), then the interrupt is re-raised (with a note saying so) so that a
            script or a grid search stops as the user asked; catch it to keep working with
            the model. An interrupt inside ``callback`` leaves the just-completed epoch in.
        """
        if not any(progress is v for v in (True, False, None)):
            raise ValueError(f"progress must be True, False or None (a bar only on a terminal); "
                             f"got {progress!r}")
        return self._train(X, y, lengths, partial=False, callback=callback, progress=progress)

    def _train(self, X: Array, y: Array, lengths: Array | None, *, partial: bool,
               classes: Array | None = None,
               callback: Callable[[int, dict], Any] | None = None,
               progress: bool | None = False) -> Any:
        """The one fit skeleton of ``fit`` (``partial=False``: fresh weights, ``epochs``
        epochs) and ``partial_fit`` (one epoch from the current weights, initialising on the
        first call), on in-memory or dask data. Bad data leave the estimator as it was."""
        first = not partial or not hasattr(self, "network_")
        source: Any = InMemory
        if is_dask_array(X) or is_dask_array(y) or is_dask_array(lengths):  # data-parallel
            from ._dask import DaskData

            source = DaskData
        saved = dict(self.__dict__)
        try:
            if not partial:
                for attr in ("network_", "history_"):
                    self.__dict__.pop(attr, None)
            data = source(self, X, y, lengths, first=first, classes=classes)
        except BaseException:  # bad data or labels: nothing trained, nothing changed
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        if first:
            rng = self.random_state if hasattr(self.random_state, "permutation") \
                else host_rng(self.random_state)
            self._new_network(data.features, self._n_outputs, rng)
            self._rng = rng  # partial_fit after fit continues the same stream
        data.bind(self)
        trainer = self._trainer(data.trainer)
        bar = None if progress is False else EpochBar(self.epochs, enabled=progress)

        def on_epoch(epoch: int, history: dict) -> None:
            self.n_epochs_ = trainer.n_epochs  # before the callback: it may look
            if bar is not None:
                bar(epoch, history)
            if callback is not None:
                callback(epoch, history)

        try:
            if partial:
                trainer.partial_fit(*data.args)
            else:
                trainer.fit(*data.args, epochs=self.epochs,
                            validation_fraction=self.validation_fraction,
                            early_stopping=self.early_stopping,
                            n_iter_no_change=self.n_iter_no_change, tol=self.tol,
                            on_epoch=on_epoch)
        finally:
            if bar is not None:
                bar.close()
            self.n_epochs_ = trainer.n_epochs
            self.best_epoch_ = trainer.restored_epoch
            data.release()
        return self

    def _trainer(self, cls: type[Trainer] = Trainer) -> Trainer:
        """A :class:`~rnnx.models._training.Trainer` (or subclass ``cls``: the dask one) on
        this model's network, optimizer, shuffling generator and ``history_`` (which it
        appends to)."""
        return cls(self.network_, self._optim, self._rng, self.history_,
                   batch_size=self.batch_size, clip_norm=self.clip_norm or None,  # 0: off
                   learning_rate=self.learning_rate, n_epochs=self.n_epochs_,
                   name=type(self).__name__)

    def _forward(self, X: Array, lengths: Array | None = None) -> tuple[Array, bool, Array]:
        self._check_fitted()
        X, is_array = read_array(X, "X")
        self._check_predict_X(X)
        Xm = sequences(self._to_model(X))
        check_finite(Xm, "X")
        return eval_forward(self.network_, Xm, self._model_steps(lengths, Xm)), is_array, X

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import InputTags, Tags, TargetTags  # only when scikit-learn asks

        return Tags(estimator_type=None, target_tags=TargetTags(required=True),
                    input_tags=InputTags(two_d_array=True, three_d_array=True))
