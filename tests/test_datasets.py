"""Embedded and synthetic data sets: shapes, dtypes, seeding, and each generator's defining
property checked from the raw arrays."""

from __future__ import annotations

import numpy as np
import pytest

from rnnx.datasets import (
    DATASETS,
    load_digits_sequences,
    make_adding_problem,
    make_parity,
    make_sine_waves,
)


def test_digits_shape_and_labels():
    X, y = load_digits_sequences()
    assert X.shape == (1797, 8, 8) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y).sum(), 1797)
    assert set(np.unique(y)) == set(range(10))
    raw, _ = load_digits_sequences(scale=False)
    np.testing.assert_array_equal(raw / 16.0, X)


def test_digits_equal_scikit_learns_copy():
    """The embedded file is scikit-learn's data: same pixels, same labels, and step t is image
    row t (the images are row-major 8x8)."""
    datasets = pytest.importorskip("sklearn.datasets")
    ref = datasets.load_digits()
    raw, y = load_digits_sequences(scale=False)
    np.testing.assert_array_equal(raw, ref.images)
    np.testing.assert_array_equal(y, ref.target)


def test_adding_problem_definition():
    X, y = make_adding_problem(200, 30, random_state=1)
    assert X.shape == (200, 30, 2) and y.shape == (200,)
    markers = X[:, :, 1]
    np.testing.assert_array_equal(markers.sum(axis=1), 2.0)
    assert np.all(markers[:, :15].sum(axis=1) == 1) and np.all(markers[:, 15:].sum(axis=1) == 1)
    np.testing.assert_allclose(y, (X[:, :, 0] * markers).sum(axis=1), rtol=1e-15)
    assert np.all((X[:, :, 0] >= 0) & (X[:, :, 0] < 1))


def test_parity_definition():
    X, y = make_parity(300, 9, random_state=2)
    assert X.shape == (300, 9, 1) and set(np.unique(X)) == {0.0, 1.0}
    np.testing.assert_array_equal(y, X[:, :, 0].sum(axis=1).astype(int) % 2)


@pytest.mark.parametrize(("n", "time"), [(1000, 12), (256, 8), (50, 80)])
def test_parity_strings_are_distinct(n, time):
    """No string occurs twice, so no held-out string of any split also occurs in training."""
    X, _ = make_parity(n, time, random_state=3)
    assert X.shape == (n, time, 1)
    assert np.unique(X[:, :, 0], axis=0).shape[0] == n


def test_parity_refuses_more_samples_than_strings():
    with pytest.raises(ValueError, match=r"n_samples must be at most 2\*\*time = 256 .* got 257"):
        make_parity(257, 8)


def test_sine_waves_frequency_is_the_class():
    """Without noise, the dominant FFT bin of each sequence is its class + 1 periods."""
    X, y = make_sine_waves(90, 64, n_classes=3, noise=0.0, random_state=4)
    assert X.shape == (90, 64, 1) and np.array_equal(np.bincount(y), [30, 30, 30])
    spectrum = np.abs(np.fft.rfft(X[:, :, 0], axis=1))
    np.testing.assert_array_equal(spectrum.argmax(axis=1), y + 1)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_seeded_generators_are_reproducible(name):
    a, b, c = DATASETS[name](random_state=5), DATASETS[name](random_state=5), DATASETS[name](random_state=6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    if name != "digits":
        assert not np.array_equal(a[0], c[0])


GENERATORS = [make_adding_problem, make_parity, make_sine_waves]


@pytest.mark.parametrize("make", GENERATORS, ids=lambda f: f.__name__)
def test_generators_take_random_state_like_the_estimators(make):
    """``random_state=`` (the estimators' name; issue 24 found ``make_sine_waves(random_state=1)``
    a TypeError) seeds the draws: an int, a NumPy Generator, or None for fresh entropy; the
    default is 0, a fixed data set."""
    a, b = make(random_state=1), make(random_state=np.random.default_rng(1))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(make()[0], make(random_state=0)[0])
    assert not np.array_equal(a[0], make()[0])
    assert make(random_state=None)[0].shape == a[0].shape


@pytest.mark.parametrize("make", GENERATORS, ids=lambda f: f.__name__)
def test_seed_is_the_deprecated_name_of_random_state(make):
    """The old ``seed=`` gives the same data with a FutureWarning naming the new argument;
    both names at once, or any other keyword, are a TypeError."""
    with pytest.warns(FutureWarning, match=rf"{make.__name__}\(seed=\.\.\.\) is deprecated: "
                      "the argument is random_state"):
        old = make(seed=3)
    np.testing.assert_array_equal(old[0], make(random_state=3)[0])
    with pytest.raises(TypeError, match="two names of one argument: pass random_state"):
        make(random_state=1, seed=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'rng'"):
        make(rng=1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        make_parity(0)
    with pytest.raises(ValueError, match="time must be at least 2"):
        make_adding_problem(10, 1)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        make_sine_waves(noise=-1.0)
