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

Shapes
------
``X`` is ``(n_samples, time, features)``; a 2-D ``X`` is a batch of univariate sequences
``(n_samples, time)``. ``n_features_in_`` follows scikit-learn: the number of columns of a 2-D
``X`` (so its time steps) or the per-step features of a 3-D ``X``. A model fitted on 2-D data
predicts on 2-D data with the same number of columns; one fitted on 3-D data accepts any
sequence length with the same number of features.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import sys
import warnings
from collections.abc import Callable
from typing import Any

from .._backend import (
    backend_name,
    device,
    float_errors_checked_by_caller,
    from_host,
    get_namespace,
    host_namespace,
    host_rng,
    move_to,
    namespace,
    to_numpy,
)
from ..functional._validate import dtype_name
from ..functional.registry import get_cell
from ..losses import softmax
from ..optim import OPTIMIZERS, make_optimizer
from .network import SequenceNetwork

__all__ = ["DataConversionWarning", "NotFittedError", "RNNClassifier", "RNNRegressor",
           "ScratchSimpleRNNClassifier", "TrainingDivergedError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted model is called before ``fit`` (the same bases
    as scikit-learn's, so ``except ValueError`` and ``except AttributeError`` both catch it)."""


@functools.cache
def _not_fitted_error_class(sk_error: type | None) -> type:
    # When scikit-learn is already loaded, raise an exception that is also its NotFittedError so
    # `except sklearn.exceptions.NotFittedError` works; scikit-learn is never imported for this.
    if sk_error is None:
        return NotFittedError
    return type("NotFittedError", (NotFittedError, sk_error), {"__module__": __name__})


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite loss or non-finite weights.

    Raised by ``fit``/``partial_fit`` after the model has been put back to the weights,
    optimizer state and history of the last epoch that ended finite. ``epoch`` is the epoch
    (counting from 1) in which training diverged and ``loss`` its mean mini-batch loss.
    """

    def __init__(self, message: str, *, epoch: int, loss: float) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.loss = loss


class DataConversionWarning(UserWarning):
    """A column-vector ``y`` was flattened (named like scikit-learn's warning of the same case)."""


# --------------------------------------------------------------------------------------------
# Host-side input checks (the edge: these look at user data before any maths runs)
# --------------------------------------------------------------------------------------------


def _is_sparse(a: Any) -> bool:
    return type(a).__module__.startswith("scipy.sparse") or hasattr(a, "tocsr")


def _read_array(a: Any, name: str) -> tuple[Any, bool]:
    """``(array, is_api_array)``: Array API arrays are returned as they are; anything else is
    read as a NumPy array (the caller then gets NumPy results)."""
    if _is_sparse(a):
        raise TypeError(f"sparse {name} is not supported: pass a dense array (e.g. {name}.toarray())")
    if a is None:
        raise ValueError(f"{name} must be an array; got None")
    hnp = host_namespace()
    if name == "X" and getattr(getattr(a, "dtype", None), "kind", None) == "O":
        # NumPy object arrays of numbers are read as float64, as scikit-learn does; any other
        # element raises a TypeError naming its type.
        return hnp.asarray(a, dtype=hnp.float64), False
    try:
        namespace(a)
        return a, True
    except TypeError:
        pass
    arr = hnp.asarray(a)
    if arr.dtype.kind == "O":
        arr = hnp.asarray(a, dtype=hnp.float64)  # TypeError names the bad element's type
    return arr, False


# The estimators' casting rule (module docstring, "Input dtypes"): the largest integer
# magnitude each model dtype holds exactly (2**mantissa bits).
_EXACT_INT = {"float32": 2**24, "float64": 2**53}


def _float_dtype_name(xp: Any, a: Any, name: str) -> str:
    """The float dtype ``a`` trains in by default: its own for float32/float64, float64 for
    integer and bool data. Complex, half precision and non-numeric data are refused."""
    got = dtype_name(xp, a.dtype)
    if got in ("float32", "float64"):
        return got
    if got == "bool" or got.startswith(("int", "uint")):
        return "float64"
    if got.startswith("complex"):
        raise ValueError(f"Complex data not supported: {name} has dtype {got}; rnnx estimators "
                         f"take real float32/float64 (or integer/bool) {name}. Pass the real and "
                         "imaginary parts as separate features")
    if got in ("float16", "bfloat16") or "float16" in got:
        raise TypeError(f"{name} has dtype {got}; rnnx estimators compute in float32 or float64 "
                        f"and do not upcast half precision silently: pass {name}.astype(float32) "
                        "(exact)")
    raise TypeError(f"{name} must hold numbers (float32, float64, integer or bool); got dtype "
                    f"{got}")


def _check_int_exact(X: Any, name: str, dt_name: str) -> None:
    """Integer ``X`` is cast to the model dtype only where that cast is exact."""
    xp = namespace(X)
    got = dtype_name(xp, X.dtype)
    if got == "bool" or not got.startswith(("int", "uint")):
        return
    limit = _EXACT_INT[dt_name]
    big = int(to_numpy(xp.max(xp.abs(X)))) if got.startswith("int") else int(to_numpy(xp.max(X)))
    if big > limit:
        raise ValueError(f"{name} holds integer {big}, beyond +-{limit} (2**{limit.bit_length() - 1}), "
                         f"the range {dt_name} represents exactly; casting {got} {name} to "
                         f"{dt_name} would change values: scale {name} or cast it yourself")


def _same_library(arrays: dict[str, Any]) -> None:
    """Array API arguments of one estimator call must share one library and one device (the
    functional core's rule: nothing is moved or converted behind the caller's back)."""
    if len(arrays) < 2:
        return
    names = list(arrays)
    try:
        namespace(*arrays.values())
    except TypeError:
        libs = ", ".join(f"{k}: {type(v).__module__}.{type(v).__qualname__}"
                         for k, v in arrays.items())
        raise TypeError(f"{' and '.join(names)} must come from one array library (namespace); "
                        f"got {libs}. Convert one of them (or pass y as a list)") from None
    devs = {k: device(v) for k, v in arrays.items()}
    first = names[0]
    for k in names[1:]:
        if devs[k] != devs[first]:
            raise ValueError(f"{first} and {k} must be on one device; {first} is on "
                             f"{devs[first]} but {k} is on {devs[k]}")


def _sequences(X: Any, name: str = "X") -> Any:
    """Check ``X``'s shape and return it 3-D ``(n_samples, time, features)``."""
    xp = namespace(X)
    if X.ndim not in (2, 3):
        raise ValueError(
            f"Expected 2D (n_samples, time) or 3D (n_samples, time, features) {name}, got "
            f"{X.ndim}D array of shape {tuple(X.shape)} instead. Reshape your data: a single "
            "univariate sequence is X.reshape(1, -1)"
        )
    if X.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum "
                         "of 1 is required.")
    if any(s == 0 for s in X.shape[1:]):
        raise ValueError(f"0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is required.")
    if X.ndim == 2:
        return xp.reshape(X, (X.shape[0], X.shape[1], 1))  # (N, T, 1)
    return X


def _check_finite(X: Any, name: str) -> None:
    xp = namespace(X)
    bad = int(to_numpy(xp.sum(xp.astype(~xp.isfinite(X), xp.int64))))
    if bad:
        raise ValueError(f"Input {name} contains NaN or inf ({bad} non-finite of "
                         f"{math.prod(X.shape)} values); expected finite values: remove or "
                         "impute them first")


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int; got {v!r}")
    return v


def _host_lengths(lengths: Any, n: int, time: int) -> Any:
    """``lengths`` checked on the host: integer lengths ``(n_samples,)`` in ``[0, time]`` (right
    padding) or a boolean step mask ``(n_samples, time)`` (padding on either side). Returns a
    NumPy array (int64 or bool)."""
    hnp = host_namespace()
    want = (f"integer lengths (n_samples,) = ({n},) or a boolean mask (n_samples, time) = "
            f"({n}, {time})")
    if _is_sparse(lengths):
        raise TypeError("sparse lengths are not supported: pass a dense array")
    try:
        namespace(lengths)
        lh = to_numpy(lengths)
    except TypeError:
        lh = hnp.asarray(lengths)
    if lh.dtype.kind == "b":
        if lh.shape != (n, time):
            raise ValueError(f"lengths must be {want}; got a boolean array of shape {lh.shape}")
        return lh
    if lh.dtype.kind not in "iu":
        raise TypeError(f"lengths must be {want}; got dtype {lh.dtype} (shape {lh.shape}): "
                        "pass integers, e.g. lengths.astype(int)")
    if lh.shape != (n,):
        raise ValueError(f"lengths must be {want}; got integer lengths of shape {lh.shape}")
    if n and (int(lh.min()) < 0 or int(lh.max()) > time):
        bad = int(lh.min()) if int(lh.min()) < 0 else int(lh.max())
        raise ValueError(f"lengths must lie in [0, time] = [0, {time}] (X has {time} steps); got "
                         f"a length of {bad}")
    return hnp.astype(lh, hnp.int64)


def _score_y(X: Any, y: Any, n: int) -> Any:
    """``y`` of a ``score`` call on the host, checked against ``X`` (same library and device
    when both are arrays, one entry per sample, finite if numeric)."""
    X, x_is_array = _read_array(X, "X")
    y, y_is_array = _read_array(y, "y")
    if x_is_array and y_is_array:
        _same_library({"X": X, "y": y})
    y_host = to_numpy(y)
    if y_host.ndim == 0 or y_host.shape[0] != n:
        got = "a scalar" if y_host.ndim == 0 else f"{y_host.shape[0]} (shape {y_host.shape})"
        raise ValueError(f"X and y have inconsistent numbers of samples: X has {n}, y has {got}")
    if y_host.dtype.kind in "fc" and not bool(host_namespace().all(
            host_namespace().isfinite(y_host))):
        raise ValueError("Input y contains NaN or inf; expected finite values")
    return y_host


def _train_mode(network: Any, mode: bool) -> None:
    """Dropout on (training) or off (prediction) where the recurrent layer has it (a plain
    Elman layer has no dropout and no modes)."""
    if hasattr(network.recurrent, "train"):
        network.recurrent.train(mode)


def _eval_forward(network: Any, Xm: Any, steps: Any) -> Any:
    """Outputs of ``network`` in evaluation mode (no dropout), the mode restored after."""
    was = getattr(network.recurrent, "training", None)
    _train_mode(network, False)
    try:
        return network.forward(Xm, steps=steps)
    finally:
        if was is not None:
            _train_mode(network, was)


class _Params:
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


class _BaseRNN(_Params):
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
        cell = self._cell_fixed or self.cell
        spec = get_cell(cell)
        _positive_int("hidden_size", self.hidden_size)
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("n_iter_no_change", self.n_iter_no_change)
        for name in ("learning_rate", "tol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0 or (name == "learning_rate" and v == 0):
                kind = "positive" if name == "learning_rate" else "non-negative"
                raise ValueError(f"{name} must be a {kind} finite number; got {v!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.clip_norm is not None and not (isinstance(self.clip_norm, (int, float))
                                               and self.clip_norm > 0):
            raise ValueError(f"clip_norm must be a positive number or None; got {self.clip_norm!r}")
        vf = self.validation_fraction
        if vf is not None and not (isinstance(vf, (int, float)) and 0.0 < vf < 1.0):
            raise ValueError(f"validation_fraction must be in (0, 1) or None; got {vf!r}")
        if self.dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype must be 'float32', 'float64' or None; got {self.dtype!r}")
        _positive_int("num_layers", self.num_layers)
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional must be True or False; got {self.bidirectional!r}")
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1) (the share of a layer's "
                             f"outputs zeroed between stacked layers while training); got {p!r}")
        fb = self.forget_bias
        if isinstance(fb, bool) or not isinstance(fb, (int, float)) or not math.isfinite(fb):
            raise ValueError(f"forget_bias must be a finite number; got {fb!r}")
        if fb != 0 and spec.forget_gate is None:
            spec.draw(host_rng(0), 1, 1, forget_bias=fb)  # raises, naming the cells that have one

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
        dt_name = _float_dtype_name(src_xp, X, "X")  # also rejects complex X
        dt_name = self.dtype or dt_name
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
        _float_dtype_name(src_xp, X, "X")
        _check_int_exact(X, "X", self._dtype_name)
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
        X3 = _sequences(X)
        if self._fit_ndim == 2:
            ok = (X.ndim == 2 and X.shape[1] == self.n_features_in_) or (X.ndim == 3 and X.shape[2] == 1)
            got = X.shape[1] if X.ndim == 2 else X.shape[2]
        else:
            ok = X3.shape[2] == self.n_features_in_
            got = X3.shape[2]
        if not ok:
            raise ValueError(f"X has {got} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        return X3

    def _n_step_features(self) -> int:
        return 1 if self._fit_ndim == 2 else int(self.n_features_in_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            sk = sys.modules.get("sklearn.exceptions")
            raise _not_fitted_error_class(getattr(sk, "NotFittedError", None))(
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
        """``lengths`` (checked) on the model's namespace and device, or None."""
        if lengths is None:
            return None
        lh = _host_lengths(lengths, Xm.shape[0], Xm.shape[1])
        return from_host(lh, xp=namespace(Xm), device=device(Xm))

    @staticmethod
    def _host_step_mask(lengths: Any, Xm: Any) -> Any:
        """``lengths`` as a host boolean step mask ``(n_samples, time)``, or None."""
        if lengths is None:
            return None
        lh = _host_lengths(lengths, Xm.shape[0], Xm.shape[1])
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
        X, is_array = _read_array(X, "X")
        y, y_is_array = _read_array(y, "y")
        if is_array and y_is_array:
            _same_library({"X": X, "y": y})
        if first:
            _sequences(X)  # shape errors before any transfer
            Xm = _sequences(self._place_fit_X(X))
            self._fit_ndim = X.ndim
            self.n_features_in_ = int(X.shape[1] if X.ndim == 2 else X.shape[2])
        else:
            self._check_predict_X(X)
            Xm = _sequences(self._to_model(X))
        _check_finite(Xm, "X")
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

    def _batches(self, n: int) -> list[tuple[int, int]]:
        bs = min(self.batch_size, n)
        return [(s, min(s + bs, n)) for s in range(0, n, bs)]

    def _epoch(self, Xm: Any, ym: Any, rng: Any, steps: Any = None) -> tuple[float, float | None]:
        """One pass over ``(Xm, ym)`` (and their ``steps``: lengths or step mask) in shuffled
        mini-batches; returns host ``(mean loss, accuracy or None)`` measured on each batch
        before its update (one sync per epoch)."""
        xp = namespace(Xm)
        n = Xm.shape[0]
        perm = from_host(rng.permutation(n), xp=xp, device=device(Xm))
        Xs, ys = xp.take(Xm, perm, axis=0), xp.take(ym, perm, axis=0)
        Ss = None if steps is None else xp.take(steps, perm, axis=0)
        loss_sum = correct = None
        _train_mode(self.network_, True)
        for a, b in self._batches(n):
            loss, out = self.network_.train_step(
                Xs[a:b, ...], ys[a:b, ...], self._optim, clip_norm=self.clip_norm,
                steps=None if Ss is None else Ss[a:b, ...])
            loss_sum = loss * (b - a) if loss_sum is None else loss_sum + loss * (b - a)
            if self._loss == "cross_entropy":
                c = xp.sum(xp.astype(xp.argmax(out, axis=-1) == ys[a:b, ...], out.dtype))
                correct = c if correct is None else correct + c
        loss_v = float(to_numpy(loss_sum)) / n
        acc = None if correct is None else float(to_numpy(correct)) / n
        return loss_v, acc

    def _evaluate(self, Xm: Any, ym: Any, steps: Any = None) -> tuple[float, float | None]:
        from ..functional._mask import as_step_mask
        from ..losses import mse, softmax_cross_entropy

        out = _eval_forward(self.network_, Xm, steps)
        if self._loss == "cross_entropy":
            xp = namespace(out)
            loss, _ = softmax_cross_entropy(out, ym)
            acc = xp.mean(xp.astype(xp.argmax(out, axis=-1) == ym, out.dtype))
            return float(to_numpy(loss)), float(to_numpy(acc))
        mask = None
        if steps is not None and self._sequence_output():
            mask = as_step_mask(steps, x=Xm, xp=namespace(Xm))  # (N, T): padding leaves the loss
        loss, _ = mse(out, ym, mask=mask)
        return float(to_numpy(loss)), None

    def fit(self, X: Any, y: Any, *, lengths: Any = None,
            callback: Callable[[int, dict], Any] | None = None) -> Any:
        """Train from freshly initialised weights for ``epochs`` passes (fewer with early
        stopping).

        Parameters
        ----------
        X : array (n_samples, time, features) or (n_samples, time)
            Any Array API namespace; training runs there (or on ``backend``/``device``).
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
        for attr in ("network_", "history_"):
            if hasattr(self, attr):
                delattr(self, attr)
        Xm, ym, steps, _ = self._prepare(X, y, first=True, lengths=lengths)
        rng = self.random_state if hasattr(self.random_state, "permutation") \
            else host_rng(self.random_state)
        self._new_network(Xm.shape[2], self._n_outputs, rng)
        self._rng = rng  # partial_fit after fit continues the same stream
        xp = namespace(Xm)
        vf = self.validation_fraction
        if vf is None and self.early_stopping:
            vf = 0.1
        Xv = yv = Sv = None
        n = Xm.shape[0]
        n_val = math.ceil(vf * n) if vf else 0
        if n_val and n - n_val >= 1:
            perm = rng.permutation(n)
            idx_v = from_host(perm[:n_val], xp=xp, device=device(Xm))
            idx_t = from_host(perm[n_val:], xp=xp, device=device(Xm))
            Xv, yv = xp.take(Xm, idx_v, axis=0), xp.take(ym, idx_v, axis=0)
            Xm, ym = xp.take(Xm, idx_t, axis=0), xp.take(ym, idx_t, axis=0)
            if steps is not None:
                Sv, steps = xp.take(steps, idx_v, axis=0), xp.take(steps, idx_t, axis=0)
            self.history_["val_loss"] = []
            if self._loss == "cross_entropy":
                self.history_["val_accuracy"] = []
        best, best_params, stale = math.inf, None, 0
        for epoch in range(1, self.epochs + 1):
            with self._guarded_epoch(epoch):
                loss, acc = self._epoch(Xm, ym, rng, steps)
                self._check_diverged(epoch, loss)
                vloss = vacc = None
                if Xv is not None:
                    vloss, vacc = self._evaluate(Xv, yv, Sv)
            # The epoch is complete from here on: record it, then tell the callback.
            self._record(loss, acc)
            watched = loss
            if Xv is not None:
                self.history_["val_loss"].append(vloss)
                if vacc is not None:
                    self.history_["val_accuracy"].append(vacc)
                watched = vloss
            if callback is not None:
                callback(epoch, self.history_)
            if watched < best - self.tol:
                best, stale = watched, 0
                best_params = dict(self.network_.parameters()) if Xv is not None else None
            else:
                stale += 1
            if self.early_stopping and stale >= self.n_iter_no_change:
                break
        if self.early_stopping and best_params is not None:
            # Arrays are never updated in place, so the saved references are the best weights.
            self.network_.load_parameters(best_params)
        return self

    # -- nothing is lost: divergence and Ctrl-C ---------------------------------------------

    def _snapshot(self) -> tuple[Any, ...]:
        """References to the weights and optimizer state, and the shuffling generator's state.
        Optimizers and training steps replace arrays instead of writing into them, so holding
        the references is enough (no copies)."""
        opt = self._optim
        rng = getattr(self, "_rng", None)
        return (dict(self.network_.parameters()), {k: dict(v) for k, v in opt.state.items()},
                opt.t, None if rng is None else rng.bit_generator.state)

    def _restore(self, snap: tuple[Any, ...]) -> None:
        params, state, t, rng_state = snap
        self.network_.load_parameters(params)
        self._optim.state, self._optim.t = state, t
        if rng_state is not None:
            self._rng.bit_generator.state = rng_state

    @contextlib.contextmanager
    def _guarded_epoch(self, epoch: int, method: str = "fit") -> Any:
        """Run one epoch; if it diverges or is interrupted (Ctrl-C), put the model back to the
        end of the previous epoch before the exception leaves ``fit``/``partial_fit``."""
        snap = self._snapshot()
        try:
            with float_errors_checked_by_caller():
                yield
        except TrainingDivergedError:
            self._restore(snap)
            raise
        except KeyboardInterrupt as exc:
            self._restore(snap)
            exc.add_note(f"rnnx: {type(self).__name__}.{method} interrupted in epoch {epoch}; the "
                         f"model keeps the weights and history of the {self.n_epochs_} completed "
                         "epoch(s)")
            raise

    def _check_diverged(self, epoch: int, loss: float) -> None:
        """Raise :class:`TrainingDivergedError` if the epoch's loss or any weight is not finite
        (one host sync: the weights are checked on their device)."""
        xp = namespace(*self.network_.parameters().values())
        finite = [xp.all(xp.isfinite(p)) for p in self.network_.parameters().values()]
        ok = math.isfinite(loss) and bool(to_numpy(xp.all(xp.stack(finite))))
        if ok:
            return
        what = f"the mean training loss is {loss}" if not math.isfinite(loss) else \
            f"the weights became non-finite (loss {loss:.6g})"
        clip = "turn on gradient clipping (clip_norm=None now; try clip_norm=1.0)" \
            if self.clip_norm is None else f"clip harder (clip_norm={self.clip_norm} now)"
        kept = "its initial weights" if self.n_epochs_ == 0 else \
            f"the weights after epoch {self.n_epochs_}, the last finite one"
        raise TrainingDivergedError(
            f"training diverged in epoch {epoch}: {what}. The model keeps {kept}. Lower "
            f"learning_rate ({self.learning_rate} now) or {clip}", epoch=epoch, loss=loss)

    def _record(self, loss: float, acc: float | None) -> None:
        self.history_["loss"].append(loss)
        if acc is not None:
            self.history_["accuracy"].append(acc)
        self.n_epochs_ += 1

    def _partial_fit(self, X: Any, y: Any, classes: Any, lengths: Any = None) -> Any:
        first = not hasattr(self, "network_")
        Xm, ym, steps, _ = self._prepare(X, y, first=first, classes=classes, lengths=lengths)
        if first:
            self._rng = host_rng(self.random_state) if not hasattr(self.random_state, "permutation") \
                else self.random_state
            self._new_network(Xm.shape[2], self._n_outputs, self._rng)
        with self._guarded_epoch(self.n_epochs_ + 1, "partial_fit"):
            loss, acc = self._epoch(Xm, ym, self._rng, steps)
            self._check_diverged(self.n_epochs_ + 1, loss)
        self._record(loss, acc)
        return self

    def _forward(self, X: Any, lengths: Any = None) -> tuple[Any, bool, Any]:
        self._check_fitted()
        X, is_array = _read_array(X, "X")
        self._check_predict_X(X)
        Xm = _sequences(self._to_model(X))
        _check_finite(Xm, "X")
        return _eval_forward(self.network_, Xm, self._model_steps(lengths, Xm)), is_array, X

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import InputTags, Tags, TargetTags  # only when scikit-learn asks

        return Tags(estimator_type=None, target_tags=TargetTags(required=True),
                    input_tags=InputTags(two_d_array=True, three_d_array=True))


class RNNClassifier(_BaseRNN):
    """Sequence classifier: recurrent layer -> last hidden state -> dense -> softmax.

    Parameters
    ----------
    cell : str
        Recurrent cell (a key of :data:`rnnx.functional.registry.CELLS`: ``"rnn"`` is Elman,
        ``"lstm"``, ``"gru"``, ``"ln_lstm"`` the layer-normalised LSTM).
    hidden_size : int
        Size of the recurrent state.
    nonlinearity : {"tanh", "relu"}
        Elman activation.
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

    def partial_fit(self, X: Any, y: Any, classes: Any = None, *,
                    lengths: Any = None) -> RNNClassifier:
        """One epoch over ``(X, y)`` from the current weights (initialising on the first call,
        where ``classes`` lists every label the model will ever see); ``lengths`` as in
        :meth:`fit`. Returns ``self``."""
        return self._partial_fit(X, y, classes, lengths)

    def predict_proba(self, X: Any, *, lengths: Any = None) -> Any:
        """Class probabilities ``(n_samples, n_classes)``, columns ordered as ``classes_``, in the
        namespace and on the device of ``X``. ``lengths``: as in :meth:`fit`."""
        logits, is_array, X = self._forward(X, lengths)
        return self._to_caller(softmax(logits), X, is_array)

    def predict(self, X: Any, *, lengths: Any = None) -> Any:
        """Labels ``(n_samples,)`` from ``classes_``: in ``X``'s namespace and on its device when
        the labels are numbers, a NumPy array otherwise (strings cannot live on a device).
        ``lengths``: as in :meth:`fit`."""
        logits, is_array, X = self._forward(X, lengths)
        xp = namespace(logits)
        idx = to_numpy(xp.argmax(logits, axis=-1))
        labels = self.classes_[idx]
        if not is_array or labels.dtype.kind not in "biuf":
            return labels
        return from_host(labels, xp=namespace(X), device=device(X))

    def score(self, X: Any, y: Any, *, lengths: Any = None) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)`` (a Python float). Labels outside
        ``classes_`` are refused (``ValueError``): the model could never predict them.
        ``lengths``: as in :meth:`fit`."""
        pred = to_numpy(self.predict(X, lengths=lengths))
        y_host = _score_y(X, y, pred.shape[0])
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


class RNNRegressor(_BaseRNN):
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

    def partial_fit(self, X: Any, y: Any, *, lengths: Any = None) -> RNNRegressor:
        """One epoch over ``(X, y)`` from the current weights (initialising on the first call);
        ``lengths`` as in :meth:`fit`. Returns ``self``."""
        return self._partial_fit(X, y, None, lengths)

    def predict(self, X: Any, *, lengths: Any = None) -> Any:
        """Predictions shaped like the training ``y`` (``(n_samples,)``, ``(n_samples, outputs)``
        or with a time axis for ``sequence_output``), in ``X``'s namespace, on its device.
        ``lengths``: as in :meth:`fit` (with ``sequence_output``, padded steps predict the
        targets' mean and mean nothing)."""
        out, is_array, X = self._forward(X, lengths)
        xp = namespace(out)
        mean = from_host(self._y_mean, xp=xp, device=device(out), dtype=out.dtype)
        scale = from_host(self._y_scale, xp=xp, device=device(out), dtype=out.dtype)
        pred = out * scale + mean  # (N, O) or (N, T, O)
        lead = 2 if self.sequence_output else 1
        if self._y_ndim == lead:
            pred = pred[..., 0]
        return self._to_caller(pred, X, is_array)

    def score(self, X: Any, y: Any, *, lengths: Any = None) -> float:
        """Coefficient of determination R² of :meth:`predict` (averaged over outputs).
        ``lengths``: as in :meth:`fit`; with ``sequence_output`` only valid steps count."""
        pred = to_numpy(self.predict(X, lengths=lengths)).astype("float64")
        y_host = _score_y(X, y, pred.shape[0])
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
            keep = _host_lengths(lengths, pred.shape[0], pred.shape[1])
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
