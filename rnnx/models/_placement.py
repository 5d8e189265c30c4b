"""Where an estimator's model lives: :class:`Placement`, the part of
:class:`~rnnx.models._base.BaseRNN` that chooses the backend, device and dtype of a fit from
``X`` and the ``backend``/``device``/``dtype`` parameters, moves later inputs (and step masks)
there, and moves results back to the caller's namespace and device."""

from __future__ import annotations

from typing import Any

from .._backend import (
    backend_name,
    device,
    float64_unavailable,
    from_host,
    get_namespace,
    host_namespace,
    move_to,
    namespace,
    to_numpy,
)
from .._typing import Array
from ..functional._validate import dtype_name
from ._validation import check_int_exact, float_dtype_name, host_lengths, sequences

__all__ = ["Placement"]


class Placement:
    """Placement of a model: sets ``_backend_name``, ``_device`` and ``_dtype_name`` on a fit,
    reads them after (with the fitted ``n_features_in_``, ``_fit_ndim``)."""

    def _xp(self) -> Any:
        return get_namespace(self._backend_name)

    def _place_fit_X(self, X: Array) -> Array:
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

    def _to_model(self, X: Array) -> Array:
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
    def _to_caller(out: Array, X: Array, is_array: bool) -> Array:
        """``out`` in the namespace and on the device of the caller's ``X``."""
        if not is_array:
            return to_numpy(out)
        return move_to(out, xp=namespace(X), device=device(X))

    def _check_predict_X(self, X: Array) -> Array:
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

    def _model_steps(self, lengths: Array | None, Xm: Array) -> Array | None:
        """``lengths`` (checked on the host) as a boolean step mask ``(n_samples, time)`` on the
        model's namespace and device, or None. A mask, not integer lengths: lengths would be
        range-checked on the device at every batch (a host round trip each), while they were
        checked here once."""
        if lengths is None:
            return None
        return from_host(self._host_step_mask(lengths, Xm), xp=namespace(Xm), device=device(Xm))

    @staticmethod
    def _host_step_mask(lengths: Array | None, Xm: Array) -> Array | None:
        """``lengths`` as a host boolean step mask ``(n_samples, time)``, or None."""
        if lengths is None:
            return None
        lh = host_lengths(lengths, Xm.shape[0], Xm.shape[1])
        if lh.dtype.kind == "b":
            return lh
        hnp = host_namespace()
        return hnp.arange(Xm.shape[1])[None, :] < lh[:, None]  # (N, T)
