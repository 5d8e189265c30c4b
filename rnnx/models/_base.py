"""The estimators' common base: the scikit-learn estimator contract (:class:`Params`) and
:class:`BaseRNN`, which stores the hyper-parameters, places the model (backend, device, dtype),
prepares ``(X, y, lengths)`` and trains through :class:`~rnnx.models._training.Trainer`.

The public estimators and the user-facing rules on inputs are in
:mod:`rnnx.models.estimators`.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Callable
from typing import Any

from .._backend import (
    backend_name,
    device,
    float64_unavailable,
    from_host,
    get_namespace,
    host_namespace,
    host_rng,
    move_to,
    namespace,
    to_numpy,
)
from ..functional._validate import dtype_name
from ..optim import make_optimizer
from ._constraints import PARAMETER_CONSTRAINTS, check_cell_options, validate
from ._dask_inputs import is_dask_array
from ._device import on_model_device
from ._errors import not_fitted_error_class
from ._progress import EpochBar
from ._training import Trainer, eval_forward
from ._validation import (
    check_finite,
    check_int_exact,
    float_dtype_name,
    host_lengths,
    read_array,
    same_library,
    sequences,
)
from .network import SequenceNetwork

__all__ = ["BaseRNN", "Params"]


class Params:
    """``get_params``/``set_params`` from the constructor signature, like scikit-learn's
    ``BaseEstimator`` (no scikit-learn import)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters as a dict (``deep`` is accepted for scikit-learn; nothing
        here nests estimators)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set constructor parameters; unknown names raise ``ValueError``. Returns ``self``."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"Invalid parameter {k!r} for estimator {type(self).__name__}; "
                                 f"valid parameters are {valid}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = []
        for k in self._param_names():
            v = getattr(self, k)
            default = sig.parameters[k].default
            if not (v is default or (type(v) is type(default) and v == default)):
                changed.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")


class BaseRNN(Params):
    _loss = "cross_entropy"
    _cell_fixed: str | None = None

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
        check_cell_options(self._cell_fixed or self.cell, {"forget_bias": self.forget_bias,
                                                           "nonlinearity": self.nonlinearity})

    def _warn_inert_dropout(self) -> None:
        """Warn, as torch does, when ``dropout`` cannot act: it drops between stacked layers, so
        with one layer it changes nothing."""
        if self.dropout and self.num_layers == 1:
            warnings.warn(f"dropout={self.dropout!r} adds dropout after all but the last "
                          "recurrent layer, so non-zero dropout expects num_layers greater than "
                          "1; with num_layers=1 it changes nothing", UserWarning, stacklevel=5)

    def _network_options(self) -> dict[str, Any]:
        """The recurrent layer's options, as :class:`SequenceNetwork` takes them (``fit`` and
        :func:`rnnx.models.load_model` build the network from these alone)."""
        opts = dict(cell=self._cell_fixed or self.cell, nonlinearity=self.nonlinearity,
                    init=self.init, recurrent_init=self.recurrent_init,
                    num_layers=self.num_layers, bidirectional=self.bidirectional,
                    dropout=float(self.dropout))
        if self.forget_bias:
            opts["forget_bias"] = float(self.forget_bias)
        return opts

    # -- where the model lives --------------------------------------------------------------

    def _xp(self) -> Any:
        return get_namespace(self._backend_name)

    def _place_fit_X(self, X: Any) -> Any:
        """Choose the backend/device/dtype for fitting from ``X`` and the parameters, and return
        ``X`` there as a 3-D float array."""
        src_xp = namespace(X)
        src = backend_name(src_xp)
        target = self.backend or src
        get_namespace(target)
        if target == src:
            dev = self.device if self.device is not None else device(X)
        else:
            dev = self.device
        dt_name = float_dtype_name(src_xp, X, "X")  # also rejects complex X
        dt_name = self.dtype or dt_name
        why = float64_unavailable(get_namespace(target))
        if dt_name == "float64" and why:
            reason = "dtype='float64'" if self.dtype else f"X of dtype {dtype_name(src_xp, X.dtype)}"
            raise TypeError(f"{reason} trains in float64, which {target} cannot compute here: {why}. "
                            "Set it, or pass dtype='float32' (rnnx never computes in float32 "
                            "behind your back)")
        self._backend_name, self._device, self._dtype_name = target, dev, dt_name
        Xm = self._to_model(X)
        # The device the data actually landed on (the backend's default when dev is None), so
        # later inputs on any other device are moved, not mixed.
        self._device = device(Xm)
        return Xm

    def _to_model(self, X: Any) -> Any:
        """``X`` on the model's backend/device with its dtype (moved through the host only if it
        is elsewhere; never modified in place)."""
        xp = self._xp()
        dt = getattr(xp, self._dtype_name)
        src_xp = namespace(X)
        float_dtype_name(src_xp, X, "X")
        check_int_exact(X, "X", self._dtype_name)
        same = backend_name(src_xp) == self._backend_name and (
            self._device is None or device(X) == self._device)
        if same:
            return X if X.dtype == dt else xp.astype(X, dt)
        return from_host(to_numpy(X), xp=xp, device=self._device, dtype=dt)

    @staticmethod
    def _to_caller(out: Any, X: Any, is_array: bool) -> Any:
        """``out`` in the namespace and on the device of the caller's ``X``."""
        if not is_array:
            return to_numpy(out)
        return move_to(out, xp=namespace(X), device=device(X))

    def _check_predict_X(self, X: Any) -> Any:
        X3 = sequences(X)
        if self._fit_ndim == 2:
            ok = (X.ndim == 2 and X.shape[1] == self.n_features_in_) or (X.ndim == 3 and X.shape[2] == 1)
            got = X.shape[1] if X.ndim == 2 else X.shape[2]
        else:
            ok = X3.shape[2] == self.n_features_in_
            got = X3.shape[2]
        if not ok:
            want = self.n_features_in_
            hint = ""
            if self._fit_ndim == 3 and X.ndim == 2 and X.shape[1] == want:
                # One (time, features) sequence given as a 2-D array reads as X.shape[0]
                # univariate sequences: say how to mean one sequence.
                hint = (f". A 2-D X {tuple(X.shape)} is {X.shape[0]} univariate sequence(s) of "
                        f"{X.shape[1]} steps; one sequence of {X.shape[0]} steps x {want} features "
                        f"is X.reshape(1, {X.shape[0]}, {want})")
            # scikit-learn's wording, which its check_n_features_in_after_fitting matches
            # literally ("X has 1 features" included).
            raise ValueError(f"X has {got} features, but {type(self).__name__} is expecting "
                             f"{want} features as input{hint}")
        return X3

    def _n_step_features(self) -> int:
        return 1 if self._fit_ndim == 2 else int(self.n_features_in_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            sk = sys.modules.get("sklearn.exceptions")
            raise not_fitted_error_class(getattr(sk, "NotFittedError", None))(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    # -- training ---------------------------------------------------------------------------

    def _new_network(self, features: int, outputs: int, rng: Any) -> None:
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

    def _model_steps(self, lengths: Any, Xm: Any) -> Any:
        """``lengths`` (checked on the host) as a boolean step mask ``(n_samples, time)`` on the
        model's namespace and device, or None. A mask, not integer lengths: lengths would be
        range-checked on the device at every batch (a host round trip each), while they were
        checked here once."""
        if lengths is None:
            return None
        return from_host(self._host_step_mask(lengths, Xm), xp=namespace(Xm), device=device(Xm))

    @staticmethod
    def _host_step_mask(lengths: Any, Xm: Any) -> Any:
        """``lengths`` as a host boolean step mask ``(n_samples, time)``, or None."""
        if lengths is None:
            return None
        lh = host_lengths(lengths, Xm.shape[0], Xm.shape[1])
        if lh.dtype.kind == "b":
            return lh
        hnp = host_namespace()
        return hnp.arange(Xm.shape[1])[None, :] < lh[:, None]  # (N, T)

    def _prepare(self, X: Any, y: Any, *, first: bool, classes: Any = None,
                 lengths: Any = None) -> tuple[Any, Any, Any, Any]:
        self._check_hyper()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None")
        X, is_array = read_array(X, "X")
        y, y_is_array = read_array(y, "y")
        if is_array and y_is_array:
            same_library({"X": X, "y": y})
        if first:
            self._warn_inert_dropout()
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
    def fit(self, X: Any, y: Any, *, lengths: Any = None,
            callback: Callable[[int, dict], Any] | None = None,
            progress: bool | None = None) -> Any:
        """Train from freshly initialised weights for ``epochs`` passes (fewer with early
        stopping).

        Parameters
        ----------
        X : array (n_samples, time, features) or (n_samples, time)
            Any Array API namespace; training runs there (or on ``backend``/``device``). A
            dask array (with a dask ``y``, and dask ``lengths`` chunked alike) trains
            data-parallel on the current dask.distributed client, equal to the in-memory fit
            (:mod:`rnnx.models._dask`); the fitted parameters are on the driver, in the
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
        split), ``n_epochs_``, ``n_features_in_`` and, for classifiers, ``classes_``.

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
        if is_dask_array(X) or is_dask_array(y) or is_dask_array(lengths):  # data-parallel
            from . import _dask

            return _dask.fit(self, X, y, lengths=lengths, callback=callback, progress=progress)
        for attr in ("network_", "history_"):
            if hasattr(self, attr):
                delattr(self, attr)
        Xm, ym, steps, _ = self._prepare(X, y, first=True, lengths=lengths)
        rng = self.random_state if hasattr(self.random_state, "permutation") \
            else host_rng(self.random_state)
        self._new_network(Xm.shape[2], self._n_outputs, rng)
        self._rng = rng  # partial_fit after fit continues the same stream
        trainer = self._trainer()
        bar = None if progress is False else EpochBar(self.epochs, enabled=progress)

        def on_epoch(epoch: int, history: dict) -> None:
            self.n_epochs_ = trainer.n_epochs  # before the callback: it may look
            if bar is not None:
                bar(epoch, history)
            if callback is not None:
                callback(epoch, history)

        try:
            trainer.fit(Xm, ym, steps, epochs=self.epochs,
                        validation_fraction=self.validation_fraction,
                        early_stopping=self.early_stopping, n_iter_no_change=self.n_iter_no_change,
                        tol=self.tol, on_epoch=on_epoch)
        finally:
            if bar is not None:
                bar.close()
        return self

    def _trainer(self, cls: type[Trainer] = Trainer) -> Trainer:
        """A :class:`~rnnx.models._training.Trainer` (or subclass ``cls``: the dask one) on
        this model's network, optimizer, shuffling generator and ``history_`` (which it
        appends to)."""
        return cls(self.network_, self._optim, self._rng, self.history_,
                   batch_size=self.batch_size, clip_norm=self.clip_norm,
                   learning_rate=self.learning_rate, n_epochs=self.n_epochs_,
                   name=type(self).__name__)

    def _partial_fit(self, X: Any, y: Any, classes: Any, lengths: Any = None) -> Any:
        if is_dask_array(X) or is_dask_array(y) or is_dask_array(lengths):  # data-parallel
            from . import _dask

            return _dask.partial_fit(self, X, y, classes, lengths)
        first = not hasattr(self, "network_")
        Xm, ym, steps, _ = self._prepare(X, y, first=first, classes=classes, lengths=lengths)
        if first:
            self._rng = host_rng(self.random_state) if not hasattr(self.random_state, "permutation") \
                else self.random_state
            self._new_network(Xm.shape[2], self._n_outputs, self._rng)
        trainer = self._trainer()
        trainer.partial_fit(Xm, ym, steps)
        self.n_epochs_ = trainer.n_epochs
        return self

    def _forward(self, X: Any, lengths: Any = None) -> tuple[Any, bool, Any]:
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
