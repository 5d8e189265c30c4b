"""The estimators' entry points choose the device they run on before touching data
(rnnx.models._device): the decision is tested on array-api-strict's ``device1`` (the GPU
stand-in), the same decision that, for CuPy, makes that GPU current for the call."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rnnx._backend import common_device, from_host
from rnnx.models import RNNClassifier
from rnnx.models._device import _target


@pytest.fixture
def strict():
    xp = pytest.importorskip("array_api_strict")
    return xp, xp.Device("device1")


def test_target_before_fit_follows_device_then_X(strict):
    xp, dev1 = strict
    X_host = np.zeros((4, 3, 2))
    X1 = from_host(X_host, xp=xp, device=dev1)
    assert _target(RNNClassifier(), X_host, True) == ("cpu", "numpy")
    assert _target(RNNClassifier(), X1, True) == (dev1, "array_api_strict")
    assert _target(RNNClassifier(backend="array_api_strict", device=dev1), X_host, True) == (
        dev1, "array_api_strict")
    # host data to another backend's default device: nothing to make current
    assert _target(RNNClassifier(backend="cupy"), X_host, True) == (None, "cupy")
    assert _target(RNNClassifier(backend="cupy", device=1), X_host, True) == (1, "cupy")
    # not an array: the entry point refuses it with its own message
    assert _target(RNNClassifier(), [[1.0]], True) == (None, None)


def test_a_fitted_model_runs_on_its_own_device_and_fit_chooses_again(strict):
    xp, dev1 = strict
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 4, 3)), rng.integers(0, 2, size=16).tolist()
    X1 = from_host(X, xp=xp, device=dev1)
    clf = RNNClassifier(hidden_size=4, epochs=1, random_state=0).fit(X1, y)
    assert common_device(*clf.network_.parameters().values()) == dev1
    assert _target(clf, X, False) == (dev1, "array_api_strict")  # predict on host data
    assert _target(clf, X, True) == ("cpu", "numpy")  # a refit follows the new X
    assert common_device(clf.predict_proba(X1)) == dev1
    clf.partial_fit(X1, y)
    assert clf.score(X1, y) >= 0.0


def test_an_unavailable_cupy_target_is_refused_by_fit_with_the_reason():
    """The scope never pre-empts the estimator's own error for a backend that cannot run."""
    from rnnx._backend import available_backends

    status = available_backends()["cupy"]
    if status.available:
        pytest.skip("cupy runs here")
    X, y = np.zeros((4, 3, 2)), [0, 1, 0, 1]
    with pytest.raises(RuntimeError, match=re.escape(f"backend 'cupy' is unavailable: {status.reason}")):
        RNNClassifier(backend="cupy", device=1, epochs=1).fit(X, y)
