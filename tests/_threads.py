"""A module-scoped fixture that runs BLAS and torch single-threaded.

The training tests multiply tiny matrices (hidden 8-64), which gain nothing from threads. On a
2-core machine that is busy with something else, multi-threaded OpenBLAS/torch workers spin while
waiting for a core and slow such tests down ~10x (measured: scikit-learn's check_estimator on
RNNRegressor took 35 s with default threads and 2.4 s with one, under load average 5). The
previous settings are restored after the module.
"""

from __future__ import annotations

import contextlib

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=1))
        except ImportError:  # without threadpoolctl the tests still run, only slower
            pass
        try:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(1)
            stack.callback(torch.set_num_threads, before)
        except ImportError:
            pass
        yield
