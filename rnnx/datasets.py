"""Data sets that ship with rnnx (no downloads). Every loader returns host NumPy arrays; move them
to a backend with the estimators' ``backend=``/``device=`` or :func:`rnnx._backend.from_host`.

The synthetic generators take ``random_state`` as the estimators do (an int, None for fresh
entropy, or a NumPy ``Generator``); its default, 0, makes each a fixed data set unless asked
otherwise. Their old name for it, ``seed=``, still works with a ``FutureWarning``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = [
    "DATASETS",
    "SEED_EXPECTED_LAST_STATE",
    "load_digits_sequences",
    "make_adding_problem",
    "make_parity",
    "make_sine_waves",
    "seed_example",
]

#: The last hidden state the seed exercise printed for :func:`seed_example` (Problem 2). It is the
#: one number of the seed known to be right and every backend must reproduce it.
SEED_EXPECTED_LAST_STATE = ((0.79494228, 0.81839002, 0.83939649, 0.85584174),)


def seed_example() -> dict[str, np.ndarray]:
    """The seed's Problem 2: ``x (1, 3, 2)``, ``w_x (2, 4)``, ``w_h (4, 4)`` and ``b (4,)`` (ones).

    With ``h0 = 0`` and tanh, the final state is :data:`SEED_EXPECTED_LAST_STATE`.
    """
    x = np.array([[[1, 2], [2, 3], [3, 4]]]) / 100  # (batch, time, features)
    w_x = np.array([[1, 3, 5, 7], [3, 5, 7, 8]]) / 100  # (features, hidden)
    w_h = np.array([[1, 3, 5, 7], [2, 4, 6, 8], [3, 5, 7, 8], [4, 6, 8, 10]]) / 100  # (hidden, hidden)
    b = np.ones(4)  # (hidden,)
    return {"x": x, "w_x": w_x, "w_h": w_h, "b": b}


# --------------------------------------------------------------------------------------------
# Embedded real data
# --------------------------------------------------------------------------------------------


def load_digits_sequences(*, scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits, each image read row by row as a sequence.

    The data are the 1797 test-set digits of the UCI "Optical Recognition of Handwritten
    Digits" data set (E. Alpaydin, C. Kaynak, 1998), as bundled with scikit-learn (BSD-3-Clause)
    in ``sklearn/datasets/data/digits.csv.gz``; a copy ships in ``rnnx/data/`` so nothing is
    downloaded and scikit-learn is not needed. Each CSV row is 64 pixel counts (0-16) followed
    by the label.

    Returns
    -------
    X : float64 array (1797, 8, 8)
        ``(n_samples, time, features)``: step ``t`` is pixel row ``t``. Divided by 16 into
        ``[0, 1]`` when ``scale`` (the default), raw counts otherwise.
    y : int64 array (1797,)
        Digit labels 0-9.
    """
    import gzip
    from importlib import resources

    with resources.files("rnnx").joinpath("data/digits.csv.gz").open("rb") as raw, \
            gzip.open(raw, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)  # (1797, 65)
    X = table[:, :64].reshape(-1, 8, 8)  # (N, 8 rows = time, 8 columns = features)
    y = table[:, 64].astype(np.int64)
    return (X / 16.0 if scale else X), y


# --------------------------------------------------------------------------------------------
# Synthetic, seeded
# --------------------------------------------------------------------------------------------


def _rng(random_state: Any, renamed: dict[str, Any], where: str) -> np.random.Generator:
    """The generator of ``random_state`` (an int, None or a NumPy ``Generator``). ``renamed``
    holds the other keyword arguments: ``seed``, the name before ``random_state`` (kept
    working, with a ``FutureWarning``), and nothing else."""
    unknown = sorted(set(renamed) - {"seed"})
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}")
    if "seed" in renamed:
        if random_state != 0:
            raise TypeError(f"{where}() got random_state={random_state!r} and seed="
                            f"{renamed['seed']!r}, two names of one argument: pass random_state")
        warnings.warn(f"{where}(seed=...) is deprecated: the argument is random_state, as in "
                      "the estimators; seed= will be removed in rnnx 0.3", FutureWarning,
                      stacklevel=3)
        random_state = renamed["seed"]
    return np.random.default_rng(random_state)


def _check_counts(**kw: int) -> None:
    for name, v in kw.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int; got {v!r}")


def make_adding_problem(n_samples: int = 1000, time: int = 50, *, random_state: Any = 0,
                        **renamed: Any) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber, "Long short-term memory", Neural
    Computation 9 (1997), experiment 4).

    Each step carries two features: a value uniform on ``[0, 1)`` and a marker. Exactly two
    steps are marked, one in the first half and one in the second; the target is the sum of the
    two marked values. Predicting the mean (1.0) gives MSE ~ 1/6; solving it needs memory
    across ``time`` steps.

    ``random_state`` (int, default 0; None; or a NumPy ``Generator``) seeds the draws.
    Returns ``X`` float64 ``(n_samples, time, 2)`` and ``y`` float64 ``(n_samples,)``.
    """
    _check_counts(n_samples=n_samples, time=time)
    if time < 2:
        raise ValueError(f"time must be at least 2 (two marked steps); got {time}")
    rng = _rng(random_state, renamed, 'make_adding_problem')
    values = rng.uniform(0.0, 1.0, size=(n_samples, time))
    half = time // 2
    first = rng.integers(0, half, size=n_samples)
    second = rng.integers(half, time, size=n_samples)
    markers = np.zeros((n_samples, time))
    rows = np.arange(n_samples)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    X = np.stack([values, markers], axis=-1)  # (N, T, 2)
    y = values[rows, first] + values[rows, second]
    return X, y


def make_parity(n_samples: int = 1000, time: int = 12, *, random_state: Any = 0,
                **renamed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Parity of a bit string: ``y = sum(bits) mod 2``.

    The ``n_samples`` strings are all different (drawn without replacement from the
    ``2**time`` strings of ``time`` bits, so ``n_samples <= 2**time``): however the data are
    split, no held-out string also occurs in training, and a held-out score measures
    generalisation, not memory. (With 8 bits and 1000 draws with replacement, 95 % of a 20 %
    hold-out had also been drawn for training.)

    ``random_state`` (int, default 0; None; or a NumPy ``Generator``) seeds the draws.
    Returns ``X`` float64 ``(n_samples, time, 1)`` of 0/1 bits and ``y`` int64 ``(n_samples,)``.
    Every bit matters, so a model must carry one bit of state through the whole sequence.
    """
    _check_counts(n_samples=n_samples, time=time)
    if time < 63 and n_samples > 2**time:
        raise ValueError(f"n_samples must be at most 2**time = {2**time} (the number of distinct "
                         f"strings of {time} bits); got {n_samples}")
    rng = _rng(random_state, renamed, 'make_parity')
    if time < 63:
        codes = rng.choice(2**time, size=n_samples, replace=False)  # (N,) distinct integers
        bits = (codes[:, None] >> np.arange(time)[None, :]) & 1  # (N, T)
    else:  # 2**time dwarfs n_samples: redraw the rare repeats
        bits = rng.integers(0, 2, size=(n_samples, time))
        while True:
            _, first = np.unique(bits, axis=0, return_index=True)
            dup = np.setdiff1d(np.arange(n_samples), first)
            if dup.size == 0:
                break
            bits[dup] = rng.integers(0, 2, size=(dup.size, time))
    return bits[..., None].astype(np.float64), (bits.sum(axis=1) % 2).astype(np.int64)


def make_sine_waves(n_samples: int = 600, time: int = 40, *, n_classes: int = 3,
                    noise: float = 0.3, random_state: Any = 0, **renamed: Any
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sine waves whose class is the frequency.

    Class ``k`` has ``k + 1`` periods over the sequence, a random phase and amplitude in
    ``[0.5, 1.5)``, plus Gaussian noise of standard deviation ``noise``. Classes are balanced
    and shuffled.

    ``random_state`` (int, default 0; None; or a NumPy ``Generator``) seeds the draws.
    Returns ``X`` float64 ``(n_samples, time, 1)`` and ``y`` int64 ``(n_samples,)``.
    """
    _check_counts(n_samples=n_samples, time=time, n_classes=n_classes)
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0; got {noise!r}")
    rng = _rng(random_state, renamed, 'make_sine_waves')
    y = rng.permutation(np.arange(n_samples) % n_classes).astype(np.int64)
    t = np.linspace(0.0, 1.0, time, endpoint=False)  # (T,)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n_samples, 1))
    amp = rng.uniform(0.5, 1.5, size=(n_samples, 1))
    X = amp * np.sin(2 * np.pi * (y[:, None] + 1) * t + phase)  # (N, T)
    X = X + noise * rng.standard_normal((n_samples, time))
    return X[..., None], y


#: Names the command line accepts, with their loaders (host arrays; ``random_state`` seeds the
#: synthetic ones, the digits are fixed).
DATASETS = {
    "digits": lambda random_state=0: load_digits_sequences(),
    "parity": lambda random_state=0: make_parity(random_state=random_state),
    "sine": lambda random_state=0: make_sine_waves(random_state=random_state),
    "adding": lambda random_state=0: make_adding_problem(random_state=random_state),
}
