"""What is timed: shapes, dtypes, variants, the seeded host data and the FLOP count of each case.

Every implementation gets the same host float64 draw (cast to the case's dtype), so the numbers
compared are the same computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (batch, time, features, hidden): the seed's tiny case, three growing ones and a long sequence.
SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (1, 3, 2, 4),
    (32, 50, 16, 64),
    (64, 100, 32, 128),
    (128, 200, 64, 256),
    (16, 1000, 8, 32),
)
DTYPES = ("float32", "float64")
# fwd: forward alone (inference); m2m: forward + backward with dL/dh_t at every step;
# m2o: forward + backward with dL/dh_T only (a many-to-one loss).
VARIANTS = ("fwd", "m2m", "m2o")
# Elman, LSTM, GRU; the number of gate blocks in the fused weights.
CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclass(frozen=True)
class Case:
    batch: int
    time: int
    features: int
    hidden: int
    dtype: str
    variant: str
    cell: str = "rnn"

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.time, self.features, self.hidden)

    @property
    def key(self) -> str:
        b, t, f, h = self.shape
        cell = "" if self.cell == "rnn" else f"{self.cell}:"  # Elman keys as before
        return f"{cell}{b}x{t}x{f}x{h}/{self.dtype}/{self.variant}"

    @property
    def flops(self) -> float:
        """Multiply-adds of the GEMMs, counted 2 flops each; elementwise work is not counted.

        Forward: ``x @ w_x`` and ``h @ w_h`` over all steps, ``G`` gate blocks wide (1 Elman,
        4 LSTM, 3 GRU). Backward: ``dx``, ``dw_x``, ``dw_h`` and ``dh_{t-1}``, which is twice the
        forward.
        """
        b, t, f, h = self.shape
        fwd = 2.0 * b * t * (f * h + h * h) * GATES[self.cell]
        return fwd if self.variant == "fwd" else 3.0 * fwd

    def to_dict(self) -> dict:
        return {"batch": self.batch, "time": self.time, "features": self.features,
                "hidden": self.hidden, "dtype": self.dtype, "variant": self.variant,
                "cell": self.cell}

    @classmethod
    def from_dict(cls, d: dict) -> Case:
        return cls(**d)


def all_cases(shapes=SHAPES, dtypes=DTYPES, variants=VARIANTS, cells=("rnn",)) -> list[Case]:
    return [Case(*s, dt, v, c) for c in cells for s in shapes for dt in dtypes for v in variants]


def host_data(case: Case, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded host arrays in ``case.dtype``: weights as torch.nn.RNN/LSTM/GRU initialise them
    (uniform on ±1/sqrt(hidden)), fused ``(features, G*hidden)`` / ``(hidden, G*hidden)`` for a
    cell of ``G`` gate blocks; inputs and upstream gradients standard normal. A GRU also gets
    ``b_hh`` (``b`` is then its ``b_ih``).

    ``dhs`` is ``(batch, time, hidden)`` for m2m and ``(batch, hidden)`` for m2o.
    """
    rng = np.random.default_rng(seed)
    b, t, f, h = case.shape
    g = GATES[case.cell]
    k = 1.0 / np.sqrt(h)
    out = {
        "x": rng.normal(size=(b, t, f)),
        "w_x": rng.uniform(-k, k, size=(f, g * h)),
        "w_h": rng.uniform(-k, k, size=(h, g * h)),
        "b": rng.uniform(-k, k, size=(g * h,)),
        "dhs": rng.normal(size=(b, t, h)),
    }
    if case.cell == "gru":  # two biases: b_hn sits inside the reset product
        out["b_hh"] = rng.uniform(-k, k, size=(g * h,))
    if case.variant == "m2o":
        out["dhs"] = np.ascontiguousarray(out["dhs"][:, -1, :])
    return {k_: np.ascontiguousarray(v.astype(case.dtype)) for k_, v in out.items()}
