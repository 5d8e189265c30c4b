"""A module-scoped fixture that runs BLAS and torch single-threaded while training tests run.

The training tests multiply tiny matrices (hidden 8-64), which gain nothing from threads. On a
2-core machine that is busy with something else, multi-threaded OpenBLAS/torch workers spin while
waiting for a core and slow such tests down ~10x (measured: scikit-learn's check_estimator on
RNNRegressor took 35 s with default threads and 2.4 s with one, under load average 5). The
previous settings are restored after the module.
"""

from __future__ import annotations

import contextlib

import pytest

from rnnx._backend import limit_threads


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401  (imported first so limit_threads covers it too)
    with limit_threads(1):
        yield
