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

from ._errors import ClusterLostError, DataConversionWarning, NotFittedError, TrainingDivergedError
from .classifier import RNNClassifier, ScratchSimpleRNNClassifier
from .regressor import RNNRegressor

__all__ = ["ClusterLostError", "DataConversionWarning", "NotFittedError", "RNNClassifier",
           "RNNRegressor", "ScratchSimpleRNNClassifier", "TrainingDivergedError"]
