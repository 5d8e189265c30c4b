"""Saving and loading fitted estimators without pickle.

File format (``format_version`` 1)
----------------------------------
An uncompressed NumPy ``.npz`` archive, readable with ``numpy.load(path, allow_pickle=False)``:

``meta``
    0-d unicode array holding a JSON object: ``format`` (``"rnnx-model"``), ``format_version``,
    ``rnnx_version``, ``estimator`` (class name), ``params`` (constructor parameters; ``device``
    is stored as null because devices are machine-specific), ``dtype``, ``trained_on`` (backend
    name), ``n_features_in``, ``fit_ndim`` (2 or 3), ``history``, ``best_epoch`` (optional: the
    epoch early stopping restored, or null), and ``classes`` (classifier) or
    ``y_mean``/``y_scale``/``y_ndim`` (regressor).
``param/<layer>.<name>``
    One array per network parameter (``param/recurrent.l0.w_x``, ``param/dense.w``, ...; the
    recurrent layer's keys carry torch's suffixes, ``param/recurrent.l1_reverse.w_h``), in the
    model's dtype. Files of one-layer Elman models written by rnnx 0.1.0 before the layer
    rework name them ``param/recurrent.w_x``; they load as ``recurrent.l0.w_x``.
    The layer options (``cell``, ``num_layers``, ``bidirectional``,
    ``dropout``, ``forget_bias``) are constructor parameters, so they travel in ``params``.

Files are written atomically (temporary file in the same directory, flushed with ``fsync``, then
``os.replace``): a crash or a kill mid-save leaves the previous file as it was. Loading refuses
(:class:`ModelFileError`) truncated, corrupted, pickled, foreign and newer-version files.
Optimizer moments are not saved: a loaded model predicts exactly as the saved one, and
``partial_fit`` after loading starts with fresh optimizer state.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from .._backend import (
    from_host,
    get_namespace,
    host_namespace,
    host_rng,
    load_npz,
    save_npz_atomic,
    to_numpy,
)
from .._typing import Device
from ..optim import make_optimizer
from .estimators import RNNClassifier, RNNRegressor, ScratchSimpleRNNClassifier
from .network import SequenceNetwork

if TYPE_CHECKING:
    from ._base import BaseRNN

__all__ = ["FORMAT_VERSION", "ModelFileError", "load_model", "save_model"]

FORMAT_VERSION = 1
_CLASSES = {c.__name__: c for c in (RNNClassifier, RNNRegressor, ScratchSimpleRNNClassifier)}


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return None  # a device object or generator: machine-specific, not stored


def save_model(model: BaseRNN, path: str | os.PathLike) -> None:
    """Write a fitted :class:`RNNClassifier`/:class:`RNNRegressor` to ``path`` (see the module
    docstring for the format). Parameters are copied to the host; the model is unchanged."""
    from .._version import __version__

    name = type(model).__name__
    if name not in _CLASSES:
        raise TypeError(f"model must be one of {sorted(_CLASSES)}; got {name}")
    model._check_fitted()
    params = {k: _jsonable(v) for k, v in model.get_params().items()}
    params["device"] = None
    meta: dict[str, Any] = {
        "format": "rnnx-model",
        "format_version": FORMAT_VERSION,
        "rnnx_version": __version__,
        "estimator": name,
        "params": params,
        "dtype": model._dtype_name,
        "trained_on": model._backend_name,
        "n_features_in": int(model.n_features_in_),
        "fit_ndim": int(model._fit_ndim),
        "features": int(model._n_step_features()),
        "history": model.history_,
        # optional (absent from older files): the epoch early stopping restored, or null
        "best_epoch": getattr(model, "best_epoch_", None),
    }
    if isinstance(model, RNNClassifier):
        meta["classes"] = model.classes_.tolist()
    else:
        meta["y_mean"] = model._y_mean.tolist()
        meta["y_scale"] = model._y_scale.tolist()
        meta["y_ndim"] = int(model._y_ndim)
    arrays = {f"param/{k}": to_numpy(v) for k, v in model.network_.parameters().items()}
    hnp = host_namespace()
    arrays["meta"] = hnp.asarray(json.dumps(meta))
    save_npz_atomic(path, arrays)


class ModelFileError(ValueError):
    """A file that :func:`load_model` refuses: not an rnnx model, damaged (truncated,
    corrupted, inconsistent), or written by a newer rnnx. The message names the path and why."""


_REQUIRED_META = ("format_version", "estimator", "params", "dtype", "n_features_in", "fit_ndim",
                  "features", "history")


def _read_meta(path: str, data: dict[str, Any]) -> dict[str, Any]:
    if "meta" not in data:
        raise ModelFileError(f"{path!r} is not an rnnx model file (no 'meta' entry)")
    raw = data["meta"]
    if raw.ndim != 0 or raw.dtype.kind != "U":
        raise ModelFileError(f"{path!r} is not an rnnx model file ('meta' is a {raw.dtype} array "
                             f"of shape {raw.shape}, not a JSON string)")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path!r} is damaged: its metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != "rnnx-model":
        raise ModelFileError(f"{path!r} is not an rnnx model file")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path!r} has an invalid format_version {version!r}; expected an "
                             f"integer from 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path!r} has format version {version}; this rnnx reads versions "
                             f"up to {FORMAT_VERSION}: upgrade rnnx")
    missing = [k for k in _REQUIRED_META if k not in meta]
    if missing:
        raise ModelFileError(f"{path!r} is damaged: its metadata lacks {missing}")
    if meta["dtype"] not in ("float32", "float64"):
        raise ModelFileError(f"{path!r} is damaged: dtype {meta['dtype']!r} is not float32 or "
                             "float64")
    return meta


def load_model(path: str | os.PathLike, *, backend: str = "numpy", device: Device = None) -> BaseRNN:
    """Read a model written by :func:`save_model` onto ``backend``/``device`` (any backend,
    whatever it was trained on). Predictions follow the ``X`` they are given, as after ``fit``.

    Raises :class:`ModelFileError` (a ``ValueError``) naming the path for a file that is not an
    rnnx model, is truncated or corrupted, needs pickle, or has a newer format version;
    ``OSError`` (e.g. ``FileNotFoundError``) if it cannot be opened. Nothing is unpickled.
    """
    name = os.fspath(path)
    try:
        data = load_npz(path)
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None
    meta = _read_meta(name, data)
    cls = _CLASSES.get(meta["estimator"])
    if cls is None:
        raise ModelFileError(f"unknown estimator {meta['estimator']!r} in {name!r}")
    get_namespace(backend)  # unknown/unavailable backends fail here, with the reason
    try:
        return _build(meta, data, cls, backend, device)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{name!r} is damaged or inconsistent: {exc}") from None


def _current_key(key: str) -> str:
    """A parameter key as the network names it now: files written before the single-layer
    Elman network became a one-layer ``Recurrent`` name its recurrent parameters without the
    layer suffix (``recurrent.w_x``); they are read as ``recurrent.l0.w_x``."""
    layer, _, name = key.partition(".")
    if layer == "recurrent" and "." not in name:
        return f"recurrent.l0.{name}"
    return key


def _build(meta: dict[str, Any], data: dict[str, Any], cls: type, backend: str, device: Any) -> Any:
    model = cls(**meta["params"])
    model._backend_name, model._device, model._dtype_name = backend, device, meta["dtype"]
    model.n_features_in_ = meta["n_features_in"]
    model._fit_ndim = meta["fit_ndim"]
    hnp = host_namespace()
    if "classes" in meta:
        model.classes_ = hnp.asarray(meta["classes"])
        model._n_outputs = int(model.classes_.shape[0])
    else:
        model._y_mean = hnp.asarray(meta["y_mean"], dtype=hnp.float64)
        model._y_scale = hnp.asarray(meta["y_scale"], dtype=hnp.float64)
        model._y_ndim = meta["y_ndim"]
        model._n_outputs = int(model._y_mean.shape[0])
    host = {_current_key(k[len("param/"):]): v for k, v in data.items() if k.startswith("param/")}
    for k, v in host.items():
        # from_host would cast a mismatched dtype silently; a finite model never saves NaN.
        if str(v.dtype) != meta["dtype"]:
            raise ValueError(f"parameter {k!r} has dtype {v.dtype}, but the model is {meta['dtype']}")
        if not bool(hnp.all(hnp.isfinite(v))):
            raise ValueError(f"parameter {k!r} holds NaN or inf")
    model._check_hyper()  # a file's parameters pass the checks fit makes
    net = SequenceNetwork(
        meta["features"], model.hidden_size, model._n_outputs, loss=model._loss,
        sequence_output=model._sequence_output(), seed=0, backend=backend, device=device,
        dtype=meta["dtype"], **model._network_options(),
    )
    xp = get_namespace(backend)
    net.load_parameters({k: from_host(v, xp=xp, device=device, dtype=getattr(xp, meta["dtype"]))
                         for k, v in host.items()})
    model.network_ = net
    model._optim = make_optimizer(model.optimizer, model.learning_rate)
    # partial_fit continues from here: a fresh shuffling stream seeded like fit's (the saved
    # model's generator state is not stored).
    model._rng = host_rng(model.random_state)
    model.history_ = meta["history"]
    model.n_epochs_ = len(meta["history"]["loss"])
    model.best_epoch_ = meta.get("best_epoch")
    return model
