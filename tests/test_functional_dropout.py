"""Dropout masks drawn on the device (``rnnx.functional.dropout``): the same bits on every
backend and device as a plain-Python evaluation of the hash, the requested drop rate, no
correlation between neighbouring elements or between draws, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnx._backend import device as device_of
from rnnx._backend import get_namespace, to_numpy
from rnnx.functional.dropout import DROPOUT_KEY_WORDS, dropout_scale

NP = get_namespace("numpy")
KEYS = (3, 65535, 12345, 0, 777, 40000, 1, 31337)


def _python_word(i: int, keys: tuple[int, ...]) -> int:
    """The hash of counter ``i`` in Python integers (unbounded, no array library): the
    specification the array code must reproduce."""
    left, right = i >> 16, i & 0xFFFF
    for k in keys:
        left, right = right, left ^ ((((right ^ k) * 0x5BD1) >> 8) & 0xFFFF)
    return ((left & 0x7FFF) << 16) | right


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.9])
def test_mask_equals_the_python_hash_on_every_backend(xp, device, dtype, rate):
    shape = (3, 70, 5)  # counters up to 1049: several values of the high half stay small
    got = dropout_scale(shape, rate, KEYS, xp=xp, dtype=dtype, device=device)
    assert device_of(got) == device and got.dtype == dtype and tuple(got.shape) == shape
    n = math.prod(shape)
    threshold = round(rate * 2**31)
    keep = np.array([_python_word(i, KEYS) >= threshold for i in range(n)]).reshape(shape)
    host_dtype = np.float32 if dtype == xp.float32 else np.float64
    want = np.where(keep, host_dtype(1.0 / (1.0 - rate)), host_dtype(0.0)).astype(host_dtype)
    np.testing.assert_array_equal(to_numpy(got), want)  # bit for bit


def test_rows_are_the_rows_of_the_whole_mask(xp, device, dtype):
    """``rows=`` gives those rows of the mask of ``shape``, bit for bit, in the rows' order and
    on the device (how a dask worker draws its part of a mini-batch's mask)."""
    shape = (9, 4, 6)
    whole = to_numpy(dropout_scale(shape, 0.3, KEYS, xp=xp, dtype=dtype, device=device))
    rows = [7, 0, 3, 8]
    idx = xp.asarray(np.asarray(rows, dtype=np.int64), device=device)
    got = dropout_scale(shape, 0.3, KEYS, xp=xp, dtype=dtype, device=device, rows=idx)
    assert device_of(got) == device and got.dtype == dtype and tuple(got.shape) == (4, 4, 6)
    np.testing.assert_array_equal(to_numpy(got), whole[rows])


def test_high_counters_use_every_bit_of_the_hash(xp, device):
    """Counters past 2**16 (the high Feistel half) and near 2**31 - 1 stay exact in int32."""
    got = dropout_scale((1 << 17,), 0.5, KEYS, xp=xp, dtype=xp.float64, device=device)
    host = to_numpy(got)
    for i in (0, 65535, 65536, 100_000, (1 << 17) - 1):
        assert (host[i] > 0) == (_python_word(i, KEYS) >= 1 << 30), i
    assert max(_python_word(i, KEYS) for i in range(0, 1 << 17, 997)) < 1 << 31


def test_rate_and_independence():
    """Over 2**20 elements: the drop share is within 5 binomial standard deviations of the rate;
    neighbours (next element, next time step of a (B, T, F) mask) and two draws with different
    keys are uncorrelated to within 5/sqrt(n)."""
    n, rate = 1 << 20, 0.3
    rng = np.random.default_rng(0)
    draws = [dropout_scale((n,), rate, tuple(int(k) for k in rng.integers(0, 1 << 16, 8)),
                           xp=NP, dtype=NP.float64, device="cpu") > 0 for _ in range(2)]
    a, b = (d.astype(np.float64) for d in draws)
    dropped = 1.0 - a.mean()
    assert abs(dropped - rate) <= 5 * math.sqrt(rate * (1 - rate) / n), dropped
    bound = 5 / math.sqrt(n)
    for lag in (1, 64):  # a (B, T, 64) mask: next feature, next time step
        assert abs(np.corrcoef(a[:-lag], a[lag:])[0, 1]) <= bound, lag
    assert abs(np.corrcoef(a, b)[0, 1]) <= bound


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"keys": (1, 2, 3)}, f"keys must be {DROPOUT_KEY_WORDS} ints in [0, 2**16); got (1, 2, 3)"),
    ({"keys": (1 << 16,) * 8}, "keys must be 8 ints in [0, 2**16); got (65536,"),
    ({"rate": 1.0}, "rate must be a probability in [0, 1); got 1.0"),
    ({"shape": (1 << 16, 1 << 15, 2)}, "at most 2**31 elements (int32 counters); shape "
                                       "(65536, 32768, 2) has 4294967296"),
])
def test_bad_arguments(kwargs, message):
    args = {"shape": (2, 3), "rate": 0.5, "keys": KEYS, **kwargs}
    with pytest.raises(ValueError) as info:
        dropout_scale(args["shape"], args["rate"], args["keys"], xp=NP, dtype=NP.float64,
                      device="cpu")
    assert message in str(info.value)


def test_host_rows_outside_the_mask_are_refused():
    xp = get_namespace("numpy")
    keys = tuple(range(DROPOUT_KEY_WORDS))
    with pytest.raises(ValueError, match=r"rows must be indices in \[0, 2\).*got \[5, -1\]"):
        dropout_scale((2, 3), 0.5, keys, xp=xp, dtype=xp.float32, device="cpu", rows=[5, -1])
